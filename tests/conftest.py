"""Fixtures every test gets (one thread, a fixed seed), and the helpers test files share (``from conftest import ...``):
the tiny U-Net and diffusion configs, a saved tiny checkpoint, and stand-in models whose prediction is known exactly."""
import dataclasses

import pytest
import torch
from torch import nn

from course_utils import EMA, DiffusionConfig, UNet, UNetConfig, extract, from_x0_noise, save_checkpoint


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Unit tests use tiny tensors and models: one thread is as fast, and avoids OpenMP spin-waits
    that slow two-thread PyTorch down many times over when another job shares the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# The tests' U-Net: 8x8 images, two levels of 8 and 16 channels, a noise predictor; builds and runs in milliseconds.
# Tests that need another size or label set derive theirs with dataclasses.replace(TINY_UNET, ...).
TINY_UNET = UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), num_groups=4, time_embed_dim=16,
                       prediction="noise")
TINY_DIFFUSION = DiffusionConfig(image_size=8, T=20, model=TINY_UNET)


def saved_checkpoint(folder, name="ckpt.pt", config=TINY_DIFFUSION, step=7):
    """A checkpoint of a tiny U-Net after one optimizer step, with EMA, optimizer and history: (path, model)."""
    model = UNet(config.model)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 1, 8, 8), torch.tensor([1, 2])).mean().backward()
    optimizer.step()
    path = save_checkpoint(folder / name, config, step, model=model, ema=EMA(model), optimizer=optimizer,
                           history={"loss": [1.0, 0.5]})
    return path, model


class Oracle(nn.Module):
    """The perfect noise model when the data is one point x_star: noise = (x_t - sqrt(abar_t) x_star) / sqrt(1 - abar_t).
    Counts its calls."""

    def __init__(self, schedule, x_star):
        super().__init__()
        self.schedule = schedule
        self.register_buffer("x_star", x_star)
        self.calls = 0

    def forward(self, x, t, y=None):
        self.calls += 1
        abar = extract(self.schedule.alphas_cumprod, t, x)
        return (x - abar.sqrt() * self.x_star) / (1 - abar).sqrt()


class Const(nn.Module):
    """Predicts the same noise everywhere: DDIM inversion is then exactly undone by DDIM sampling."""

    def __init__(self, value):
        super().__init__()
        self.register_buffer("value", value)

    def forward(self, x, t, y=None):
        return self.value.expand_as(x)


class Smooth(nn.Module):
    """A smooth, nonlinear stand-in for a network (elementwise, so no bfloat16 rounding under autocast)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.tensor(1.5))

    def forward(self, x, t, y=None):
        return torch.tanh(self.scale * x) + 0.01 * t.float().reshape(-1, 1, 1, 1)


class HalfX(nn.Module):
    """A deterministic stand-in noise predictor: noise_pred = 0.5 x (one parameter, so it has a device)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))

    def forward(self, x, t, y=None):
        return self.scale * x


class Labelled(nn.Module):
    """noise_pred = label value (the null label 10 gives 10): makes the guidance formula visible."""

    config = dataclasses.replace(TINY_UNET, num_classes=10)

    def forward(self, x, t, y=None):
        return torch.zeros_like(x) + y.float().reshape(-1, 1, 1, 1)


class GaussianDenoiser(nn.Module):
    """The exact x_0 predictor for data N(0, s^2 I): E[x_0 | x_t] = alpha s^2 x_t / (alpha^2 s^2 + sigma^2),
    given as the ``prediction`` kind asked for."""

    def __init__(self, schedule, s, prediction="x0"):
        super().__init__()
        self.schedule, self.s = schedule, s
        self.config = UNetConfig(prediction=prediction)
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, x, t, y=None):
        alpha = self.schedule.sqrt_alphas_cumprod[t].float().reshape(-1, *([1] * (x.ndim - 1)))
        sigma = self.schedule.sqrt_one_minus_alphas_cumprod[t].float().reshape(alpha.shape)
        x_0 = alpha * self.s**2 * x / (alpha**2 * self.s**2 + sigma**2)
        return from_x0_noise(x_0, (x - alpha * x_0) / sigma, self.config.prediction, alpha, sigma)
