"""Formulas stated in walkthroughs 01 (Gaussian noise) and 02 (noise schedules) that other tests do not cover."""
import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from course_utils import make_schedule, q_sample, q_sample_iterative, schedule_from_betas


@pytest.mark.parametrize("beta", [0.02, 0.1, 0.5])
def test_one_step_is_variance_preserving_mix(beta):
    """x_1 = sqrt(1 - beta) x_0 + sqrt(beta) noise, and Var(x_1) = 1 when Var(x_0) = 1."""
    one_step = schedule_from_betas([beta])
    x_0 = torch.randn(100_000, 1, dtype=torch.float64)
    noise = torch.randn_like(x_0)
    x_1 = q_sample(one_step, x_0, 0, noise)
    torch.testing.assert_close(x_1, math.sqrt(1 - beta) * x_0 + math.sqrt(beta) * noise)
    # relative standard error of a variance estimate is sqrt(2/n) = 0.0045
    assert x_1.var().item() == pytest.approx(1.0, abs=0.03)


def test_two_steps_compose_into_one_gaussian():
    """Two mixing steps = one step with 1 - beta = (1 - beta_1)(1 - beta_2) (sum of independent Gaussians)."""
    beta_1, beta_2, x_start, n = 0.1, 0.3, 0.8, 200_000
    schedule = schedule_from_betas([beta_1, beta_2])
    keep = (1 - beta_1) * (1 - beta_2)
    assert schedule.alphas_cumprod[1].item() == pytest.approx(keep, rel=1e-12)
    x_0 = torch.full((n, 1), x_start, dtype=torch.float64)
    x_2 = q_sample_iterative(schedule, x_0, torch.ones(n, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    se = math.sqrt((1 - keep) / n)  # standard error of the mean
    assert abs(x_2.mean().item() - math.sqrt(keep) * x_start) < 6 * se
    assert x_2.var().item() == pytest.approx(1 - keep, rel=0.03)
    # a wrong rule (standard deviations adding) would predict a different variance
    wrong = (math.sqrt(beta_1 * (1 - beta_2)) + math.sqrt(beta_2)) ** 2
    assert abs(x_2.var().item() - wrong) > 0.1


def test_cosine_first_beta_is_unclipped_and_below_pixel_bin():
    """Nichol & Dhariwal: s = 0.008 makes sqrt(beta_1) just below 1/127.5; betas are clipped only above (0.999)."""
    s = make_schedule("cosine", 1000)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    assert s.betas[0].item() == pytest.approx(1 - f(1 / 1000) / f(0), rel=1e-9)
    assert s.betas[0].item() < 1e-4  # a lower clip at 1e-4 (as in some tutorials) would change it
    assert math.sqrt(s.betas[0].item()) < 1 / 127.5
    assert int((s.betas >= 0.999).sum()) == 1 and s.betas[-1].item() == pytest.approx(0.999)


@pytest.mark.parametrize("T, scale_to_T", [(1000, True), (150, True), (150, False), (300, False)])
def test_terminal_alpha_bar_is_about_exp_minus_sum_of_betas(T, scale_to_T):
    """-log alpha_bar_T = sum -log(1 - beta_t), which lies between sum beta_t and sum beta_t + sum beta_t^2."""
    s = make_schedule("linear", T, scale_to_T=scale_to_T)
    minus_log = -math.log(s.alphas_cumprod[-1].item())
    total = s.betas.sum().item()
    assert total <= minus_log <= total + (s.betas**2).sum().item()


def test_unscaled_150_keeps_half_the_amplitude_and_scaling_fixes_it():
    unscaled, scaled = make_schedule("linear", 150, scale_to_T=False), make_schedule("linear", 150)
    assert unscaled.sqrt_alphas_cumprod[-1].item() == pytest.approx(0.468, abs=0.002)
    assert unscaled.snr[-1].item() == pytest.approx(0.281, abs=0.002)
    assert math.exp(-unscaled.betas.sum().item()) == pytest.approx(0.221, abs=0.001)
    assert scaled.alphas_cumprod[-1].item() < 1e-4


def _max_gap(fine, coarse):
    u_fine = (np.arange(fine.T) + 1) / fine.T
    u_coarse = (np.arange(coarse.T) + 1) / coarse.T
    return np.abs(np.interp(u_coarse, u_fine, fine.alphas_cumprod.numpy()) - coarse.alphas_cumprod.numpy()).max()


def test_scaling_by_1000_over_T_keeps_the_continuous_time_curve():
    """alpha_bar(t/T) of the scaled linear schedule at T=150 is within 0.01 of T=1000's; unscaled it is far off."""
    assert _max_gap(make_schedule("linear", 1000), make_schedule("linear", 150)) < 0.01
    assert _max_gap(make_schedule("linear", 1000, scale_to_T=False),
                    make_schedule("linear", 150, scale_to_T=False)) > 0.5
    assert _max_gap(make_schedule("cosine", 1000), make_schedule("cosine", 150)) < 1e-3


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
