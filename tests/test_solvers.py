"""The design space (course_utils.solvers, notebook 11): conversions between parameterisations, the ELBO weight,
zero terminal SNR, timestep spacings, DDIM as an Euler step, and the order of Heun and DPM-Solver++(2M)."""
import math

import pytest
import torch

import course_utils as cu


class GaussianDenoiser(torch.nn.Module):
    """The exact x_0 predictor for data N(0, s^2 I): E[x_0 | x_t] = alpha s^2 x_t / (alpha^2 s^2 + sigma^2)."""

    def __init__(self, schedule, s, prediction="x0"):
        super().__init__()
        self.schedule, self.s = schedule, s
        self.config = cu.UNetConfig(prediction=prediction)
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, x, t, y=None):
        alpha = self.schedule.sqrt_alphas_cumprod[t].float().reshape(-1, *([1] * (x.ndim - 1)))
        sigma = self.schedule.sqrt_one_minus_alphas_cumprod[t].float().reshape(alpha.shape)
        x_0 = alpha * self.s**2 * x / (alpha**2 * self.s**2 + sigma**2)
        return cu.from_x0_noise(x_0, (x - alpha * x_0) / sigma, self.config.prediction, alpha, sigma)


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


def test_elbo_weight_is_proportional_to_ho_et_al_eq_12():
    schedule = cu.make_schedule("linear", 100)
    t = torch.arange(1, 100)
    b, a, ab = schedule.betas[t], schedule.alphas[t], schedule.alphas_cumprod[t]
    ho = b**2 / (2 * schedule.posterior_variance[t] * a * (1 - ab))  # weight of the noise error in L_{t-1}
    ours = cu.loss_weights(schedule, t, "elbo", prediction="noise").double()
    torch.testing.assert_close(ours / ours[0], ho / ho[0], rtol=1e-5, atol=0)
    full = cu.loss_weights(schedule, torch.arange(100), "elbo", prediction="noise")
    assert full.mean().item() == pytest.approx(1.0, rel=1e-5) and full[0] == full[1]
    # the same weighting expressed on x_0 and v errors: multiply back by what each error is worth in noise units
    snr = schedule.snr[t].float()
    torch.testing.assert_close(cu.loss_weights(schedule, t, "elbo", prediction="x0") / snr, ours.float())
    torch.testing.assert_close(cu.loss_weights(schedule, t, "elbo", prediction="v") * (snr + 1) / snr, ours.float())


def test_zero_terminal_snr_rescale_follows_lin_et_al():
    base = cu.make_schedule("linear", 250, scale_to_T=False)
    z = cu.rescale_zero_terminal_snr(base)
    assert z.alphas_cumprod[-1].item() == 0.0 and z.betas[-1].item() == 1.0 and z.snr[-1].item() == 0.0
    torch.testing.assert_close(z.alphas_cumprod[0], base.alphas_cumprod[0])
    # sqrt(alpha_bar) is an affine map of the old one: each step keeps its relative place between the ends
    old, new = base.sqrt_alphas_cumprod, z.sqrt_alphas_cumprod
    torch.testing.assert_close((new - new[-1]) / (new[0] - new[-1]), (old - old[-1]) / (old[0] - old[-1]))
    assert (z.betas[:-1] < 1).all() and (z.snr.diff() < 0).all()
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        cu.schedule_from_betas(z.betas)  # a beta of 1 needs the explicit opt-in
    with pytest.raises(ValueError, match="needs prediction 'v' or 'x0'"):
        cu.default_config(zero_terminal_snr=True, model=cu.UNetConfig(prediction="noise"))


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


def test_ddim_with_eta_0_is_an_euler_step_of_the_probability_flow_ode():
    # In x_bar = x / alpha, sigma_bar = sigma / alpha: x_bar_prev = x_bar_t + (sigma_bar_prev - sigma_bar_t) noise_pred.
    schedule = cu.make_schedule("cosine", 100)
    model = GaussianDenoiser(schedule, 0.5, prediction="noise")
    x_t = torch.randn(8, 1, 2, 2, generator=torch.Generator().manual_seed(3))
    t, t_prev = 60, 35
    x_prev, _ = cu.ddim_step(model, schedule, x_t, t, t_prev, eta=0.0, clip_x0=False)
    noise_pred = model(x_t, torch.full((8,), t))
    a_t, a_p = schedule.sqrt_alphas_cumprod[t].item(), schedule.sqrt_alphas_cumprod[t_prev].item()
    sb_t = schedule.sqrt_one_minus_alphas_cumprod[t].item() / a_t
    sb_p = schedule.sqrt_one_minus_alphas_cumprod[t_prev].item() / a_p
    torch.testing.assert_close(x_prev / a_p, x_t / a_t + (sb_p - sb_t) * noise_pred, rtol=1e-5, atol=1e-5)


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
