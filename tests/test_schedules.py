"""Schedules: each formula of course_utils/schedules.py, and those walkthroughs 02-04 derive, checked numerically."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from course_utils import (
    SCHEDULE_KINDS, UNetConfig, cosine_alphas_cumprod, default_config, linear_betas, make_schedule,
    rescale_zero_terminal_snr, schedule_from_betas,
)

KINDS = sorted(SCHEDULE_KINDS)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("T", [1, 10, 150, 1000])
def test_arrays_have_length_T_and_float64(kind, T):
    # scaled linear betas reach 1 for T <= 20 (exactly 1 at T = 20; tested below): short linear schedules unscaled
    s = make_schedule(kind, T, **({"scale_to_T": False} if kind == "linear" and T <= 20 else {}))
    assert s.T == T
    for name in ["betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                 "sqrt_one_minus_alphas_cumprod", "sqrt_recip_alphas", "posterior_variance", "snr", "log_snr"]:
        arr = getattr(s, name)
        assert arr.shape == (T,), name
        assert arr.dtype == torch.float64, name


@pytest.mark.parametrize("kind", KINDS)
def test_derived_quantities_match_their_definitions(kind):
    s = make_schedule(kind, 200)
    b = s.betas
    torch.testing.assert_close(s.alphas, 1 - b)
    abar = torch.tensor([math.prod((1 - b[: t + 1]).tolist()) for t in range(s.T)], dtype=torch.float64)
    torch.testing.assert_close(s.alphas_cumprod, abar, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(s.alphas_cumprod_prev[1:], s.alphas_cumprod[:-1])
    assert s.alphas_cumprod_prev[0] == 1.0
    torch.testing.assert_close(s.sqrt_alphas_cumprod ** 2, s.alphas_cumprod)
    torch.testing.assert_close(s.sqrt_one_minus_alphas_cumprod ** 2, 1 - s.alphas_cumprod)
    torch.testing.assert_close(s.sqrt_recip_alphas, 1 / torch.sqrt(1 - b))


@pytest.mark.parametrize("kind", KINDS)
def test_one_step_variance_recursion(kind):
    """Merging two Gaussians: 1 - abar_t = alpha_t (1 - abar_{t-1}) + beta_t, and abar_t = alpha_t abar_{t-1}."""
    s = make_schedule(kind, 200)
    torch.testing.assert_close(1 - s.alphas_cumprod[1:], s.alphas[1:] * (1 - s.alphas_cumprod[:-1]) + s.betas[1:])
    torch.testing.assert_close(s.alphas_cumprod[1:], s.alphas[1:] * s.alphas_cumprod[:-1])


@pytest.mark.parametrize("kind", KINDS)
def test_alphas_cumprod_strictly_decreasing_in_unit_interval(kind):
    s = make_schedule(kind, 1000)
    assert (s.alphas_cumprod[1:] < s.alphas_cumprod[:-1]).all()
    assert ((s.alphas_cumprod > 0) & (s.alphas_cumprod < 1)).all()


@pytest.mark.parametrize("kind", KINDS)
def test_snr_is_alphas_cumprod_over_one_minus(kind):
    s = make_schedule(kind, 300)
    torch.testing.assert_close(s.snr, s.alphas_cumprod / (1 - s.alphas_cumprod))
    torch.testing.assert_close(s.log_snr, torch.log(s.alphas_cumprod) - torch.log1p(-s.alphas_cumprod))
    torch.testing.assert_close(torch.sigmoid(s.log_snr), s.alphas_cumprod)  # and back: alpha_bar = sigmoid(log-SNR)
    assert (s.log_snr[1:] < s.log_snr[:-1]).all()


def test_snr_equals_one_positions():
    """First 0-based t with log-SNR <= 0: 259 (scaled linear), 496 (cosine), 500 (sigmoid), 101 (unscaled linear T=150)."""
    expected = {("linear", 1000): 259, ("cosine", 1000): 496, ("sigmoid", 1000): 500}
    for (kind, T), t_cross in expected.items():
        s = make_schedule(kind, T)
        assert s.log_snr[t_cross - 1] > 0 >= s.log_snr[t_cross], kind
    # cosine: alpha_bar(u) = 1/2 at u* = (1 + s) (2/pi) arccos(sqrt(f(0)/2)) - s; code step t stands for u = (t+1)/T
    f0 = math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    u_star = 1.008 * 2 / math.pi * math.acos(math.sqrt(f0 / 2)) - 0.008
    assert math.ceil(u_star * 1000) - 1 == 496
    short = make_schedule("linear", 150, scale_to_T=False)
    assert short.log_snr[100] > 0 >= short.log_snr[101]


@pytest.mark.parametrize("kind", KINDS)
def test_posterior_variance_formula(kind):
    s = make_schedule(kind, 100)
    for t in [1, 5, 50, 99]:
        expected = s.betas[t] * (1 - s.alphas_cumprod[t - 1]) / (1 - s.alphas_cumprod[t])
        torch.testing.assert_close(s.posterior_variance[t], expected)
    assert s.posterior_variance[0] == 0.0
    # beta_tilde_t <= beta_t always (the posterior is narrower than the forward step)
    assert (s.posterior_variance <= s.betas + 1e-15).all()


@pytest.mark.parametrize("kind", KINDS)
def test_elbo_weight_is_snr_difference(kind):
    """coef1^2 / (2 beta_tilde) = (SNR(t-1) - SNR(t)) / 2, and Ho et al.'s noise weight is that divided by SNR(t)."""
    s = make_schedule(kind, 500)
    t = torch.arange(1, s.T)
    elbo_x0 = s.posterior_mean_coef1[t] ** 2 / (2 * s.posterior_variance[t])
    torch.testing.assert_close(elbo_x0, 0.5 * (s.snr[t - 1] - s.snr[t]))
    ho_eps = s.betas[t] ** 2 / (2 * s.posterior_variance[t] * s.alphas[t] * (1 - s.alphas_cumprod[t]))
    torch.testing.assert_close(ho_eps, 0.5 * (s.snr[t - 1] / s.snr[t] - 1))


def test_linear_matches_ho_et_al_at_T_1000():
    s = make_schedule("linear", 1000)
    torch.testing.assert_close(s.betas, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))
    assert s.alphas_cumprod[-1] == pytest.approx(4.04e-5, rel=0.01)


@pytest.mark.parametrize("T", [50, 150, 250, 4000])
def test_scaled_linear_ends_in_noise_for_every_T(T):
    s = make_schedule("linear", T)
    torch.testing.assert_close(s.betas[[0, -1]], torch.tensor([1e-4, 0.02], dtype=torch.float64) * 1000 / T)
    assert s.alphas_cumprod[-1] < 1e-3


def test_unscaled_linear_at_T_150_does_not_reach_noise():
    """Ho et al.'s betas at T = 150 end at alpha_bar_T = 0.219 (about exp(-sum beta) = 0.221): sqrt(alpha_bar_T) = 0.468
    of the image survives, SNR_T = 0.281. Scaled by 1000 / T they end in noise."""
    s = make_schedule("linear", 150, scale_to_T=False)
    expected = math.prod(1 - (1e-4 + (0.02 - 1e-4) * i / 149) for i in range(150))
    assert s.alphas_cumprod[-1].item() == pytest.approx(expected, rel=1e-9)
    assert s.alphas_cumprod[-1].item() == pytest.approx(0.219, abs=0.005)
    assert s.sqrt_alphas_cumprod[-1].item() == pytest.approx(0.468, abs=0.002)
    assert s.snr[-1].item() == pytest.approx(0.281, abs=0.002)
    assert math.exp(-s.betas.sum().item()) == pytest.approx(0.221, abs=0.001)
    assert make_schedule("linear", 150).alphas_cumprod[-1].item() < 1e-4


@pytest.mark.parametrize("T, scale_to_T", [(1000, True), (150, True), (150, False), (300, False)])
def test_terminal_alpha_bar_is_about_exp_minus_sum_of_betas(T, scale_to_T):
    """-log alpha_bar_T = sum -log(1 - beta_t), which lies between sum beta_t and sum beta_t + sum beta_t^2."""
    s = make_schedule("linear", T, scale_to_T=scale_to_T)
    minus_log = -math.log(s.alphas_cumprod[-1].item())
    total = s.betas.sum().item()
    assert total <= minus_log <= total + (s.betas**2).sum().item()


def test_kl_of_q_x_T_to_standard_normal_formula():
    """KL(N(sqrt(abar) x_0, (1 - abar)) || N(0, 1)) = 0.5 (abar (x_0^2 - 1) - log(1 - abar)) per pixel."""
    x_0 = torch.linspace(-1, 1, 11, dtype=torch.float64)
    for abar in [0.219, 0.01, 4e-5]:
        closed = 0.5 * (abar * (x_0**2 - 1) - math.log(1 - abar))
        exact = kl_divergence(Normal(math.sqrt(abar) * x_0, math.sqrt(1 - abar)), Normal(0.0, 1.0))
        torch.testing.assert_close(closed, exact.double())


def test_stable_diffusion_scaled_linear_terminal_snr():
    """Stable Diffusion: betas linear in sqrt(beta) from 0.00085 to 0.012, T = 1000; Lin et al. (2024): SNR_T ~ 0.0047."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    s = schedule_from_betas(betas)
    assert s.sqrt_alphas_cumprod[-1].item() == pytest.approx(0.068, abs=0.001)
    assert s.snr[-1].item() == pytest.approx(0.0047, abs=0.0001)


@pytest.mark.parametrize("T", [50, 1000])
def test_cosine_alphas_cumprod_matches_closed_formula(T):
    s = make_schedule("cosine", T)
    u = torch.arange(1, T + 1, dtype=torch.float64) / T
    f = lambda x: torch.cos((x + 0.008) / 1.008 * math.pi / 2) ** 2
    closed = f(u) / f(torch.zeros(1, dtype=torch.float64))
    unclipped = s.betas < 0.999
    assert unclipped.sum() >= T - 2  # only the very last step(s) hit the 0.999 clip
    torch.testing.assert_close(s.alphas_cumprod[unclipped], closed[unclipped], rtol=1e-9, atol=1e-12)
    assert s.betas.max() == pytest.approx(0.999)


def test_cosine_helper_is_one_at_zero():
    assert cosine_alphas_cumprod(torch.tensor(0.0)).item() == pytest.approx(1.0)


def test_cosine_first_beta_is_unclipped_and_below_pixel_bin():
    """Nichol & Dhariwal: s = 0.008 makes sqrt(beta_1) just below 1/127.5; betas are clipped only above (0.999)."""
    s = make_schedule("cosine", 1000)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    assert s.betas[0].item() == pytest.approx(1 - f(1 / 1000) / f(0), rel=1e-9)
    assert s.betas[0].item() < 1e-4  # a lower clip at 1e-4 (as in some tutorials) would change it
    assert math.sqrt(s.betas[0].item()) < 1 / 127.5
    assert int((s.betas >= 0.999).sum()) == 1 and s.betas[-1].item() == pytest.approx(0.999)


def _max_gap(fine, coarse):
    u_fine = (np.arange(fine.T) + 1) / fine.T
    u_coarse = (np.arange(coarse.T) + 1) / coarse.T
    return np.abs(np.interp(u_coarse, u_fine, fine.alphas_cumprod.numpy()) - coarse.alphas_cumprod.numpy()).max()


def test_scaling_by_1000_over_T_keeps_the_continuous_time_curve():
    """alpha_bar(t/T) of the scaled linear schedule at T=150 (and T=250) is within 0.01 of T=1000's; unscaled it is far off."""
    assert _max_gap(make_schedule("linear", 1000), make_schedule("linear", 150)) < 0.01
    assert _max_gap(make_schedule("linear", 1000), make_schedule("linear", 250)) < 0.01
    assert _max_gap(make_schedule("linear", 1000, scale_to_T=False),
                    make_schedule("linear", 150, scale_to_T=False)) > 0.5
    assert _max_gap(make_schedule("cosine", 1000), make_schedule("cosine", 150)) < 1e-3


@pytest.mark.parametrize("bad", [[0.1, 1.0], [0.0, 0.5], [-0.1, 0.2], [float("nan")], [0.2, 1.5]])
def test_betas_outside_open_unit_interval_rejected(bad):
    with pytest.raises(ValueError, match=r"strictly between 0 and 1"):
        schedule_from_betas(bad)


@pytest.mark.parametrize("T", [10, 19, 20])
def test_scaled_linear_with_tiny_T_is_rejected_clearly(T):
    # the last scaled beta is 0.02 * 1000 / T: above 1 below T = 20 and exactly 1 at T = 20
    with pytest.raises(ValueError, match="between 0 and 1"):
        make_schedule("linear", T)


def test_scaled_linear_is_valid_from_T_21():
    s = make_schedule("linear", 21)
    assert s.betas[-1].item() == pytest.approx(0.02 * 1000 / 21) and s.betas[-1].item() < 1


@pytest.mark.parametrize("T", [0, -3])
def test_T_below_one_rejected(T):
    with pytest.raises(ValueError, match="T must be at least 1"):
        make_schedule("cosine", T)


def test_T_not_int_rejected():
    with pytest.raises(TypeError, match="T must be an int"):
        make_schedule("cosine", 10.0)


def test_unknown_kind_rejected():
    with pytest.raises(ValueError, match=r"unknown schedule kind 'quadratic'.*cosine.*linear.*sigmoid"):
        make_schedule("quadratic", 100)


def test_betas_must_be_one_dimensional():
    with pytest.raises(ValueError, match="1-D"):
        schedule_from_betas(torch.full((2, 3), 0.1))


def test_linear_betas_function():
    torch.testing.assert_close(linear_betas(4, 0.1, 0.4, scale_to_T=False),
                               torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64))


def test_sigmoid_alphas_cumprod_matches_closed_formula():
    s = make_schedule("sigmoid", 500)
    u = torch.arange(1, 501, dtype=torch.float64) / 500
    sig = torch.sigmoid
    v0, v1 = sig(torch.tensor(-3.0, dtype=torch.float64)), sig(torch.tensor(3.0, dtype=torch.float64))
    closed = (v1 - sig(u * 6 - 3)) / (v1 - v0)
    unclipped = s.betas < 0.999
    torch.testing.assert_close(s.alphas_cumprod[unclipped], closed[unclipped], rtol=1e-9, atol=1e-12)


def test_continuous_elbo_depends_only_on_endpoints():
    """VDM: 1/2 int_0^1 (-dSNR/du) mse(SNR(u)) du is the same for any schedule with the same end points.

    With Gaussian data of variance s2 the optimal x_0 error is mse(v) = s2 / (1 + s2 v), so the integral
    is 1/2 log((1 + s2 SNR_max) / (1 + s2 SNR_min)). Checked by quadrature for three shapes of log-SNR.
    """
    s2, lam_max, lam_min = 0.5, 10.0, -10.0
    exact = 0.5 * math.log((1 + s2 * math.exp(lam_max)) / (1 + s2 * math.exp(lam_min)))
    u = torch.linspace(0, 1, 400_001, dtype=torch.float64, requires_grad=True)
    shapes = [lambda u: lam_max + (lam_min - lam_max) * u,
              lambda u: lam_max + (lam_min - lam_max) * u ** 2,
              lambda u: lam_max + (lam_min - lam_max) * torch.sin(u * math.pi / 2) ** 4]

    def elbo(fn):
        snr = fn(u).exp()
        dsnr = torch.autograd.grad(snr.sum(), u)[0]
        integrand = 0.5 * (-dsnr) * s2 / (1 + s2 * snr.detach())
        return torch.trapezoid(integrand, u.detach()).item()

    assert [elbo(fn) for fn in shapes] == pytest.approx([exact] * 3, rel=1e-4)
    # moving one end point (lambda_min -10 -> 0) changes the value: the end points do matter
    moved = elbo(lambda u: lam_max + (0.0 - lam_max) * u)
    assert moved == pytest.approx(0.5 * math.log((1 + s2 * math.exp(lam_max)) / (1 + s2 * math.exp(0.0))), rel=1e-4)
    assert abs(moved - exact) > 0.1


@pytest.mark.parametrize("k", [2, 4])
def test_average_pooling_divides_noise_variance_by_k_squared(k):
    """Averaging k x k blocks of iid unit noise leaves variance 1/k^2: log-SNR rises by 2 log k for a flat signal."""
    noise = torch.randn(500, 1, 28, 28, dtype=torch.float64)
    pooled = F.avg_pool2d(noise, k)
    assert pooled.var().item() * k ** 2 == pytest.approx(1.0, abs=0.03)
    flat = torch.full((1, 1, 28, 28), 0.6, dtype=torch.float64)
    assert torch.allclose(F.avg_pool2d(flat, k), torch.tensor(0.6, dtype=torch.float64))


def test_shifted_schedule_from_log_snr():
    """alpha_bar' = sigmoid(lambda + shift), beta'_t = 1 - alpha_bar'_t / alpha_bar'_{t-1}: its log-SNR is shifted exactly."""
    base = make_schedule("cosine", 1000)
    shift = 2 * math.log(64 / 256)
    abar = torch.sigmoid(base.log_snr + shift)
    betas = 1 - abar / torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    shifted = schedule_from_betas(betas)
    torch.testing.assert_close(shifted.log_snr, base.log_snr + shift)
    assert int((shifted.log_snr > 0).sum()) < int((base.log_snr > 0).sum())


def test_zero_terminal_snr_rescale_follows_lin_et_al():
    base = make_schedule("linear", 250, scale_to_T=False)
    z = rescale_zero_terminal_snr(base)
    assert z.alphas_cumprod[-1].item() == 0.0 and z.betas[-1].item() == 1.0 and z.snr[-1].item() == 0.0
    torch.testing.assert_close(z.alphas_cumprod[0], base.alphas_cumprod[0])
    # sqrt(alpha_bar) is an affine map of the old one: each step keeps its relative place between the ends
    old, new = base.sqrt_alphas_cumprod, z.sqrt_alphas_cumprod
    torch.testing.assert_close((new - new[-1]) / (new[0] - new[-1]), (old - old[-1]) / (old[0] - old[-1]))
    assert (z.betas[:-1] < 1).all() and (z.snr.diff() < 0).all()
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        schedule_from_betas(z.betas)  # a beta of 1 needs the explicit opt-in
    with pytest.raises(ValueError, match="needs prediction 'v' or 'x0'"):
        default_config(zero_terminal_snr=True, model=UNetConfig(prediction="noise"))
