"""The design space of notebook 11: parameterisations, zero terminal SNR, timestep spacings and fast solvers.

    code                                        paper
    to_x0_noise / from_x0_noise / convert       x_t = alpha x_0 + sigma noise: noise, x0, v (Salimans & Ho 2022, sec. 4)
                                                and velocity u = alpha' x_0 + sigma' noise are linear maps of each other
    rescale_zero_terminal_snr (schedules.py)    Lin et al. (2023, WACV 2024), Algorithm 1: alpha_bar_{T-1} = 0
    solver_timesteps(T, n, spacing)             "leading", "linspace", "trailing" (Lin et al. 2023, Table 2) and
                                                "karras" sigma spacing (Karras et al. 2022, eq. 5)
    heun_sample(model, schedule, shape, n)      Karras et al. (2022), Algorithm 1 (deterministic, 2 n - 1 calls)
    dpm_solver_2m_sample(model, schedule, ...)  Lu et al. (2022, DPM-Solver++), Algorithm 2 (multistep, n calls)

Notation (VP diffusion, the course's schedules): alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t),
lambda_t = log(alpha_t / sigma_t) = log SNR_t / 2, and in the variables of Karras et al. x_bar = x / alpha_t,
sigma_bar_t = sigma_t / alpha_t, where the probability-flow ODE reads d x_bar / d sigma_bar = noise_pred.
A solver's list of steps ends with -1, which stands for the clean data (alpha = 1, sigma = 0).
"""
import torch

from .device import autocast_for, model_device, randn_on, sampling_mode
from .diffusion import check_timesteps, extract
from .jupyter import tqdm
from .samplers import predict_noise
from .schedules import Schedule

__all__ = [
    "PARAMETERISATIONS", "to_x0_noise", "from_x0_noise", "convert_prediction", "predict_x0",
    "SPACINGS", "solver_timesteps", "heun_sample", "dpm_solver_2m_sample",
]

PARAMETERISATIONS = ("noise", "x0", "v", "velocity")
SPACINGS = ("leading", "linspace", "trailing", "karras")


def _check_kind(kind):
    if kind not in PARAMETERISATIONS:
        raise ValueError(f"prediction kind must be one of {PARAMETERISATIONS}, got {kind!r}")


def to_x0_noise(pred, kind, x_t, alpha, sigma, d_alpha=None, d_sigma=None):
    """(x_0, noise) from a prediction of ``kind`` at x_t = alpha x_0 + sigma noise (alpha, sigma broadcastable).

    noise:    x_0 = (x_t - sigma noise) / alpha
    x0:       noise = (x_t - alpha x_0) / sigma
    v = alpha noise - sigma x_0:  x_0 = (alpha x_t - sigma v) / (alpha^2 + sigma^2), noise = (sigma x_t + alpha v) / (...)
    velocity u = d_alpha x_0 + d_sigma noise (d/dt of the path): solve the 2x2 system with x_t, whose
    determinant is alpha d_sigma - sigma d_alpha (1 on the straight path alpha = 1 - t, sigma = t).
    """
    _check_kind(kind)
    if kind == "noise":
        return (x_t - sigma * pred) / alpha, pred
    if kind == "x0":
        return pred, (x_t - alpha * pred) / sigma
    if kind == "v":
        norm = alpha**2 + sigma**2
        return (alpha * x_t - sigma * pred) / norm, (sigma * x_t + alpha * pred) / norm
    if d_alpha is None or d_sigma is None:
        raise ValueError("a velocity needs the path's derivatives d_alpha and d_sigma")
    det = alpha * d_sigma - sigma * d_alpha
    return (d_sigma * x_t - sigma * pred) / det, (alpha * pred - d_alpha * x_t) / det


def from_x0_noise(x_0, noise, kind, alpha, sigma, d_alpha=None, d_sigma=None):
    """The prediction of ``kind`` that a model would output for this (x_0, noise): noise, x_0,
    v = alpha noise - sigma x_0, or velocity d_alpha x_0 + d_sigma noise."""
    _check_kind(kind)
    if kind == "velocity":
        if d_alpha is None or d_sigma is None:
            raise ValueError("a velocity needs the path's derivatives d_alpha and d_sigma")
        return d_alpha * x_0 + d_sigma * noise
    return {"noise": noise, "x0": x_0, "v": alpha * noise - sigma * x_0}[kind]


def convert_prediction(pred, kind_from, kind_to, x_t, alpha, sigma, d_alpha=None, d_sigma=None):
    """Turn a prediction of one kind into another at the same x_t: every kind is a linear map of (x_t, any other)."""
    x_0, noise = to_x0_noise(pred, kind_from, x_t, alpha, sigma, d_alpha, d_sigma)
    return from_x0_noise(x_0, noise, kind_to, alpha, sigma, d_alpha, d_sigma)


def predict_x0(model, schedule, x_t, t, y=None, clip_x0=True):
    """x_0_pred of a noise, x0 or v predictor at steps ``t`` [B], taken straight from what the model predicts, so a
    v or x0 predictor works where alpha_bar_t = 0 (zero terminal SNR); a noise predictor there is an error."""
    t = check_timesteps(t, schedule.T, x_t.shape[0]).to(x_t.device)
    kind = getattr(getattr(model, "config", None), "prediction", "noise")
    alpha, sigma = extract(schedule.sqrt_alphas_cumprod, t, x_t), extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t)
    if kind == "noise" and bool((alpha == 0).any()):
        raise ValueError("a noise predictor cannot give x_0 where alpha_bar_t = 0 (x_t is pure noise there): "
                         "zero terminal SNR needs v or x0 prediction")
    if kind in ("v", "x0"):
        with autocast_for(x_t.device):
            out = model(x_t, t, y).float()
    else:
        kind, out = "noise", predict_noise(model, x_t, t, y)
    x_0, _ = to_x0_noise(out, kind, x_t, alpha, sigma)
    return x_0.clamp(-1, 1) if clip_x0 else x_0


def solver_timesteps(schedule, n_steps, spacing="trailing", rho=7.0, sigma_max=80.0):
    """``n_steps`` 0-based steps in decreasing order, the ones a sampler visits before the clean data.

    "leading": 0, k, 2k, ... with k = T // n (the spacing of Stable Diffusion 1.x: never starts at T - 1);
    "linspace": rounded linspace(T - 1, 0, n); "trailing": round(T - i T / n) - 1 for i = 0..n-1 (Lin et al. 2023,
    always starts at T - 1); "karras": sigma_bar_i = (s_max^(1/rho) + i / (n - 1) (s_min^(1/rho) - s_max^(1/rho)))^rho
    (Karras et al. 2022, eq. 5) from min(``sigma_max``, the largest finite sigma_bar) (their sigma_max is 80) down to
    the schedule's smallest sigma_bar, each rounded to the step with the nearest log sigma_bar (repeats dropped,
    so it can return fewer steps).
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"expected a Schedule, got {type(schedule).__name__}")
    T = schedule.T
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or not 1 <= n_steps <= T:
        raise ValueError(f"n_steps must be an int between 1 and T={T}, got {n_steps!r}")
    if spacing == "leading":
        steps = torch.arange(n_steps) * (T // n_steps)
    elif spacing == "linspace":
        steps = torch.linspace(0, T - 1, n_steps, dtype=torch.float64).round().long()
    elif spacing == "trailing":
        steps = (T - torch.arange(n_steps, dtype=torch.float64) * T / n_steps).round().long() - 1
    elif spacing == "karras":
        log_sigma_bar = 0.5 * (-schedule.log_snr)
        finite = torch.isfinite(log_sigma_bar)
        s_max = min(log_sigma_bar[finite].max().exp().item(), sigma_max)
        s_min = log_sigma_bar[finite].min().exp().item()
        ramp = torch.linspace(0, 1, n_steps, dtype=torch.float64)
        sigmas = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
        candidates = torch.where(finite, log_sigma_bar, torch.tensor(float("inf"), dtype=torch.float64))
        steps = (candidates[None, :] - sigmas.log()[:, None]).abs().argmin(1)
        if not bool(finite[-1]):  # zero terminal SNR: start from the pure-noise step itself
            steps[0] = T - 1
    else:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    return torch.unique(steps).flip(0)


def _alpha_sigma(schedule, t):
    """(alpha_t, sigma_t) as floats, with t = -1 the clean data (1, 0)."""
    if t < 0:
        return 1.0, 0.0
    return schedule.sqrt_alphas_cumprod[t].item(), schedule.sqrt_one_minus_alphas_cumprod[t].item()


def _start(schedule, shape, generator, device, x_T):
    return randn_on(shape, generator, device) if x_T is None else x_T.to(device).float()


@torch.no_grad()
def heun_sample(model, schedule, shape, n_steps, spacing="karras", generator=None, y=None, clip_x0=True, x_T=None,
                progress=True):
    """Karras et al. (2022), Algorithm 1 (no churn) in x_bar = x / alpha, sigma_bar = sigma / alpha, where
    dx_bar / dsigma_bar = (x_bar - x_0_pred) / sigma_bar: an Euler guess to the next sigma_bar, then the average of
    the slopes at both ends; the last step (to sigma_bar = 0) is Euler, which lands on x_0_pred. 2 n - 1 calls.
    Needs alpha_bar_{T-1} > 0 (sigma_bar is infinite at zero terminal SNR; use dpm_solver_2m_sample there)."""
    if schedule.alphas_cumprod[-1] <= 0:
        raise ValueError("heun_sample works in sigma_bar = sigma / alpha, infinite at zero terminal SNR: "
                         "use dpm_solver_2m_sample")
    device = model_device(model)
    steps = solver_timesteps(schedule, n_steps, spacing).tolist() + [-1]
    x = _start(schedule, shape, generator, device, x_T)
    alpha, sigma = _alpha_sigma(schedule, steps[0])
    x_bar = x / alpha

    def slope(x_bar, t):
        a, s = _alpha_sigma(schedule, t)
        t_batch = torch.full((shape[0],), t, device=device, dtype=torch.long)
        return (x_bar - predict_x0(model, schedule, a * x_bar, t_batch, y, clip_x0)) / (s / a)

    with sampling_mode(model):
        for t, t_next in tqdm(list(zip(steps[:-1], steps[1:])), desc="Heun", disable=not progress, leave=False):
            (a, s), (a_next, s_next) = _alpha_sigma(schedule, t), _alpha_sigma(schedule, t_next)
            h = s_next / a_next - s / a
            d = slope(x_bar, t)
            x_next = x_bar + h * d
            if t_next >= 0:
                x_next = x_bar + h * 0.5 * (d + slope(x_next, t_next))
            x_bar = x_next
    return x_bar  # alpha = 1 at the clean end, so x_bar is x


@torch.no_grad()
def dpm_solver_2m_sample(model, schedule, shape, n_steps, spacing="karras", generator=None, y=None, clip_x0=True,
                         x_T=None, progress=True):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), data-prediction form, one network call per step:

    x_next = (sigma_next / sigma) x - alpha_next (exp(-h) - 1) D,  h = lambda_next - lambda,
    D = x_0_pred on the first and the last step (first order, which is DDIM), else
    D = (1 + 1 / (2 r)) x_0_pred - 1 / (2 r) x_0_pred_previous with r = h_previous / h.
    exp(-h) is computed as (alpha sigma_next) / (sigma alpha_next), so alpha = 0 (zero terminal SNR) and
    sigma_next = 0 (the clean end) need no infinite lambda.
    """
    device = model_device(model)
    steps = solver_timesteps(schedule, n_steps, spacing).tolist() + [-1]
    x = _start(schedule, shape, generator, device, x_T)
    x0_prev, h_prev = None, None
    with sampling_mode(model):
        for t, t_next in tqdm(list(zip(steps[:-1], steps[1:])), desc="DPM-Solver++(2M)", disable=not progress,
                              leave=False):
            (a, s), (a_next, s_next) = _alpha_sigma(schedule, t), _alpha_sigma(schedule, t_next)
            x_0 = predict_x0(model, schedule, x, torch.full((shape[0],), t, device=device, dtype=torch.long), y,
                             clip_x0)
            exp_minus_h = (a * s_next) / (s * a_next)
            h = -torch.log(torch.tensor(exp_minus_h)).item() if exp_minus_h > 0 else float("inf")
            D = x_0
            if x0_prev is not None and t_next >= 0 and h_prev < float("inf") and h < float("inf"):
                r = h_prev / h
                D = (1 + 1 / (2 * r)) * x_0 - (1 / (2 * r)) * x0_prev
            x = (s_next / s) * x + a_next * (1 - exp_minus_h) * D
            x0_prev, h_prev = x_0, h
    return x
