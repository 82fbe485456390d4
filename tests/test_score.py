"""Score view (course_utils/score.py): scaled scores, the toy mixture's exact score, Langevin, PC, guidance as Bayes."""
import math

import pytest
import torch

from conftest import HalfX
from course_utils import make_schedule, p_sample_loop, q_sample
from course_utils.score import (
    GaussianMixture, ToyNoiseMLP, corrector_step_size, langevin_dynamics, noise_from_score, pc_sample_loop,
    score_from_noise, train_toy_noise_model,
)


@pytest.fixture(scope="module")
def schedule():
    return make_schedule("linear", 100)


@pytest.fixture(scope="module")
def mixture():
    return GaussianMixture([[-2.0, -1.0], [2.0, -1.0], [0.0, 2.0]], [0.3, 0.5, 0.4], [0.5, 0.3, 0.2])


def test_score_from_noise_is_minus_noise_over_sqrt_one_minus_alpha_bar(schedule):
    noise_pred = torch.randn(3, 1, 4, 4)
    t = torch.tensor([0, 40, 99])
    score = score_from_noise(schedule, noise_pred, t)
    for i, ti in enumerate(t.tolist()):
        torch.testing.assert_close(score[i], -noise_pred[i] / math.sqrt(1 - schedule.alphas_cumprod[ti].item()))
    torch.testing.assert_close(noise_from_score(schedule, score, t), noise_pred)


def test_best_noise_prediction_is_the_scaled_score(schedule):
    """Tweedie/Vincent: E[noise | x_t] = -sqrt(1 - alpha_bar_t) grad log q_t(x_t), here for x_0 ~ N(m, s^2).

    Then q_t = N(sqrt(abar) m, abar s^2 + 1 - abar), so E[noise | x_t] is linear in x_t with slope
    sqrt(1 - abar) / (abar s^2 + 1 - abar); a least-squares fit of the noise on x_t recovers it.
    """
    m, s, t, n = 1.5, 0.5, 30, 400_000
    abar = schedule.alphas_cumprod[t].item()
    x_0 = m + s * torch.randn(n, 1, dtype=torch.float64)
    noise = torch.randn_like(x_0)
    x_t = q_sample(schedule, x_0, t, noise)
    centred = x_t - x_t.mean()
    slope = (centred * noise).sum() / (centred**2).sum()
    exact = GaussianMixture([[m]], [s], [1.0]).noised(abar)
    x_grid = torch.linspace(-1, 3, 5, dtype=torch.float64)[:, None]
    scaled_score = -math.sqrt(1 - abar) * exact.score(x_grid)  # the line E[noise | x_t] should follow
    fitted = slope * (x_grid - math.sqrt(abar) * m)
    torch.testing.assert_close(fitted, scaled_score, atol=0.01, rtol=0.02)


@pytest.mark.parametrize("alpha_bar", [1.0, 0.7, 0.1, 1e-3])
def test_mixture_score_matches_autograd_of_log_prob(mixture, alpha_bar):
    noised = mixture.noised(alpha_bar)
    x = (3 * torch.randn(64, 2, dtype=torch.float64)).requires_grad_()
    (grad,) = torch.autograd.grad(noised.log_prob(x).sum(), x)
    torch.testing.assert_close(noised.score(x.detach()), grad)


def test_noised_mixture_is_the_law_of_q_sample(mixture, schedule):
    """q_sample of mixture samples has the mean and covariance of the closed-form noised mixture."""
    t, n = 25, 200_000
    abar = schedule.alphas_cumprod[t].item()
    x_t = q_sample(schedule, mixture.sample(n, generator=torch.Generator().manual_seed(0)).double(), t)
    noised = mixture.noised(abar)
    mean = (noised.weights[:, None] * noised.means).sum(0)
    second = sum(w * (torch.outer(m, m) + s**2 * torch.eye(2)) for w, m, s in zip(noised.weights, noised.means, noised.stds))
    cov = second - torch.outer(mean, mean)
    torch.testing.assert_close(x_t.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(x_t.T), cov, atol=0.03, rtol=0.02)
    assert noised.stds[0].item() == pytest.approx(math.sqrt(abar * 0.3**2 + 1 - abar))


def test_langevin_reaches_the_gaussian_mean_and_variance():
    """For N(mu, sigma^2) the chain x + e score + sqrt(2e) z is stationary at N(mu, sigma^2 / (1 - e / (2 sigma^2)))."""
    mu, sigma, step = torch.tensor([1.0, -2.0]), 0.5, 0.01
    x = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(0)) * 3  # start far from the target
    x = langevin_dynamics(lambda x: -(x - mu) / sigma**2, x, step, 400, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(x.mean(0), mu, atol=0.02, rtol=0)
    stationary = sigma**2 / (1 - step / (2 * sigma**2))  # 0.2551: the O(step) bias of the discretisation
    torch.testing.assert_close(x.var(0), torch.full((2,), stationary), atol=0, rtol=0.04)


def test_learned_toy_score_approaches_the_closed_form(mixture, schedule):
    torch.manual_seed(0)
    model = ToyNoiseMLP()

    def relative_error(t):
        noised = mixture.noised(schedule.alphas_cumprod[t].item())
        x_t = noised.sample(4000, generator=torch.Generator().manual_seed(t))
        tt = torch.full((4000,), t)
        with torch.no_grad():
            learned = score_from_noise(schedule, model(x_t, tt), tt)
        true = noised.score(x_t)
        return ((learned - true) ** 2).sum(1).mean().item() / (true**2).sum(1).mean().item()

    before = [relative_error(t) for t in (20, 50, 90)]
    losses = train_toy_noise_model(model, schedule, mixture, n_steps=1500, generator=torch.Generator().manual_seed(0))
    after = [relative_error(t) for t in (20, 50, 90)]
    assert min(before) > 0.8  # an untrained net knows nothing about the score
    assert max(after) < 0.05, f"relative squared score errors after training: {after}"
    assert len(losses) == 1500 and sum(losses[-100:]) < sum(losses[:100])


def test_corrector_step_size_formula():
    score = torch.tensor([[3.0, 4.0], [0.0, 1.0]])  # norms 5 and 1: mean 3
    z = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # norms 1 and 2: mean 1.5
    assert corrector_step_size(score, z, alpha_t=0.9, corrector_snr=0.16) == pytest.approx(2 * 0.9 * (0.16 * 1.5 / 3) ** 2)


def test_exact_noise_model_handles_mixed_steps(mixture, schedule):
    model = mixture.noise_model(schedule)
    x_t, t = torch.randn(6, 2), torch.tensor([0, 5, 5, 50, 99, 0])
    noise_pred = model(x_t, t)
    for i, ti in enumerate(t.tolist()):
        abar = schedule.alphas_cumprod[ti].item()
        expected = -math.sqrt(1 - abar) * mixture.noised(abar).score(x_t[i : i + 1].double())[0]
        torch.testing.assert_close(noise_pred[i], expected.float())


@pytest.mark.parametrize("n_corrector", [0, 1])
def test_predictor_corrector_with_exact_score_samples_the_mixture(mixture, schedule, n_corrector):
    """With the exact score, DDPM (0 corrector steps) and PC (1) both give the mixture's weights and mean."""
    n = 4000
    x_0 = pc_sample_loop(mixture.noise_model(schedule), schedule, (n, 2), n_corrector=n_corrector,
                         generator=torch.Generator().manual_seed(0), progress=False, clip_x0=False, variance="beta")
    shares = torch.bincount(mixture.responsibilities(x_0.double()).argmax(1), minlength=3) / n
    torch.testing.assert_close(shares.double(), mixture.weights, atol=0.03, rtol=0)  # binomial sd <= 0.008
    mean = (mixture.weights[:, None] * mixture.means).sum(0)
    torch.testing.assert_close(x_0.double().mean(0), mean, atol=0.06, rtol=0)  # sd of the mean < 0.025
    if n_corrector == 0:  # and with no corrector it is exactly DDPM with variance beta_t
        ddpm = p_sample_loop(mixture.noise_model(schedule), schedule, (n, 2), generator=torch.Generator().manual_seed(0),
                             progress=False, clip_x0=False, variance="beta")
        torch.testing.assert_close(x_0, ddpm)


@pytest.mark.parametrize("w", [0.0, 1.0, 4.0])
def test_guided_score_is_bayes_with_a_sharpened_classifier(w):
    """(1 + w) score(x | y) - w score(x) = score(x) + (1 + w) grad log q_t(y | x), with each class one mixture component."""
    mixture = GaussianMixture([[-1.0, 0.0], [1.0, 0.5], [0.0, 2.0]], [0.4, 0.6, 0.3], [0.5, 0.3, 0.2])
    noised = mixture.noised(0.6)
    x = torch.randn(50, 2, dtype=torch.float64).requires_grad_()
    y = torch.randint(0, 3, (50,))
    log_q_y_given_x = noised.responsibilities(x).log()[torch.arange(50), y]  # q_t(y | x): the posterior weight of class y
    (classifier_grad,) = torch.autograd.grad(log_q_y_given_x.sum(), x)
    x = x.detach()
    score_uncond = noised.score(x)
    score_cond = torch.stack([GaussianMixture(noised.means[k : k + 1], noised.stds[k : k + 1], [1.0]).score(x[i : i + 1])[0]
                              for i, k in enumerate(y.tolist())])
    torch.testing.assert_close((1 + w) * score_cond - w * score_uncond, score_uncond + (1 + w) * classifier_grad)


def test_bad_inputs_raise(mixture):
    with pytest.raises(ValueError, match="shape"):
        mixture.score(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="alpha_bar"):
        mixture.noised(1.5)
    with pytest.raises(ValueError, match="point mass"):
        GaussianMixture([[0.0, 0.0]], [0.0], [1.0]).score(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture([[0.0, 0.0], [1.0, 1.0]], [1.0, 1.0], [0.5, 0.6])
    with pytest.raises(ValueError, match="step_size"):
        langevin_dynamics(lambda x: -x, torch.zeros(2, 2), step_size=0.0, n_steps=3)


def test_pc_corrector_uses_alpha_t_of_the_current_step():
    """Replay pc_sample_loop by hand: the corrector's step is 2 alphas[t] (snr |z| / |score|)^2 (Alg. 5)."""
    from course_utils import p_sample, score_from_noise

    schedule, model, shape, snr = make_schedule("cosine", 4), HalfX(), (3, 2), 0.3
    out = pc_sample_loop(model, schedule, shape, n_corrector=1, corrector_snr=snr, generator=torch.Generator().manual_seed(0),
                         progress=False)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    with torch.no_grad():
        for step in range(3, -1, -1):
            t = torch.full((3,), step)
            score = score_from_noise(schedule, model(x, t), t)
            z = torch.randn(shape, generator=g)
            ratio = z.norm(dim=1).mean() / score.norm(dim=1).mean()
            e = 2 * schedule.alphas[step].item() * (snr * ratio.item()) ** 2
            x = x + e * score + (2 * e) ** 0.5 * z
            x, _ = p_sample(model, schedule, x, t, generator=g)
    torch.testing.assert_close(out, x)
