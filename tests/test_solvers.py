"""Solvers (course_utils/solvers.py): parameterisation conversions, predict_x0, spacings, Heun and DPM-Solver++(2M)."""
import math

import pytest
import torch

import course_utils as cu
from conftest import GaussianDenoiser


@pytest.mark.parametrize("kind", cu.PARAMETERISATIONS)
def test_every_parameterisation_round_trips(kind):
    g = torch.Generator().manual_seed(0)
    x_0, noise = torch.randn(4, 6, generator=g, dtype=torch.float64), torch.randn(4, 6, generator=g, dtype=torch.float64)
    for alpha, sigma, d_alpha, d_sigma in [(0.8, 0.6, -0.6, 0.8), (0.3, 0.7, -1.0, 1.0)]:  # a VP point, the flow path
        x_t = alpha * x_0 + sigma * noise
        pred = cu.from_x0_noise(x_0, noise, kind, alpha, sigma, d_alpha, d_sigma)
        back_x0, back_noise = cu.to_x0_noise(pred, kind, x_t, alpha, sigma, d_alpha, d_sigma)
        torch.testing.assert_close(back_x0, x_0)
        torch.testing.assert_close(back_noise, noise)
        for other in cu.PARAMETERISATIONS:
            want = cu.from_x0_noise(x_0, noise, other, alpha, sigma, d_alpha, d_sigma)
            torch.testing.assert_close(cu.convert_prediction(pred, kind, other, x_t, alpha, sigma, d_alpha, d_sigma), want)


def test_v_is_the_velocity_of_the_angle_and_matches_v_target():
    # alpha = cos(phi), sigma = sin(phi): Salimans & Ho's v is d x_phi / d phi (their eq. in sec. 4).
    phi, g = 0.7, torch.Generator().manual_seed(1)
    x_0, noise = torch.randn(3, 5, generator=g, dtype=torch.float64), torch.randn(3, 5, generator=g, dtype=torch.float64)
    velocity = cu.from_x0_noise(x_0, noise, "velocity", math.cos(phi), math.sin(phi), -math.sin(phi), math.cos(phi))
    torch.testing.assert_close(velocity, cu.from_x0_noise(x_0, noise, "v", math.cos(phi), math.sin(phi)))
    schedule, t = cu.make_schedule("cosine", 50), torch.tensor([10, 20, 40])
    x = x_0.reshape(3, 1, 1, 5).float()
    eps = noise.reshape(3, 1, 1, 5).float()
    alpha = schedule.sqrt_alphas_cumprod[t].float().reshape(3, 1, 1, 1)
    sigma = schedule.sqrt_one_minus_alphas_cumprod[t].float().reshape(3, 1, 1, 1)
    torch.testing.assert_close(cu.from_x0_noise(x, eps, "v", alpha, sigma), cu.v_target(schedule, x, t, eps))


def test_straight_path_is_a_diffusion_with_alpha_1_minus_t_and_sigma_t():
    g = torch.Generator().manual_seed(2)
    x_0, noise, t = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g), torch.tensor([0.1, 0.4, 0.6, 0.9])
    x_t = cu.flow_path(x_0, noise, t)
    alpha, sigma = (1 - t)[:, None], t[:, None]
    torch.testing.assert_close(x_t, alpha * x_0 + sigma * noise)
    torch.testing.assert_close(cu.flow_target(x_0, noise), cu.from_x0_noise(x_0, noise, "velocity", alpha, sigma, -1.0, 1.0))


def test_spacings():
    schedule = cu.make_schedule("cosine", 250)
    assert cu.solver_timesteps(schedule, 10, "trailing").tolist() == [249, 224, 199, 174, 149, 124, 99, 74, 49, 24]
    assert cu.solver_timesteps(schedule, 10, "leading").tolist() == [225, 200, 175, 150, 125, 100, 75, 50, 25, 0]
    assert cu.solver_timesteps(schedule, 10, "linspace").tolist()[[0, -1][0]] == 249
    karras = cu.solver_timesteps(schedule, 10, "karras")
    sigma_bar = (1 / schedule.snr[karras]).sqrt()
    assert (karras.diff() < 0).all() and sigma_bar[0] == pytest.approx(80, rel=0.1)
    # rho = 7 crowds the steps at low noise: log sigma_bar falls faster at the start than at the end
    log_gaps = -sigma_bar.log().diff()
    assert log_gaps[0] < log_gaps[-2]
    with pytest.raises(ValueError, match="spacing"):
        cu.solver_timesteps(schedule, 10, "uniform")
    with pytest.raises(ValueError, match="n_steps"):
        cu.solver_timesteps(schedule, 0)


@pytest.mark.parametrize("solver", [cu.heun_sample, cu.dpm_solver_2m_sample])
def test_second_order_solvers_converge_at_second_order(solver):
    # Data N(0, s^2): the probability-flow ODE maps x at step t0 to x_0 = s x / sqrt(alpha^2 s^2 + sigma^2).
    s, schedule = 0.5, cu.make_schedule("cosine", 1000)
    model = GaussianDenoiser(schedule, s)
    z = torch.randn(64, 1, generator=torch.Generator().manual_seed(4))
    errors = []
    for n in (8, 16, 32):
        t0 = cu.solver_timesteps(schedule, n, "karras")[0].item()
        a, sg = schedule.sqrt_alphas_cumprod[t0].item(), schedule.sqrt_one_minus_alphas_cumprod[t0].item()
        exact = s * z / math.sqrt(a * a * s * s + sg * sg)
        x = solver(model, schedule, z.shape, n, spacing="karras", x_T=z, clip_x0=False, progress=False)
        errors.append((x - exact).abs().max().item())
    assert errors[2] < 0.05
    assert errors[1] / errors[2] > 3.2, errors  # halving the step size divides the error by about 4


def test_dpm_solver_handles_zero_terminal_snr_and_noise_prediction_cannot():
    z_schedule = cu.rescale_zero_terminal_snr(cu.make_schedule("linear", 250, scale_to_T=False))
    x = cu.dpm_solver_2m_sample(GaussianDenoiser(z_schedule, 0.5, prediction="v"), z_schedule, (16, 1), 10,
                                progress=False, generator=torch.Generator().manual_seed(5))
    assert torch.isfinite(x).all()
    with pytest.raises(ValueError, match="cannot give x_0 where alpha_bar_t = 0"):
        cu.dpm_solver_2m_sample(GaussianDenoiser(z_schedule, 0.5, prediction="noise"), z_schedule, (4, 1), 5,
                                progress=False)
    with pytest.raises(ValueError, match="zero terminal SNR"):
        cu.heun_sample(GaussianDenoiser(z_schedule, 0.5, prediction="v"), z_schedule, (4, 1), 5, progress=False)


def test_predict_x0_reads_each_parameterisation():
    schedule = cu.make_schedule("cosine", 100)
    x_t, t = torch.randn(6, 3), torch.full((6,), 40)
    want = GaussianDenoiser(schedule, 0.7, "x0")(x_t, t)
    for kind in ("noise", "x0", "v"):
        got = cu.predict_x0(GaussianDenoiser(schedule, 0.7, kind), schedule, x_t, t, clip_x0=False)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="prediction kind"):
        cu.to_x0_noise(x_t, "score", x_t, 0.5, 0.5)
