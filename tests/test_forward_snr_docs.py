"""Formulas stated in walkthroughs/answers 03 and 04, checked numerically against course_utils."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_utils import make_schedule, predict_x0_from_noise, q_sample, schedule_from_betas

KINDS = ["linear", "cosine", "sigmoid"]


@pytest.mark.parametrize("kind", KINDS)
def test_one_step_variance_recursion(kind):
    """Merging two Gaussians: 1 - abar_t = alpha_t (1 - abar_{t-1}) + beta_t, and abar_t = alpha_t abar_{t-1}."""
    s = make_schedule(kind, 200)
    torch.testing.assert_close(1 - s.alphas_cumprod[1:], s.alphas[1:] * (1 - s.alphas_cumprod[:-1]) + s.betas[1:])
    torch.testing.assert_close(s.alphas_cumprod[1:], s.alphas[1:] * s.alphas_cumprod[:-1])


def test_one_step_kernel_keeps_unit_variance():
    """x_t = sqrt(1 - beta) x_{t-1} + sqrt(beta) noise keeps Var = 1; adding noise without the shrink does not."""
    x = torch.randn(200_000, dtype=torch.float64)
    beta = 0.3
    kept = math.sqrt(1 - beta) * x + math.sqrt(beta) * torch.randn_like(x)
    grown = x + math.sqrt(beta) * torch.randn_like(x)
    assert kept.var().item() == pytest.approx(1.0, abs=0.01)
    assert grown.var().item() == pytest.approx(1.0 + beta, abs=0.01)


@pytest.mark.parametrize("kind", KINDS)
def test_alphas_cumprod_is_sigmoid_of_log_snr(kind):
    s = make_schedule(kind, 300)
    torch.testing.assert_close(torch.sigmoid(s.log_snr), s.alphas_cumprod)


def test_eps_mse_equals_snr_weighted_x0_mse():
    """||noise - noise_pred||^2 = SNR(t) ||x_0 - x_0_pred||^2 when x_0_pred = predict_x0_from_noise(noise_pred)."""
    s = make_schedule("cosine", 1000)
    x_0 = torch.rand(6, 1, 8, 8, dtype=torch.float64) * 2 - 1
    t = torch.tensor([0, 100, 300, 500, 700, 900])
    noise = torch.randn_like(x_0)
    x_t = q_sample(s, x_0, t, noise)
    noise_pred = noise + 0.1 * torch.randn_like(noise)
    x_0_pred = predict_x0_from_noise(s, x_t, t, noise_pred)
    eps_sq = ((noise - noise_pred) ** 2).sum(dim=(1, 2, 3))
    x0_sq = ((x_0 - x_0_pred) ** 2).sum(dim=(1, 2, 3))
    torch.testing.assert_close(eps_sq, s.snr[t] * x0_sq)
    # and the weight really is SNR: using alphas_cumprod alone would be wrong
    assert not torch.allclose(eps_sq, s.alphas_cumprod[t] * x0_sq)


@pytest.mark.parametrize("kind", KINDS)
def test_elbo_weight_is_snr_difference(kind):
    """coef1^2 / (2 beta_tilde) = (SNR(t-1) - SNR(t)) / 2, and Ho et al.'s noise weight is that divided by SNR(t)."""
    s = make_schedule(kind, 500)
    t = torch.arange(1, s.T)
    elbo_x0 = s.posterior_mean_coef1[t] ** 2 / (2 * s.posterior_variance[t])
    torch.testing.assert_close(elbo_x0, 0.5 * (s.snr[t - 1] - s.snr[t]))
    ho_eps = s.betas[t] ** 2 / (2 * s.posterior_variance[t] * s.alphas[t] * (1 - s.alphas_cumprod[t]))
    torch.testing.assert_close(ho_eps, 0.5 * (s.snr[t - 1] / s.snr[t] - 1))


def test_unscaled_linear_T150_final_snr():
    s = make_schedule("linear", 150, scale_to_T=False)
    assert s.snr[-1].item() == pytest.approx(0.281, abs=0.003)
    assert s.sqrt_alphas_cumprod[-1].item() == pytest.approx(0.468, abs=0.003)


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


def test_input_scaling_shifts_log_snr_by_2_log_b():
    """Chen (2023): x_t = sqrt(abar) b x_0 + sqrt(1 - abar) noise has SNR b^2 abar / (1 - abar)."""
    s = make_schedule("cosine", 1000)
    b, t = 0.5, 300
    x_0 = torch.full((200_000, 1), 0.8, dtype=torch.float64)
    x_t = q_sample(s, b * x_0, t)
    measured = x_t.mean() ** 2 / x_t.var() / 0.8 ** 2
    assert math.log(measured.item()) == pytest.approx(s.log_snr[t].item() + 2 * math.log(b), abs=0.03)
