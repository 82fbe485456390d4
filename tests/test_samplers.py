"""Samplers: the reverse step, DDPM and DDIM (eq. 12, marginals, eta = 1 is DDPM), guidance, inversion, slerp, oracles."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from conftest import TINY_UNET, Const, Labelled, Oracle, Smooth
from course_utils import (
    ddim_invert, ddim_sample_loop, ddim_sigma, ddim_step, ddim_timesteps, extract, make_schedule, p_mean_variance,
    p_sample, p_sample_loop, predict_noise, q_posterior_mean_variance, q_sample, UNet,
)


T = 20


@pytest.fixture(scope="module")
def schedule():
    return make_schedule("cosine", T)


@pytest.fixture(scope="module")
def linear_schedule():
    return make_schedule("linear", 100)


def tiny_unet():
    torch.manual_seed(0)
    return UNet(TINY_UNET)


def x_star():
    return torch.linspace(-0.9, 0.9, 16).reshape(1, 1, 4, 4)


def test_p_mean_variance_is_posterior_at_x0_pred_and_equals_noise_form(schedule):
    model = tiny_unet()
    x_t, t = torch.randn(3, 1, 8, 8), torch.tensor([1, 10, 19])
    out = p_mean_variance(model, schedule, x_t, t, clip_x0=False)
    mean, var = q_posterior_mean_variance(schedule, out["x_0_pred"], x_t, t)
    torch.testing.assert_close(out["mean"], mean)
    torch.testing.assert_close(out["variance"], var)
    beta, abar, alpha = (extract(a, t, x_t) for a in (schedule.betas, schedule.alphas_cumprod, schedule.alphas))
    eps_form = (x_t - beta / (1 - abar).sqrt() * out["noise_pred"]) / alpha.sqrt()  # Ho et al. eq. 11
    torch.testing.assert_close(out["mean"], eps_form, atol=1e-4, rtol=1e-4)
    beta_var = p_mean_variance(model, schedule, x_t, t, variance="beta")["variance"]
    torch.testing.assert_close(beta_var, beta)
    with pytest.raises(ValueError, match="'posterior' or 'beta'"):
        p_mean_variance(model, schedule, x_t, t, variance="learned")


def test_clipping_keeps_x0_pred_in_range(schedule):
    model = tiny_unet()
    x_t, t = 5 * torch.randn(2, 1, 8, 8), torch.tensor([19, 19])
    assert p_mean_variance(model, schedule, x_t, t, clip_x0=True)["x_0_pred"].abs().max() <= 1.0
    assert p_mean_variance(model, schedule, x_t, t, clip_x0=False)["x_0_pred"].abs().max() > 1.0


def test_p_sample_adds_no_noise_at_t0(schedule):
    model = tiny_unet()
    x_t = torch.randn(2, 1, 8, 8)
    a, _ = p_sample(model, schedule, x_t, torch.tensor([0, 5]), generator=torch.Generator().manual_seed(1))
    b, _ = p_sample(model, schedule, x_t, torch.tensor([0, 5]), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a[0], b[0])  # t = 0: the mean, whatever the seed
    assert not torch.allclose(a[1], b[1])
    mean, _ = p_sample(model, schedule, x_t, torch.tensor([0, 5]), add_noise=False)
    torch.testing.assert_close(mean[0], a[0])


def test_p_sample_loop_takes_exactly_T_steps_and_is_seeded(schedule):
    oracle = Oracle(schedule, x_star())
    a = p_sample_loop(oracle, schedule, (2, 1, 4, 4), generator=torch.Generator().manual_seed(0), progress=False)
    assert oracle.calls == T and a.shape == (2, 1, 4, 4)
    model = tiny_unet()
    runs = [p_sample_loop(model, schedule, (2, 1, 8, 8), generator=torch.Generator().manual_seed(s), progress=False)
            for s in (3, 3, 4)]
    torch.testing.assert_close(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2])
    assert model.training, "the sampler puts the model back in training mode when done"


def test_trajectory(schedule):
    x_0, traj = p_sample_loop(tiny_unet(), schedule, (1, 1, 8, 8), progress=False, return_trajectory_every=10)
    assert traj["t"] == [19, 9, 0]
    torch.testing.assert_close(traj["x_t"][-1], x_0)


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_ancestral_sampler_recovers_single_point_with_oracle(schedule, variance):
    x_0 = p_sample_loop(Oracle(schedule, x_star()), schedule, (3, 1, 4, 4), progress=False, variance=variance)
    torch.testing.assert_close(x_0, x_star().expand(3, 1, 4, 4), atol=1e-5, rtol=0)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_recovers_single_point_with_oracle(schedule, eta):
    oracle = Oracle(schedule, x_star())
    x_0 = ddim_sample_loop(oracle, schedule, (3, 1, 4, 4), n_steps=10, eta=eta, progress=False)
    assert oracle.calls == 10
    torch.testing.assert_close(x_0, x_star().expand(3, 1, 4, 4), atol=1e-5, rtol=0)


def test_ddim_timesteps():
    assert ddim_timesteps(1000, 5).tolist() == [0, 250, 500, 749, 999]
    assert ddim_timesteps(50, 50).tolist() == list(range(50))
    with pytest.raises(ValueError, match="between 1 and T=50"):
        ddim_timesteps(50, 51)


def test_ddim_eta0_step_is_equation_12(linear_schedule):
    """x_prev = sqrt(abar_prev) x_0_pred + sqrt(1 - abar_prev) noise_pred (Song et al. eq. 12 with eta = 0), which is
    an Euler step of the probability-flow ODE d(x / alpha) = noise_pred d(sigma / alpha), alpha = sqrt(abar)."""
    schedule, model = linear_schedule, tiny_unet().eval()
    x_t, t, t_prev = torch.randn(3, 1, 8, 8), 60, 35
    with torch.no_grad():
        noise_pred = predict_noise(model, x_t, torch.full((3,), t))
        x_prev, x_0_pred = ddim_step(model, schedule, x_t, t, t_prev, eta=0.0, clip_x0=False)
    a_t, a_prev = schedule.alphas_cumprod[t].item(), schedule.alphas_cumprod[t_prev].item()
    expected_x_0 = (x_t - math.sqrt(1 - a_t) * noise_pred) / math.sqrt(a_t)
    torch.testing.assert_close(x_0_pred, expected_x_0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x_prev, math.sqrt(a_prev) * expected_x_0 + math.sqrt(1 - a_prev) * noise_pred,
                               atol=1e-5, rtol=1e-5)
    sigma_bar_t, sigma_bar_prev = math.sqrt((1 - a_t) / a_t), math.sqrt((1 - a_prev) / a_prev)
    torch.testing.assert_close(x_prev / math.sqrt(a_prev),
                               x_t / math.sqrt(a_t) + (sigma_bar_prev - sigma_bar_t) * noise_pred, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_family_keeps_the_marginals(linear_schedule, eta):
    """With the exact noise, a DDIM step from x_t ~ q(x_t | x_0) gives x_prev ~ N(sqrt(abar_prev) x_0, (1 - abar_prev) I)
    for every eta and any jump: the non-Markovian processes share DDPM's marginals (Song et al. 2021, Lemma 1)."""
    schedule, n, t, t_prev = linear_schedule, 100_000, 80, 40
    x_star = torch.tensor([0.7, -0.3]).reshape(1, 2, 1, 1)
    model = Oracle(schedule, x_star)
    a_t, a_prev = schedule.alphas_cumprod[t].item(), schedule.alphas_cumprod[t_prev].item()
    x_t = math.sqrt(a_t) * x_star + math.sqrt(1 - a_t) * torch.randn(n, 2, 1, 1, dtype=torch.float64)
    x_prev, _ = ddim_step(model, schedule, x_t, t, t_prev, eta=eta, generator=torch.Generator().manual_seed(1),
                          clip_x0=False)
    x_prev = x_prev.double().flatten(1)
    torch.testing.assert_close(x_prev.mean(0), math.sqrt(a_prev) * x_star.flatten().double(), atol=0.01, rtol=0)
    torch.testing.assert_close(x_prev.var(0), torch.full((2,), 1 - a_prev, dtype=torch.float64), atol=0, rtol=0.02)
    sigma_sq = ddim_sigma(schedule, t, t_prev, eta).item() ** 2
    assert sigma_sq == pytest.approx(eta**2 * (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))


def test_ddim_eta0_is_deterministic_and_eta1_is_not(schedule):
    model, x_T = tiny_unet(), torch.randn(2, 1, 8, 8)
    a = ddim_sample_loop(model, schedule, x_T.shape, 7, eta=0.0, x_T=x_T, progress=False)
    b = ddim_sample_loop(model, schedule, x_T.shape, 7, eta=0.0, x_T=x_T, generator=torch.Generator().manual_seed(9),
                         progress=False)
    torch.testing.assert_close(a, b)
    c = ddim_sample_loop(model, schedule, x_T.shape, 7, eta=1.0, x_T=x_T, generator=torch.Generator().manual_seed(9),
                         progress=False)
    assert not torch.allclose(a, c)


def test_ddim_inversion_round_trip(schedule):
    model = Const(0.3 * torch.randn(1, 1, 4, 4))
    x_0 = x_star().repeat(2, 1, 1, 1)
    x_T = ddim_invert(model, schedule, x_0, n_steps=12, progress=False)
    back = ddim_sample_loop(model, schedule, x_0.shape, 12, x_T=x_T, clip_x0=False, progress=False)
    torch.testing.assert_close(back, x_0, atol=1e-4, rtol=0)


def test_classifier_free_guidance_formula():
    """noise_uncond + s (noise_cond - noise_uncond), the null label giving noise_uncond; s = 1 + w is Ho & Salimans'
    (1 + w) noise_cond - w noise_uncond (2021, eq. 6), and s = 0 is the unconditional prediction."""
    model = Labelled()
    x, t, y = torch.zeros(2, 1, 2, 2), torch.tensor([3, 3]), torch.tensor([2, 4])
    for s in (0.0, 1.0, 3.0):  # noise_uncond + s (noise_cond - noise_uncond), noise_uncond = 10
        out = predict_noise(model, x, t, y, guidance_scale=s)
        expected = (10 + s * (y.float() - 10)).reshape(-1, 1, 1, 1).expand_as(x)
        torch.testing.assert_close(out, expected)
    noise_cond, noise_uncond = predict_noise(model, x, t, y), predict_noise(model, x, t, torch.full_like(y, 10))
    for w in (0.0, 1.0, 3.0):
        guided = predict_noise(model, x, t, y, guidance_scale=1 + w)
        torch.testing.assert_close(guided, (1 + w) * noise_cond - w * noise_uncond)
    torch.testing.assert_close(predict_noise(model, x, t, y, guidance_scale=0.0), noise_uncond)


def test_q_sample_then_oracle_gives_back_the_noise(schedule):
    noise, t = torch.randn(2, 1, 4, 4), torch.tensor([0, 19])
    x_t = q_sample(schedule, x_star().repeat(2, 1, 1, 1), t, noise)
    torch.testing.assert_close(Oracle(schedule, x_star())(x_t, t), noise, atol=1e-4, rtol=0)


def test_ddim_eta1_on_all_steps_is_ancestral_sampling(schedule):
    """eta = 1 with n_steps = T: sigma^2 = beta_tilde_t and the mean is the posterior mean at x_0_pred, so
    DDIM and Algorithm 2 give the same samples from the same random numbers (clipped or not)."""
    for t in range(1, T):
        assert ddim_sigma(schedule, t, t - 1, 1.0) ** 2 == pytest.approx(schedule.posterior_variance[t].item(), rel=1e-9)
    model = Smooth()
    for clip in (True, False):
        ddpm = p_sample_loop(model, schedule, (2, 1, 8, 8), generator=torch.Generator().manual_seed(4),
                             clip_x0=clip, progress=False)
        ddim = ddim_sample_loop(model, schedule, (2, 1, 8, 8), n_steps=T, eta=1.0,
                                generator=torch.Generator().manual_seed(4), clip_x0=clip, progress=False)
        torch.testing.assert_close(ddim, ddpm, atol=1e-5, rtol=1e-5)


def test_slerp_formula_ends_and_norm():
    """slerp(a, b; lam) = sin((1-lam) theta)/sin theta a + sin(lam theta)/sin theta b (walkthrough 07, section 5)."""
    from course_utils import slerp
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 1, 16, 16, generator=g, dtype=torch.float64)
    b = b * a.norm() / b.norm()  # equal norms: slerp keeps the norm exactly
    lam = torch.tensor([0.0, 0.3, 0.5, 1.0], dtype=torch.float64)
    path = slerp(a, b, lam)
    assert path.shape == (4, 1, 16, 16)
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    torch.testing.assert_close(path.flatten(1).norm(dim=1), a.norm().expand(4))
    theta = np.arccos(float((a * b).sum() / (a.norm() * b.norm())))
    by_hand = (np.sin(0.7 * theta) * a.numpy() + np.sin(0.3 * theta) * b.numpy()) / np.sin(theta)
    np.testing.assert_allclose(path[1].numpy(), by_hand, rtol=1e-12)
    # orthogonal unit vectors: the midpoint is (a + b) / sqrt(2); the straight line's midpoint has norm 1/sqrt(2)
    e1, e2 = torch.eye(2, dtype=torch.float64)
    torch.testing.assert_close(slerp(e1, e2, [0.5])[0], (e1 + e2) / 2 ** 0.5)
    with pytest.raises(ValueError, match="parallel"):
        slerp(a, 2 * a, [0.5])
    with pytest.raises(ValueError, match="same shape"):
        slerp(a, b[0], [0.5])


def test_ddim_step_takes_an_int_or_a_repeated_step_tensor(schedule):
    model, x_t = Smooth(), torch.randn(3, 1, 4, 4)
    by_int, _ = ddim_step(model, schedule, x_t, 10, 5)
    by_tensor, _ = ddim_step(model, schedule, x_t, torch.full((3,), 10), 5)
    torch.testing.assert_close(by_int, by_tensor)
    with pytest.raises(ValueError, match="moves the whole batch from one t"):
        ddim_step(model, schedule, x_t, torch.tensor([10, 9, 10]), 5)
    with pytest.raises(TypeError, match="must hold integers"):
        ddim_step(model, schedule, x_t, torch.full((3,), 10.0), 5)
    with pytest.raises(ValueError, match="timestep out of range"):
        ddim_step(model, schedule, x_t, T, 5)
    with pytest.raises(ValueError, match="t_prev must be an int with -1 <= t_prev < t=10"):
        ddim_step(model, schedule, x_t, 10, 10)


def test_negative_eta_is_rejected_on_entry(schedule):
    with pytest.raises(ValueError, match="eta must be >= 0"):
        ddim_sample_loop(Smooth(), schedule, (2, 1, 4, 4), 5, eta=-1.0, progress=False)
    with pytest.raises(ValueError, match="eta must be >= 0"):
        ddim_step(Smooth(), schedule, torch.randn(2, 1, 4, 4), 10, 5, eta=-0.5)


def test_v_predicting_model_samples_through_its_noise(schedule):
    """A v model's output is turned into noise with the schedule: an oracle in v form gives the oracle's samples."""
    x_star = torch.linspace(-0.8, 0.8, 16).reshape(1, 1, 4, 4)

    class OracleV(Oracle):
        config = dataclasses.replace(TINY_UNET, image_size=4, channel_mults=(1,), prediction="v")

        def forward(self, x, t, y=None):
            noise = super().forward(x, t, y)
            abar = extract(self.schedule.alphas_cumprod, t, x)
            return abar.sqrt() * noise - (1 - abar).sqrt() * self.x_star

    v_model, noise_model = OracleV(schedule, x_star), Oracle(schedule, x_star)
    x_t, t = torch.randn(2, 1, 4, 4), torch.tensor([3, 15])
    torch.testing.assert_close(predict_noise(v_model, x_t, t, schedule=schedule), predict_noise(noise_model, x_t, t),
                               atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="predicts v: pass schedule="):
        predict_noise(v_model, x_t, t)
    out = ddim_sample_loop(v_model, schedule, (2, 1, 4, 4), 10, progress=False)
    torch.testing.assert_close(out, x_star.expand(2, 1, 4, 4), atol=1e-3, rtol=0)
