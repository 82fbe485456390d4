"""The forward process q(x_t | x_0) and the posterior q(x_{t-1} | x_t, x_0) (notebooks 03 and 06).

Shapes: ``x_0``, ``x_t`` and ``noise`` are ``[B, ...]`` batches (images are
``[B, C, H, W]``); ``t`` is a LongTensor of shape ``[B]`` holding 0-based steps in
[0, T) (the paper's t = 1..T). Coefficients come from a ``Schedule``.
"""
import torch

__all__ = [
    "check_timesteps",
    "extract",
    "q_sample",
    "q_sample_iterative",
    "q_posterior_mean_variance",
    "predict_x0_from_noise",
    "predict_noise_from_x0",
]


def _check_batch(x, name="x_0"):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(
            f"{name} must be a batch of shape [B, C, H, W] (or [B, D] for 2-D toy data), "
            f"got shape {tuple(x.shape)} with {x.ndim} dimension(s)"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def check_timesteps(t, T, batch_size):
    """Return ``t`` as a LongTensor of shape [batch_size] after checking it holds integers in [0, T).

    A Python int is broadcast to the whole batch. Floats raise ``TypeError``, out-of-range
    values or a wrong shape raise ``ValueError``.
    """
    if isinstance(t, bool):
        raise TypeError(f"timestep t must be an integer, got bool {t!r}")
    if isinstance(t, int):
        t = torch.full((batch_size,), t, dtype=torch.long)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"timestep t must be an int or a LongTensor of shape [B], got {type(t).__name__}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"timestep t must hold integers (torch.long), got dtype {t.dtype}")
    if t.shape != (batch_size,):
        raise ValueError(f"timestep t must have shape [{batch_size}] (one step per sample), got {tuple(t.shape)}")
    if t.numel() and (t.min() < 0 or t.max() >= T):
        raise ValueError(
            f"timestep out of range: got values in [{t.min().item()}, {t.max().item()}], "
            f"expected 0 <= t <= {T - 1} (0-based steps of a T={T} schedule)"
        )
    return t.long()


def extract(coef, t, x):
    """Gather ``coef[t]`` for each sample and reshape to [B, 1, 1, ...] so it broadcasts against ``x``.

    ``coef`` is a length-T schedule array, ``t`` is [B], ``x`` is [B, ...]; the result has
    x's dtype and device and shape [B] + [1] * (x.ndim - 1).
    """
    # cast before moving: float64 schedules cannot live on Apple MPS, which has no float64
    out = coef.to(dtype=x.dtype).to(device=x.device)[t.to(x.device)]
    return out.reshape(t.shape[0], *([1] * (x.ndim - 1)))


def q_sample(schedule, x_0, t, noise=None):
    """Sample x_t ~ q(x_t | x_0) in closed form: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise.

    Returns only ``x_t`` (shape of ``x_0``); pass ``noise`` (same shape, N(0, I)) when you
    need it afterwards, as the training loss does. ``t`` is [B] with one step per sample.
    """
    _check_batch(x_0)
    t = check_timesteps(t, schedule.T, x_0.shape[0])
    if noise is None:
        noise = torch.randn_like(x_0)
    elif noise.shape != x_0.shape:
        raise ValueError(f"noise must have the shape of x_0 {tuple(x_0.shape)}, got {tuple(noise.shape)}")
    return (
        extract(schedule.sqrt_alphas_cumprod, t, x_0) * x_0
        + extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_0) * noise
    )


def q_sample_iterative(schedule, x_0, t, generator=None):
    """Sample x_t by running the chain step by step: x_s = sqrt(1 - beta_s) x_{s-1} + sqrt(beta_s) noise_s, s = 0..t.

    Slow (t + 1 steps) and for teaching only: it must give the same distribution as ``q_sample``.
    Each sample stops at its own ``t[i]``.
    """
    _check_batch(x_0)
    t = check_timesteps(t, schedule.T, x_0.shape[0]).to(x_0.device)
    x = x_0.clone()
    for s in range(int(t.max()) + 1):
        step = torch.full_like(t, s)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_next = extract(schedule.alphas.sqrt(), step, x) * x + extract(schedule.betas.sqrt(), step, x) * noise
        still_running = (t >= s).reshape(-1, *([1] * (x.ndim - 1)))
        x = torch.where(still_running, x_next, x)
    return x


def q_posterior_mean_variance(schedule, x_0, x_t, t):
    """Mean and variance of the posterior q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eq. 6-7).

    mean = posterior_mean_coef1[t] x_0 + posterior_mean_coef2[t] x_t, with
    coef1 = beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t) and
    coef2 = (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t);
    variance = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), shaped [B, 1, ...] to broadcast.
    """
    _check_batch(x_t, "x_t")
    if x_0.shape != x_t.shape:
        raise ValueError(f"x_0 {tuple(x_0.shape)} and x_t {tuple(x_t.shape)} must have the same shape")
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    mean = extract(schedule.posterior_mean_coef1, t, x_t) * x_0 + extract(schedule.posterior_mean_coef2, t, x_t) * x_t
    return mean, extract(schedule.posterior_variance, t, x_t)


def predict_x0_from_noise(schedule, x_t, t, noise):
    """Invert the closed form: x_0 = (x_t - sqrt(1 - alpha_bar_t) noise) / sqrt(alpha_bar_t)."""
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    return (x_t - extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t) * noise) / extract(
        schedule.sqrt_alphas_cumprod, t, x_t
    )


def predict_noise_from_x0(schedule, x_t, t, x_0):
    """The same identity solved for the noise: noise = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t)."""
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    return (x_t - extract(schedule.sqrt_alphas_cumprod, t, x_t) * x_0) / extract(
        schedule.sqrt_one_minus_alphas_cumprod, t, x_t
    )


def v_target(schedule, x_0, t, noise):
    """The velocity v = sqrt(alpha_bar_t) noise - sqrt(1 - alpha_bar_t) x_0 (Salimans & Ho 2022, sec. 4):
    the target of a v-predicting network, well scaled at every noise level."""
    t = check_timesteps(t, schedule.T, x_0.shape[0]).to(x_0.device)
    return extract(schedule.sqrt_alphas_cumprod, t, x_0) * noise - extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_0) * x_0


def predict_noise_from_v(schedule, x_t, t, v):
    """noise = sqrt(alpha_bar_t) v + sqrt(1 - alpha_bar_t) x_t, which follows from x_t = sqrt(alpha_bar_t) x_0 +
    sqrt(1 - alpha_bar_t) noise and the definition of v."""
    t = check_timesteps(t, schedule.T, x_t.shape[0]).to(x_t.device)
    return extract(schedule.sqrt_alphas_cumprod, t, x_t) * v + extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t) * x_t
