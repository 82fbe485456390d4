"""Forward process and posterior (course_utils/diffusion.py): closed forms checked against definitions and sampling."""
import math

import pytest
import torch

from course_utils import (
    extract, make_schedule, predict_noise_from_v, predict_noise_from_x0, predict_x0_from_noise,
    q_posterior_mean_variance, q_sample, q_sample_iterative, schedule_from_betas, v_target,
)


@pytest.fixture(scope="module")
def schedule():
    return make_schedule("linear", 100)


def test_q_sample_is_the_closed_form(schedule):
    x_0 = torch.randn(4, 1, 8, 8)
    noise = torch.randn_like(x_0)
    t = torch.tensor([0, 10, 50, 99])
    x_t = q_sample(schedule, x_0, t, noise)
    for i, ti in enumerate(t.tolist()):
        abar = schedule.alphas_cumprod[ti].item()
        expected = abar ** 0.5 * x_0[i] + (1 - abar) ** 0.5 * noise[i]
        torch.testing.assert_close(x_t[i], expected)
    assert x_t.shape == x_0.shape and x_t.dtype == x_0.dtype


def test_extract_shapes_and_dtype(schedule):
    x = torch.zeros(3, 2, 5, 5, dtype=torch.float32)
    out = extract(schedule.betas, torch.tensor([0, 1, 99]), x)
    assert out.shape == (3, 1, 1, 1) and out.dtype == torch.float32
    torch.testing.assert_close(out.flatten(), schedule.betas[[0, 1, 99]].float())
    assert extract(schedule.betas, torch.tensor([2, 3]), torch.zeros(2, 7)).shape == (2, 1)


def test_q_sample_int_t_broadcasts(schedule):
    x_0 = torch.randn(3, 1, 4, 4)
    noise = torch.randn_like(x_0)
    torch.testing.assert_close(q_sample(schedule, x_0, 7, noise), q_sample(schedule, x_0, torch.full((3,), 7), noise))


@pytest.mark.parametrize("t", [0, 20, 60, 99])
def test_closed_form_and_iterative_chain_agree_in_distribution(schedule, t):
    """Both give N(sqrt(abar) x_0, (1 - abar) I): compare mean and variance over many samples."""
    n = 20000
    x_0 = torch.linspace(-1, 1, 16).repeat(n, 1).double()  # [n, 16], 16 different pixel values
    tt = torch.full((n,), t)
    closed = q_sample(schedule, x_0, tt)
    chain = q_sample_iterative(schedule, x_0, tt, generator=torch.Generator().manual_seed(1))
    abar = schedule.alphas_cumprod[t]
    true_mean = abar.sqrt() * x_0[0]
    for samples in (closed, chain):
        # the standard error of the mean is sqrt((1-abar)/n) < 0.0071: 6 standard errors
        assert (samples.mean(0) - true_mean).abs().max() < 6 * ((1 - abar) / n).sqrt() + 1e-12
        var = samples.var(0)
        if t > 0:
            # relative standard error of a variance estimate is sqrt(2/n) = 0.01
            assert ((var / (1 - abar)) - 1).abs().max() < 0.06
    # and a wrong schedule value is caught: the mean at t is far from the mean at t+30
    if t < 60:
        wrong = schedule.alphas_cumprod[t + 30].sqrt() * x_0[0]
        assert (chain.mean(0) - wrong).abs().max() > 10 * ((1 - abar) / n).sqrt()


def test_iterative_respects_per_sample_t(schedule):
    """Sample 0 stops after step 0, sample 1 runs steps 0..5: replay the same noise draws by hand."""
    x_0 = torch.ones(2, 3)
    out = q_sample_iterative(schedule, x_0, torch.tensor([0, 5]), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    expected = x_0.clone()
    for s in range(6):
        noise = torch.randn(2, 3, generator=gen)
        step = schedule.alphas[s].sqrt().float() * expected + schedule.betas[s].sqrt().float() * noise
        expected = torch.where(torch.tensor([[s <= 0], [s <= 5]]), step, expected)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize("beta", [0.02, 0.1, 0.5])
def test_one_step_is_variance_preserving_mix(beta):
    """x_1 = sqrt(1 - beta) x_0 + sqrt(beta) noise, and Var(x_1) = 1 when Var(x_0) = 1; adding the noise without the
    shrink gives Var = 1 + beta."""
    one_step = schedule_from_betas([beta])
    x_0 = torch.randn(100_000, 1, dtype=torch.float64)
    noise = torch.randn_like(x_0)
    x_1 = q_sample(one_step, x_0, 0, noise)
    torch.testing.assert_close(x_1, math.sqrt(1 - beta) * x_0 + math.sqrt(beta) * noise)
    # relative standard error of a variance estimate is sqrt(2/n) = 0.0045
    assert x_1.var().item() == pytest.approx(1.0, abs=0.03)
    assert (x_0 + math.sqrt(beta) * noise).var().item() == pytest.approx(1.0 + beta, abs=0.03)


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


def test_variance_stays_one_for_unit_variance_data():
    schedule = make_schedule("cosine", 1000)
    x_0 = torch.randn(200000, dtype=torch.float64).reshape(-1, 1)
    for t in [0, 250, 500, 999]:
        x_t = q_sample(schedule, x_0, torch.full((x_0.shape[0],), t))
        assert x_t.var().item() == pytest.approx(1.0, abs=0.015)


def test_input_scaling_shifts_log_snr_by_2_log_b():
    """Chen (2023): x_t = sqrt(abar) b x_0 + sqrt(1 - abar) noise has SNR b^2 abar / (1 - abar)."""
    s = make_schedule("cosine", 1000)
    b, t = 0.5, 300
    x_0 = torch.full((200_000, 1), 0.8, dtype=torch.float64)
    x_t = q_sample(s, b * x_0, t)
    measured = x_t.mean() ** 2 / x_t.var() / 0.8 ** 2
    assert math.log(measured.item()) == pytest.approx(s.log_snr[t].item() + 2 * math.log(b), abs=0.03)


def test_posterior_mean_and_variance_formulas(schedule):
    x_0, x_t = torch.randn(3, 1, 4, 4, dtype=torch.float64), torch.randn(3, 1, 4, 4, dtype=torch.float64)
    t = torch.tensor([1, 40, 99])
    mean, var = q_posterior_mean_variance(schedule, x_0, x_t, t)
    for i, ti in enumerate(t.tolist()):
        b, a = schedule.betas[ti], schedule.alphas[ti]
        abar, abar_prev = schedule.alphas_cumprod[ti], schedule.alphas_cumprod[ti - 1]
        m = b * abar_prev.sqrt() / (1 - abar) * x_0[i] + (1 - abar_prev) * a.sqrt() / (1 - abar) * x_t[i]
        torch.testing.assert_close(mean[i], m)
        torch.testing.assert_close(var[i].flatten()[0], b * (1 - abar_prev) / (1 - abar))


def test_posterior_mean_equals_noise_form(schedule):
    """mu_tilde(x_t, x_0(noise)) = (x_t - beta_t / sqrt(1 - abar_t) * noise) / sqrt(alpha_t) (Ho et al. eq. 11)."""
    x_0 = torch.randn(5, 1, 4, 4, dtype=torch.float64)
    noise = torch.randn_like(x_0)
    t = torch.tensor([1, 2, 30, 70, 99])
    x_t = q_sample(schedule, x_0, t, noise)
    mean, _ = q_posterior_mean_variance(schedule, x_0, x_t, t)
    b = extract(schedule.betas, t, x_t)
    noise_form = (x_t - b / extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t) * noise) * extract(
        schedule.sqrt_recip_alphas, t, x_t)
    torch.testing.assert_close(mean, noise_form)


def test_posterior_is_the_bayes_conditional(schedule):
    """Sampling x_{t-1} ~ q(.|x_0) then x_t ~ q(x_t|x_{t-1}): regress x_{t-1} on x_t to read off the posterior."""
    t = 30
    n = 200000
    x_0 = torch.full((n, 1), 0.7, dtype=torch.float64)
    x_prev = q_sample(schedule, x_0, t - 1)
    x_t = schedule.alphas[t].sqrt() * x_prev + schedule.betas[t].sqrt() * torch.randn_like(x_prev)
    # linear regression x_prev ~ c1 * x_0 + c2 * x_t: slope on x_t equals coef2, residual variance equals beta_tilde
    xt_c = x_t - x_t.mean()
    slope = (xt_c * (x_prev - x_prev.mean())).sum() / (xt_c ** 2).sum()
    assert slope.item() == pytest.approx(schedule.posterior_mean_coef2[t].item(), abs=0.01)
    resid = x_prev - x_prev.mean() - slope * xt_c
    assert resid.var().item() == pytest.approx(schedule.posterior_variance[t].item(), rel=0.02)


def test_x0_and_noise_predictions_invert_q_sample(schedule):
    x_0 = torch.randn(4, 1, 6, 6, dtype=torch.float64)
    noise = torch.randn_like(x_0)
    t = torch.tensor([0, 3, 50, 99])
    x_t = q_sample(schedule, x_0, t, noise)
    torch.testing.assert_close(predict_x0_from_noise(schedule, x_t, t, noise), x_0)
    torch.testing.assert_close(predict_noise_from_x0(schedule, x_t, t, x_0), noise)


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


@pytest.mark.parametrize("t, err, msg", [
    (torch.tensor([100, 0]), ValueError, r"out of range.*0 <= t <= 99"),
    (torch.tensor([-1, 0]), ValueError, r"out of range"),
    (torch.tensor([1.0, 2.0]), TypeError, r"integers.*float32"),
    (torch.tensor([1, 2, 3]), ValueError, r"shape \[2\]"),
    (2.5, TypeError, r"int or a LongTensor"),
    (True, TypeError, r"bool"),
])
def test_bad_timesteps_rejected(schedule, t, err, msg):
    with pytest.raises(err, match=msg):
        q_sample(schedule, torch.zeros(2, 1, 4, 4), t)


def test_bad_batch_rank_rejected(schedule):
    with pytest.raises(ValueError, match=r"\[B, C, H, W\].*shape \(16,\)"):
        q_sample(schedule, torch.zeros(16), torch.tensor([0]))


def test_noise_shape_mismatch_rejected(schedule):
    with pytest.raises(ValueError, match="noise must have the shape"):
        q_sample(schedule, torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), torch.zeros(2, 1, 4, 5))


def test_integer_images_rejected(schedule):
    with pytest.raises(TypeError, match="floating-point"):
        q_sample(schedule, torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]))


def test_v_target_and_its_inverse(schedule):
    """v = sqrt(abar) noise - sqrt(1 - abar) x_0 (Salimans & Ho 2022); noise = sqrt(abar) v + sqrt(1 - abar) x_t."""
    x_0, noise, t = torch.rand(4, 1, 3, 3) * 2 - 1, torch.randn(4, 1, 3, 3), torch.tensor([0, 20, 60, 99])
    abar = schedule.alphas_cumprod[t].float().reshape(-1, 1, 1, 1)
    v = v_target(schedule, x_0, t, noise)
    torch.testing.assert_close(v, abar.sqrt() * noise - (1 - abar).sqrt() * x_0)
    x_t = q_sample(schedule, x_0, t, noise)
    torch.testing.assert_close(predict_noise_from_v(schedule, x_t, t, v), noise, atol=1e-5, rtol=1e-5)
    # the v error is the x_0 error scaled by 1 / sqrt(1 - abar): |v - v'|^2 = (SNR + 1) |x_0 - x_0'|^2 * abar / abar
    x_0_other = x_0 + 0.1
    v_other = v_target(schedule, x_0_other, t, (x_t - abar.sqrt() * x_0_other) / (1 - abar).sqrt())
    ratio = ((v - v_other) ** 2).flatten(1).sum(1) / ((x_0 - x_0_other) ** 2).flatten(1).sum(1)
    torch.testing.assert_close(ratio, (schedule.snr[t] + 1).float(), rtol=1e-3, atol=1e-3)
