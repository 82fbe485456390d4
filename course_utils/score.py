"""The score view of diffusion (notebook 08): scores, a 2-D toy with a known score, Langevin dynamics.

The score of a density p is grad_x log p(x). A noise predictor is a scaled score (Song et al. 2021;
Vincent 2011): the best noise_pred at step t is E[noise | x_t], and

    grad_{x_t} log q_t(x_t) = -E[noise | x_t] / sqrt(1 - alpha_bar_t).

Shapes: toy points are ``[B, D]`` (D = 2 in the notebook), images ``[B, C, H, W]``; ``t`` is a
LongTensor ``[B]`` of 0-based steps. Langevin steps use the convention of Song et al. (2021):
x <- x + step_size * score(x) + sqrt(2 step_size) z, z ~ N(0, I).
"""
import math
from dataclasses import dataclass

import torch
from torch import nn

from .diffusion import check_timesteps, extract
from .jupyter import tqdm
from .models import sinusoidal_embedding
from .device import model_device, randn_on, sampling_mode
from .samplers import p_sample, predict_noise
from .training import diffusion_loss

__all__ = [
    "score_from_noise", "noise_from_score", "GaussianMixture", "ToyNoiseMLP", "train_toy_noise_model",
    "langevin_dynamics", "corrector_step_size", "pc_sample_loop",
]


def score_from_noise(schedule, noise_pred, t):
    """score = -noise_pred / sqrt(1 - alpha_bar_t); ``noise_pred`` [B, ...], ``t`` [B] -> [B, ...]."""
    t = check_timesteps(t, schedule.T, noise_pred.shape[0])
    return -noise_pred / extract(schedule.sqrt_one_minus_alphas_cumprod, t, noise_pred)


def noise_from_score(schedule, score, t):
    """The inverse: noise_pred = -sqrt(1 - alpha_bar_t) score; ``score`` [B, ...], ``t`` [B]."""
    t = check_timesteps(t, schedule.T, score.shape[0])
    return -extract(schedule.sqrt_one_minus_alphas_cumprod, t, score) * score


@dataclass(frozen=True)
class GaussianMixture:
    """p(x) = sum_k weights[k] N(x; means[k], stds[k]^2 I): ``means`` [K, D], ``stds`` [K], ``weights`` [K] (sum 1).

    Noising keeps it a mixture of Gaussians, so its score is known exactly at every step t.
    """

    means: torch.Tensor
    stds: torch.Tensor
    weights: torch.Tensor

    def __post_init__(self):
        means, stds, weights = (torch.as_tensor(v, dtype=torch.float64) for v in (self.means, self.stds, self.weights))
        if means.ndim != 2:
            raise ValueError(f"means must have shape [K, D], got {tuple(means.shape)}")
        K = means.shape[0]
        if stds.shape != (K,) or weights.shape != (K,):
            raise ValueError(f"stds and weights must have shape [{K}], got {tuple(stds.shape)} and {tuple(weights.shape)}")
        if (stds < 0).any() or (weights <= 0).any() or abs(weights.sum().item() - 1) > 1e-6:
            raise ValueError(f"need stds >= 0 and positive weights summing to 1, got stds={stds.tolist()}, "
                             f"weights={weights.tolist()}")
        for name, value in (("means", means), ("stds", stds), ("weights", weights)):
            object.__setattr__(self, name, value)

    @property
    def dim(self):
        return self.means.shape[1]

    def noised(self, alpha_bar):
        """q_t(x_t) = sum_k w_k N(x_t; sqrt(alpha_bar) m_k, (alpha_bar s_k^2 + 1 - alpha_bar) I), for x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) noise."""
        alpha_bar = float(alpha_bar)
        if not 0 < alpha_bar <= 1:
            raise ValueError(f"alpha_bar must lie in (0, 1], got {alpha_bar}")
        stds = (alpha_bar * self.stds**2 + 1 - alpha_bar).sqrt()
        return GaussianMixture(math.sqrt(alpha_bar) * self.means, stds, self.weights)

    def _log_components(self, x):
        """log(w_k N(x; m_k, s_k^2 I)) for every point and component: [B, K]."""
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape [B, {self.dim}], got {got}")
        if (self.stds == 0).any():
            raise ValueError("a component has std 0 (a point mass) and no density; call noised(alpha_bar < 1) first")
        var = (self.stds**2).to(x)
        sq_dist = ((x[:, None, :] - self.means.to(x)[None]) ** 2).sum(-1)  # [B, K]
        return self.weights.to(x).log() - sq_dist / (2 * var) - 0.5 * self.dim * (2 * math.pi * var).log()

    def log_prob(self, x):
        """log p(x) = logsumexp_k log(w_k N(x; m_k, s_k^2 I)); ``x`` [B, D] -> [B]."""
        return torch.logsumexp(self._log_components(x), dim=1)

    def responsibilities(self, x):
        """r_k(x) = w_k N(x; m_k, s_k^2 I) / p(x), the probability that x came from component k: [B, D] -> [B, K]."""
        return torch.softmax(self._log_components(x), dim=1)

    def score(self, x):
        """grad_x log p(x) = sum_k r_k(x) (m_k - x) / s_k^2; [B, D] -> [B, D]."""
        r = self.responsibilities(x)  # [B, K]
        var = (self.stds**2).to(x)
        return (r[:, :, None] * (self.means.to(x)[None] - x[:, None, :]) / var[None, :, None]).sum(1)

    def sample(self, n, generator=None):
        """n points [n, D] (float32): pick component k with probability w_k, then m_k + s_k z."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.means[k] + self.stds[k, None] * z).float()

    def noise_model(self, schedule):
        """The ideal noise predictor as a module: (x_t [B, D], t [B]) -> E[noise | x_t] = -sqrt(1 - alpha_bar_t) score_t(x_t)."""
        return ExactNoiseModel(self, schedule)


class ExactNoiseModel(nn.Module):
    """E[noise | x_t] of a ``GaussianMixture`` under ``schedule``, computed in float64; usable by every sampler."""

    def __init__(self, mixture, schedule):
        super().__init__()
        self.mixture, self.schedule = mixture, schedule

    def forward(self, x_t, t, y=None):
        t = check_timesteps(t, self.schedule.T, x_t.shape[0])
        out = torch.empty_like(x_t)
        with torch.autocast(x_t.device.type, enabled=False):
            for step in t.unique().tolist():
                rows = t == step
                alpha_bar = self.schedule.alphas_cumprod[step].item()
                score = self.mixture.noised(alpha_bar).score(x_t[rows].double())
                out[rows] = (-math.sqrt(1 - alpha_bar) * score).to(x_t.dtype)
        return out


class ToyNoiseMLP(nn.Module):
    """noise_pred = MLP([x_t, sinusoidal(t)]) for 2-D toy data: x_t [B, D], t [B] -> [B, D]."""

    def __init__(self, dim=2, hidden=128, time_dim=32, depth=3):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1 hidden layer, got {depth}")
        self.time_dim = time_dim
        layers, width = [], dim + time_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(hidden, dim))

    def forward(self, x_t, t, y=None):
        """Always float32 (autocast off): 2-D coordinates need the precision and the net is tiny. ``y`` must be None."""
        if x_t.ndim != 2 or t.shape != (x_t.shape[0],) or y is not None:
            raise ValueError(f"expected x_t [B, D], t [B] and no labels, got {tuple(x_t.shape)}, {tuple(t.shape)}, y={y}")
        with torch.autocast(x_t.device.type, enabled=False):
            return self.net(torch.cat([x_t.float(), sinusoidal_embedding(t, self.time_dim)], dim=1))


def train_toy_noise_model(model, schedule, mixture, n_steps, batch_size=512, lr=2e-3, generator=None):
    """Fit noise_pred = model(x_t, t) by ``diffusion_loss`` (Ho et al. 2020, L_simple) on fresh mixture samples.

    Every step draws x_0 from ``mixture`` (t and noise inside the loss); Adam, with the learning
    rate decaying to 0 on a cosine. Returns the list of losses (one per step).
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(n_steps, 1))
    model.train()
    losses = []
    for _ in range(n_steps):
        loss, _, _ = diffusion_loss(model, schedule, mixture.sample(batch_size, generator=generator),
                                           generator=generator)
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
        losses.append(loss.item())
    return losses


def langevin_dynamics(score_fn, x, step_size, n_steps, generator=None):
    """Run x <- x + step_size * score_fn(x) + sqrt(2 step_size) z for n_steps; returns the final x (shape of x).

    For small steps and many of them, x is distributed as the density whose score is score_fn.
    """
    if step_size <= 0 or n_steps < 0:
        raise ValueError(f"need step_size > 0 and n_steps >= 0, got step_size={step_size}, n_steps={n_steps}")
    for _ in range(n_steps):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = x + step_size * score_fn(x) + math.sqrt(2 * step_size) * z
    return x


def corrector_step_size(score, z, alpha_t, corrector_snr):
    """Song et al. (2021), Alg. 5: step_size = 2 alpha_t (r ||z|| / ||score||)^2, a float, with r = ``corrector_snr``
    (Song et al.'s "snr", a target signal-to-noise ratio of the Langevin step, not the schedule's ``snr``).

    ``score`` and ``z`` are [B, ...]; as in Song et al.'s code the norms are averaged over the batch
    (a per-sample ratio blows up where a sample sits on a mode and its score is near 0). The step
    then scales with the noise level by itself: about 2 alpha_t r^2 (1 - alpha_bar_t) for images.
    """
    z_norm = z.flatten(1).norm(dim=1).mean().item()
    score_norm = score.flatten(1).norm(dim=1).mean().item()
    return 2 * float(alpha_t) * (corrector_snr * z_norm / max(score_norm, 1e-12)) ** 2


def pc_sample_loop(model, schedule, shape, n_corrector=1, corrector_snr=0.16, generator=None, progress=True, x_T=None,
                   **kw):
    """Predictor-corrector sampling (Song et al. 2021, Alg. 3 and 5, VP SDE): T (1 + n_corrector) model calls.

    From x_T ~ N(0, I), at each t = T-1, ..., 0: ``n_corrector`` Langevin steps with the score of q_t,
    x <- x + e score + sqrt(2 e) z, e = ``corrector_step_size`` (alpha_t = ``alphas[t]``); then one
    predictor step, the DDPM ancestral step ``p_sample`` (``kw``: clip_x0, variance, y, guidance_scale).
    ``n_corrector=0`` is plain DDPM. Returns x_0 of ``shape``.
    """
    if n_corrector < 0 or corrector_snr <= 0:
        raise ValueError(f"need n_corrector >= 0 and corrector_snr > 0, got n_corrector={n_corrector}, "
                         f"corrector_snr={corrector_snr}")
    device = model_device(model)
    x = randn_on(shape, generator, device) if x_T is None else x_T.to(device)
    y, guidance_scale = kw.get("y"), kw.get("guidance_scale")
    with sampling_mode(model):
        for step in tqdm(range(schedule.T - 1, -1, -1), desc=f"PC sampling ({n_corrector} corrector)", disable=not progress):
            t = torch.full((shape[0],), step, dtype=torch.long, device=device)
            for _ in range(n_corrector):  # corrector: Langevin at the current noise level
                score = score_from_noise(schedule, predict_noise(model, x, t, y, guidance_scale, schedule), t)
                z = randn_on(x.shape, generator, device)
                step_size = corrector_step_size(score, z, schedule.alphas[step].item(), corrector_snr)
                x = x + step_size * score + math.sqrt(2 * step_size) * z
            x, _ = p_sample(model, schedule, x, t, generator=generator, **kw)  # predictor: one reverse step
    return x
