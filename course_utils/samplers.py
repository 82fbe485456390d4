"""Sampling from a trained noise predictor: DDPM ancestral sampling and DDIM (notebooks 06 and 07).

    code                                   paper
    p_mean_variance(model, ...)            mean mu_theta(x_t, t) and variance of p_theta(x_{t-1} | x_t)
    p_sample / p_sample_loop               Ho et al. (2020), Algorithm 2 (T model calls)
    ddim_sample_loop(..., eta)             Song et al. (2021), eq. 12 (any number of steps)
    ddim_invert                            eq. 12 run backwards with eta = 0: x_0 -> x_T deterministically
    predict_noise(..., guidance_scale=s)   classifier-free guidance (Ho & Salimans 2021)

Guidance convention (one, used everywhere): noise_pred = noise_uncond + s * (noise_cond - noise_uncond).
s = 1 is the plain conditional model, s = 0 the unconditional one, s > 1 pushes further towards
the class. Ho & Salimans write (1 + w) noise_cond - w noise_uncond: their w is our s - 1.

Shapes: ``x_t`` is [B, C, H, W]; ``t`` is a LongTensor [B] of 0-based steps. Random numbers are
drawn on the CPU from ``generator`` and then moved to the model's device, so a seed gives the
same samples on every device.
"""
import torch

from .device import autocast_for, model_device, randn_on, sampling_mode
from .diffusion import (check_timesteps, extract, predict_noise_from_v, predict_noise_from_x0, predict_x0_from_noise,
                        q_posterior_mean_variance)
from .jupyter import tqdm

__all__ = [
    "predict_noise", "p_mean_variance", "p_sample", "p_sample_loop",
    "ddim_timesteps", "ddim_sigma", "ddim_step", "ddim_sample_loop", "ddim_invert", "slerp",
]


def predict_noise(model, x_t, t, y=None, guidance_scale=None, schedule=None):
    """noise_pred = model(x_t, t, y) in float32; with ``guidance_scale`` s and labels ``y``, classifier-free guidance:
    noise_uncond + s (noise_cond - noise_uncond), the unconditional half using the null label ``num_classes``.
    A model that predicts v or x0 (``model.config.prediction``) needs ``schedule`` to turn its output into noise."""
    prediction = getattr(getattr(model, "config", None), "prediction", "noise")
    if prediction == "velocity":
        raise ValueError("this model predicts a flow matching velocity: sample it with course_utils.flow_sample")
    if prediction in ("v", "x0") and schedule is None:
        raise ValueError(f"this model predicts {prediction}: pass schedule= so its output can be turned into noise")
    with autocast_for(x_t.device):
        if guidance_scale is None or y is None:
            out = model(x_t, t, y).float()
        else:
            null = torch.full_like(y, model.config.num_classes)
            cond, uncond = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null])).float().chunk(2)
            out = uncond + guidance_scale * (cond - uncond)
    if prediction == "v":
        return predict_noise_from_v(schedule, x_t, t, out)
    return predict_noise_from_x0(schedule, x_t, t, out) if prediction == "x0" else out


def p_mean_variance(model, schedule, x_t, t, clip_x0=True, variance="posterior", y=None, guidance_scale=None):
    """Mean and variance of p_theta(x_{t-1} | x_t): the posterior q(x_{t-1} | x_t, x_0) with x_0 := x_0_pred.

    x_0_pred = (x_t - sqrt(1 - alpha_bar_t) noise_pred) / sqrt(alpha_bar_t), clipped to [-1, 1] if ``clip_x0``;
    mean = posterior_mean_coef1[t] x_0_pred + posterior_mean_coef2[t] x_t. Unclipped this equals the
    noise form of Ho et al. (2020) eq. 11: (x_t - beta_t / sqrt(1 - alpha_bar_t) noise_pred) / sqrt(alpha_t)
    (tests/test_samplers.py checks it). ``variance``: "posterior" (beta_tilde_t, ``posterior_variance``)
    or "beta" (beta_t); Ho et al. found both work. Returns a dict with mean, variance ([B, 1, 1, 1]),
    x_0_pred and noise_pred.
    """
    if variance not in ("posterior", "beta"):
        raise ValueError(f"variance must be 'posterior' or 'beta', got {variance!r}")
    t = check_timesteps(t, schedule.T, x_t.shape[0]).to(x_t.device)
    noise_pred = predict_noise(model, x_t, t, y, guidance_scale, schedule)
    x_0_pred = predict_x0_from_noise(schedule, x_t, t, noise_pred)
    if clip_x0:
        x_0_pred = x_0_pred.clamp(-1.0, 1.0)
    mean, posterior_variance = q_posterior_mean_variance(schedule, x_0_pred, x_t, t)
    var = posterior_variance if variance == "posterior" else extract(schedule.betas, t, x_t)
    return {"mean": mean, "variance": var, "x_0_pred": x_0_pred, "noise_pred": noise_pred}


def p_sample(model, schedule, x_t, t, generator=None, add_noise=True, **kw):
    """One ancestral step x_t -> x_prev = mean + sqrt(variance) * z, z ~ N(0, I) (Algorithm 2, line 4).

    ``kw`` goes to ``p_mean_variance`` (clip_x0, variance, y, guidance_scale).
    ``add_noise=False`` returns the mean only (the notebook shows why that fails). Returns (x_prev, x_0_pred).
    """
    out = p_mean_variance(model, schedule, x_t, t, **kw)
    if not add_noise:
        return out["mean"], out["x_0_pred"]
    z = randn_on(x_t.shape, generator, x_t.device)
    # no noise when t == 0: the last step returns the mean, the model's best guess of x_0
    nonzero = (torch.as_tensor(t, device=x_t.device) != 0).float().reshape(-1, *([1] * (x_t.ndim - 1)))
    return out["mean"] + nonzero * out["variance"].sqrt() * z, out["x_0_pred"]


def _trajectory_keeper(every):
    trajectory = {"t": [], "x_t": [], "x_0_pred": []}

    def keep(i, t, x, x_0_pred, last):
        if every is not None and (i % every == 0 or last):
            trajectory["t"].append(int(t))
            trajectory["x_t"].append(x.float().cpu())
            trajectory["x_0_pred"].append(x_0_pred.float().cpu())

    return trajectory, keep


def p_sample_loop(model, schedule, shape, generator=None, progress=True, return_trajectory_every=None,
                  x_T=None, **kw):
    """Algorithm 2: x_T ~ N(0, I), then p_sample at t = T-1, ..., 0: exactly T model calls; returns x_0.

    ``kw`` goes to ``p_sample`` (add_noise, clip_x0, variance, y, guidance_scale). With
    ``return_trajectory_every=k`` it returns (x_0, trajectory), trajectory = {"t", "x_t", "x_0_pred"}
    holding every k-th step (x_t after the step to t) on the CPU, for animations.
    """
    device = model_device(model)
    x = randn_on(shape, generator, device) if x_T is None else x_T.to(device)
    trajectory, keep = _trajectory_keeper(return_trajectory_every)
    with sampling_mode(model):
        for i, step in enumerate(tqdm(range(schedule.T - 1, -1, -1), desc="DDPM sampling", disable=not progress)):
            t = torch.full((shape[0],), step, dtype=torch.long, device=device)
            x, x_0_pred = p_sample(model, schedule, x, t, generator=generator, **kw)
            keep(i, step, x, x_0_pred, step == 0)
    return x if return_trajectory_every is None else (x, trajectory)


def ddim_timesteps(T, n_steps):
    """``n_steps`` 0-based steps evenly spaced over 0..T-1, ascending, always including 0 and T-1 (n_steps <= T)."""
    if not 1 <= n_steps <= T:
        raise ValueError(f"n_steps must be between 1 and T={T}, got {n_steps}")
    if n_steps == 1:
        return torch.tensor([T - 1])
    return torch.linspace(0, T - 1, n_steps, dtype=torch.float64).round().long()


def _alpha_bar(schedule, t):
    """alpha_bar at step t, with alpha_bar = 1 for t = -1 (before the first step: clean data)."""
    return schedule.alphas_cumprod[t] if t >= 0 else torch.tensor(1.0, dtype=torch.float64)


def ddim_sigma(schedule, t, t_prev, eta):
    """Song et al. (2021) eq. 16: sigma = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev).

    With eta = 1 and t_prev = t - 1, sigma^2 = beta_tilde_t, the DDPM posterior variance.
    """
    alpha_bar_t, alpha_bar_prev = _alpha_bar(schedule, t), _alpha_bar(schedule, t_prev)
    return eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t)).sqrt() * (1 - alpha_bar_t / alpha_bar_prev).sqrt()


def _shared_step(t, T, batch_size):
    """The one step t that a DDIM update applies to the whole batch: an int, or a LongTensor [B] of equal values."""
    t = check_timesteps(t, T, batch_size)
    if t.numel() and not bool((t == t[0]).all()):
        raise ValueError(f"a DDIM step moves the whole batch from one t: got different steps {t.unique().tolist()}")
    return int(t[0])


def ddim_step(model, schedule, x_t, t, t_prev, eta=0.0, generator=None, clip_x0=True, y=None, guidance_scale=None):
    """Song et al. (2021) eq. 12, from step t to t_prev < t (t_prev = -1 means x_0):

    x_prev = sqrt(alpha_bar_prev) x_0_pred + sqrt(1 - alpha_bar_prev - sigma^2) noise_pred + sigma z.
    ``t`` is an int or a LongTensor [B] of one repeated step (as ``p_sample`` takes), ``t_prev`` an int in
    [-1, t). Returns (x_prev, x_0_pred).
    """
    t = _shared_step(t, schedule.T, x_t.shape[0])
    if isinstance(t_prev, bool) or not isinstance(t_prev, int) or not -1 <= t_prev < t:
        raise ValueError(f"t_prev must be an int with -1 <= t_prev < t={t}, got {t_prev!r}")
    if eta < 0:
        raise ValueError(f"eta must be >= 0 (0: deterministic DDIM, 1: DDPM-like noise), got {eta}")
    tt = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
    noise_pred = predict_noise(model, x_t, tt, y, guidance_scale, schedule)
    x_0_pred = predict_x0_from_noise(schedule, x_t, tt, noise_pred)
    if clip_x0:  # clip, then make the noise agree with the clipped x_0
        x_0_pred = x_0_pred.clamp(-1.0, 1.0)
        noise_pred = predict_noise_from_x0(schedule, x_t, tt, x_0_pred)
    alpha_bar_prev, sigma = _alpha_bar(schedule, t_prev), ddim_sigma(schedule, t, t_prev, eta)
    x_prev = (alpha_bar_prev.sqrt().float() * x_0_pred
              + (1 - alpha_bar_prev - sigma**2).clamp(min=0).sqrt().float() * noise_pred)
    if eta > 0:
        x_prev = x_prev + sigma.float() * randn_on(x_t.shape, generator, x_t.device)
    return x_prev, x_0_pred


def ddim_sample_loop(model, schedule, shape, n_steps, eta=0.0, generator=None, progress=True,
                     return_trajectory_every=None, x_T=None, **kw):
    """DDIM sampling on ``ddim_timesteps(T, n_steps)`` from the last to the first: n_steps model calls.

    eta = 0 is deterministic given x_T; eta = 1 with n_steps = T is DDPM with the posterior variance.
    ``kw`` goes to ``ddim_step`` (clip_x0, y, guidance_scale). Returns x_0 (or (x_0, trajectory)).
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0 (0: deterministic DDIM, 1: DDPM-like noise), got {eta}")
    device = model_device(model)
    x = randn_on(shape, generator, device) if x_T is None else x_T.to(device)
    steps = ddim_timesteps(schedule.T, n_steps).tolist()[::-1]
    trajectory, keep = _trajectory_keeper(return_trajectory_every)
    with sampling_mode(model):
        for i, t in enumerate(tqdm(steps, desc=f"DDIM sampling (eta={eta})", disable=not progress)):
            t_prev = steps[i + 1] if i + 1 < len(steps) else -1
            x, x_0_pred = ddim_step(model, schedule, x, t, t_prev, eta, generator, **kw)
            keep(i, t, x, x_0_pred, t_prev == -1)
    return x if return_trajectory_every is None else (x, trajectory)


def ddim_invert(model, schedule, x_0, n_steps, progress=True, y=None, guidance_scale=None):
    """Encode x_0 -> x_T with the eta = 0 update run upwards (no clipping), n_steps model calls.

    Going from s to the next step s', the noise is estimated at the current point
    (x_s, s) (at x_0, with s' itself), then x_s' = sqrt(alpha_bar_s') x_0_pred + sqrt(1 - alpha_bar_s') noise_pred.
    Decoding the result with ``ddim_sample_loop(..., x_T=...)`` and the same n_steps gives x_0 back
    up to the error of that estimate (exactly, for a model whose prediction does not change with x and t).
    """
    device = model_device(model)
    x = x_0.to(device).float()
    steps = ddim_timesteps(schedule.T, n_steps).tolist()
    with sampling_mode(model):
        for i, t_next in enumerate(tqdm(steps, desc="DDIM inversion", disable=not progress)):
            t_cur = steps[i - 1] if i > 0 else t_next
            tt = torch.full((x.shape[0],), t_cur, dtype=torch.long, device=device)
            noise_pred = predict_noise(model, x, tt, y, guidance_scale, schedule)
            x_0_pred = predict_x0_from_noise(schedule, x, tt, noise_pred) if i > 0 else x
            alpha_bar_next = schedule.alphas_cumprod[t_next]
            x = alpha_bar_next.sqrt().float() * x_0_pred + (1 - alpha_bar_next).sqrt().float() * noise_pred
    return x


def slerp(a, b, lam):
    """Spherical interpolation of two codes a, b [C, H, W] at weights lam [K] -> [K, C, H, W] (notebook 07):
    sin((1 - lam) theta) / sin(theta) a + sin(lam theta) / sin(theta) b, with cos(theta) = a.b / (|a| |b|)."""
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    cos_theta = (a * b).sum() / (a.norm() * b.norm())
    theta = torch.acos(cos_theta.clamp(-1.0, 1.0))
    if torch.sin(theta) < 1e-6:
        raise ValueError("a and b are (anti)parallel: the great circle through them is not defined")
    lam = torch.as_tensor(lam, dtype=a.dtype, device=a.device).reshape(-1, *([1] * a.ndim))
    return (torch.sin((1 - lam) * theta) * a + torch.sin(lam * theta) * b) / torch.sin(theta)
