"""Formulas of walkthroughs 07 (DDIM) and 09 (classifier-free guidance), checked against the package."""
import math

import pytest
import torch
from torch import nn

from course_utils import (
    DiffusionConfig, GaussianMixture, UNet, UNetConfig, ddim_sigma, ddim_step, extract, make_schedule, p_sample,
    predict_noise, train,
)


@pytest.fixture(scope="module")
def schedule():
    return make_schedule("linear", 100)


class PointOracle(nn.Module):
    """Data = one point x_star: the true noise (x_t - sqrt(abar_t) x_star) / sqrt(1 - abar_t) is known exactly."""

    def __init__(self, schedule, x_star):
        super().__init__()
        self.schedule = schedule
        self.register_buffer("x_star", x_star)

    def forward(self, x, t, y=None):
        abar = extract(self.schedule.alphas_cumprod, t, x)
        return (x - abar.sqrt() * self.x_star) / (1 - abar).sqrt()


def test_ddim_eta0_step_is_equation_12(schedule):
    torch.manual_seed(0)
    model = UNet(UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), num_groups=4, prediction="noise", time_embed_dim=16)).eval()
    x_t, t, t_prev = torch.randn(3, 1, 8, 8), 60, 35
    with torch.no_grad():
        noise_pred = predict_noise(model, x_t, torch.full((3,), t))
        x_prev, x_0_pred = ddim_step(model, schedule, x_t, t, t_prev, eta=0.0, clip_x0=False)
    a_t, a_prev = schedule.alphas_cumprod[t].item(), schedule.alphas_cumprod[t_prev].item()
    expected_x_0 = (x_t - math.sqrt(1 - a_t) * noise_pred) / math.sqrt(a_t)
    torch.testing.assert_close(x_0_pred, expected_x_0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x_prev, math.sqrt(a_prev) * expected_x_0 + math.sqrt(1 - a_prev) * noise_pred,
                               atol=1e-5, rtol=1e-5)


def test_ddim_eta1_consecutive_step_is_the_ddpm_step(schedule):
    """Mean and variance: with eta = 1 and t_prev = t - 1, DDIM draws exactly what p_sample draws."""
    model = PointOracle(schedule, torch.linspace(-0.5, 0.5, 16).reshape(1, 1, 4, 4))
    x_t = torch.randn(4, 1, 4, 4)
    for t in (1, 30, 99):
        ddim, _ = ddim_step(model, schedule, x_t, t, t - 1, eta=1.0, generator=torch.Generator().manual_seed(t),
                            clip_x0=False)
        ddpm, _ = p_sample(model, schedule, x_t, torch.full((4,), t), generator=torch.Generator().manual_seed(t),
                           clip_x0=False, variance="posterior")
        torch.testing.assert_close(ddim, ddpm, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_family_keeps_the_marginals(schedule, eta):
    """With the exact noise, a DDIM step from x_t ~ q(x_t | x_0) gives x_prev ~ N(sqrt(abar_prev) x_0, (1 - abar_prev) I)
    for every eta and any jump: the non-Markovian processes share DDPM's marginals (Song et al. 2021, Lemma 1)."""
    n, t, t_prev = 100_000, 80, 40
    x_star = torch.tensor([0.7, -0.3]).reshape(1, 2, 1, 1)
    model = PointOracle(schedule, x_star)
    a_t, a_prev = schedule.alphas_cumprod[t].item(), schedule.alphas_cumprod[t_prev].item()
    x_t = math.sqrt(a_t) * x_star + math.sqrt(1 - a_t) * torch.randn(n, 2, 1, 1, dtype=torch.float64)
    x_prev, _ = ddim_step(model, schedule, x_t, t, t_prev, eta=eta, generator=torch.Generator().manual_seed(1),
                          clip_x0=False)
    x_prev = x_prev.double().flatten(1)
    torch.testing.assert_close(x_prev.mean(0), math.sqrt(a_prev) * x_star.flatten().double(), atol=0.01, rtol=0)
    torch.testing.assert_close(x_prev.var(0), torch.full((2,), 1 - a_prev, dtype=torch.float64), atol=0, rtol=0.02)
    sigma_sq = ddim_sigma(schedule, t, t_prev, eta).item() ** 2
    assert sigma_sq == pytest.approx(eta**2 * (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))


def test_guidance_scale_is_one_plus_ho_salimans_w():
    """predict_noise(..., guidance_scale=1 + w) = (1 + w) noise_cond - w noise_uncond (Ho & Salimans 2021, eq. 6)."""
    torch.manual_seed(0)
    config = UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), num_groups=4, prediction="noise", time_embed_dim=16, num_classes=10)
    model = UNet(config).eval()
    with torch.no_grad():  # make the class embedding matter (it starts random but small)
        model.class_embed.weight.mul_(5)
    x_t, t, y = torch.randn(3, 1, 8, 8), torch.tensor([5, 50, 90]), torch.tensor([0, 3, 9])
    with torch.no_grad():
        noise_cond = predict_noise(model, x_t, t, y)
        noise_uncond = predict_noise(model, x_t, t, torch.full_like(y, 10))
        assert not torch.allclose(noise_cond, noise_uncond, atol=1e-3)
        for w in (0.0, 1.0, 3.0):
            guided = predict_noise(model, x_t, t, y, guidance_scale=1 + w)
            torch.testing.assert_close(guided, (1 + w) * noise_cond - w * noise_uncond, atol=2e-2, rtol=2e-2)
        torch.testing.assert_close(predict_noise(model, x_t, t, y, guidance_scale=0.0), noise_uncond, atol=2e-2, rtol=2e-2)


class LabelRecorder(UNet):
    """A tiny U-Net that remembers every label batch it was trained on."""

    def __init__(self, config):
        super().__init__(config)
        self.seen = []

    def forward(self, x, t, y=None):
        self.seen.append(y.clone())
        return super().forward(x, t, y)


@pytest.mark.parametrize("p_uncond", [0.0, 0.3])
def test_label_dropout_replaces_a_share_p_uncond_by_the_null_label(p_uncond):
    tiny = UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), num_groups=4, time_embed_dim=16,
                      attention=False, num_classes=3)
    config = DiffusionConfig(image_size=8, T=20, model=tiny, batch_size=64, warmup_steps=2, p_uncond=p_uncond)
    model = LabelRecorder(tiny)
    images, labels = torch.rand(256, 1, 8, 8) * 2 - 1, torch.randint(0, 3, (256,))
    train(config, model=model, data=(images, labels), n_images=20 * 64, progress=False)
    seen = torch.cat(model.seen)
    assert seen.numel() == 20 * 64 and seen.min() >= 0 and seen.max() <= 3
    # 1,280 labels: the share of null labels (3) has a standard deviation of 0.013 around p_uncond
    assert abs((seen == 3).float().mean().item() - p_uncond) < 0.05
    assert ((seen == 3).float().mean().item() > 0) == (p_uncond > 0)


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
