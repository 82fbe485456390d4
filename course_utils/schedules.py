"""Noise schedules: betas and every coefficient derived from them (notebook 02).

Index convention, said once: the papers number steps 1..T; the code numbers
them 0..T-1. Code index t (0-based) is paper step t+1, so ``betas[t]`` is the
paper's beta_{t+1}. Every array below has length T and is computed in float64 (as
in openai/improved-diffusion), then kept in float64; ``extract`` casts to the
data's dtype when a coefficient is used.

In the table, ``i`` is the code index and the symbols use the paper's step s = i + 1:

    code name                          paper symbol (s = i + 1)
    betas[i]                           beta_s
    alphas[i]                          alpha_s = 1 - beta_s
    alphas_cumprod[i]                  alpha_bar_s = prod_{r<=s} alpha_r
    alphas_cumprod_prev[i]             alpha_bar_{s-1}  (alpha_bar_0 = 1 at i = 0)
    sqrt_alphas_cumprod[i]             sqrt(alpha_bar_s)
    sqrt_one_minus_alphas_cumprod[i]   sqrt(1 - alpha_bar_s)
    sqrt_recip_alphas[i]               1 / sqrt(alpha_s)
    posterior_variance[i]              beta_tilde_s (0 at i = 0) = beta_s (1 - alpha_bar_{s-1}) / (1 - alpha_bar_s)
    posterior_mean_coef1[i]            beta_s sqrt(alpha_bar_{s-1}) / (1 - alpha_bar_s)
    posterior_mean_coef2[i]            (1 - alpha_bar_{s-1}) sqrt(alpha_s) / (1 - alpha_bar_s)
    snr[i]                             alpha_bar_s / (1 - alpha_bar_s)
    log_snr[i]                         log(snr[i])
"""
import math
from dataclasses import dataclass

import torch

__all__ = [
    "Schedule",
    "make_schedule",
    "schedule_from_betas",
    "linear_betas",
    "cosine_alphas_cumprod",
    "sigmoid_alphas_cumprod",
    "rescale_zero_terminal_snr",
    "betas_from_alphas_cumprod",
    "SCHEDULE_KINDS",
]

MAX_BETA = 0.999  # Nichol & Dhariwal (2021): clip betas so the last steps stay finite


@dataclass(frozen=True)
class Schedule:
    """A noise schedule of ``T`` steps and its derived coefficients (float64 tensors of length T)."""

    kind: str
    T: int
    betas: torch.Tensor
    alphas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    sqrt_recip_alphas: torch.Tensor
    posterior_variance: torch.Tensor
    posterior_mean_coef1: torch.Tensor
    posterior_mean_coef2: torch.Tensor
    snr: torch.Tensor
    log_snr: torch.Tensor

    def __repr__(self):
        return (
            f"Schedule(kind={self.kind!r}, T={self.T}, beta_t in [{self.betas.min():.2e}, "
            f"{self.betas.max():.3g}], final alpha_bar={self.alphas_cumprod[-1]:.3g})"
        )


def _check_T(T):
    if isinstance(T, bool) or not isinstance(T, int):
        raise TypeError(f"T must be an int number of steps, got {type(T).__name__} {T!r}")
    if T < 1:
        raise ValueError(f"T must be at least 1, got T={T}")


def schedule_from_betas(betas, kind="custom", allow_terminal_one=False):
    """Build a ``Schedule`` from betas in (0, 1): alphas = 1 - betas, alphas_cumprod = cumprod(alphas).

    ``allow_terminal_one`` lets the last beta be exactly 1 (zero terminal SNR, ``rescale_zero_terminal_snr``):
    then alpha_bar_{T-1} = 0, SNR_{T-1} = 0 and log SNR_{T-1} = -inf.
    """
    betas = torch.as_tensor(betas, dtype=torch.float64).detach().clone()
    if betas.ndim != 1 or betas.numel() < 1:
        raise ValueError(f"betas must be a 1-D sequence of length T >= 1, got shape {tuple(betas.shape)}")
    upper = torch.ones_like(betas)
    if allow_terminal_one:
        upper[-1] = 1 + 1e-12  # the last beta may equal 1
    if not torch.isfinite(betas).all() or (betas <= 0).any() or (betas >= upper).any():
        bad = betas[~(torch.isfinite(betas) & (betas > 0) & (betas < upper))]
        raise ValueError(
            f"every beta must lie strictly between 0 and 1; got {bad.numel()} outside (0, 1), "
            f"e.g. {bad[0].item():.4g} (a schedule of length {betas.numel()})"
        )
    alphas = 1.0 - betas
    alphas_cumprod = torch.cumprod(alphas, dim=0)
    alphas_cumprod_prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    one_minus = 1.0 - alphas_cumprod
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / one_minus
    snr = alphas_cumprod / one_minus
    return Schedule(
        kind=kind,
        T=betas.numel(),
        betas=betas,
        alphas=alphas,
        alphas_cumprod=alphas_cumprod,
        alphas_cumprod_prev=alphas_cumprod_prev,
        sqrt_alphas_cumprod=alphas_cumprod.sqrt(),
        sqrt_one_minus_alphas_cumprod=one_minus.sqrt(),
        sqrt_recip_alphas=alphas.rsqrt(),
        posterior_variance=posterior_variance,
        posterior_mean_coef1=betas * alphas_cumprod_prev.sqrt() / one_minus,
        posterior_mean_coef2=(1.0 - alphas_cumprod_prev) * alphas.sqrt() / one_minus,
        snr=snr,
        log_snr=snr.log(),
    )


def linear_betas(T, beta_start=1e-4, beta_end=0.02, scale_to_T=True):
    """Ho et al. (2020): betas evenly spaced from beta_start to beta_end.

    The paper's values 1e-4..0.02 are for T=1000. With ``scale_to_T`` (the default)
    both ends are multiplied by 1000/T, so every T ends at the same alpha_bar_T ~ 4e-5
    (Nichol & Dhariwal 2021, as in improved-diffusion). ``scale_to_T=False`` keeps the
    raw values, which for small T never reach noise (T=150 ends at alpha_bar ~ 0.22).
    """
    _check_T(T)
    scale = 1000.0 / T if scale_to_T else 1.0
    return torch.linspace(beta_start * scale, beta_end * scale, T, dtype=torch.float64)


def cosine_alphas_cumprod(t_continuous, s=0.008):
    """Nichol & Dhariwal (2021), eq. 17: alpha_bar(u) = f(u)/f(0), f(u) = cos^2((u + s)/(1 + s) * pi/2), u = t/T in [0, 1]."""
    u = torch.as_tensor(t_continuous, dtype=torch.float64)
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    return f / f0


def sigmoid_alphas_cumprod(t_continuous, start=-3.0, end=3.0, tau=1.0):
    """Chen (2023), "On the importance of noise scheduling", Alg. 1: a sigmoid in u = t/T,
    alpha_bar(u) = (sigmoid(end/tau) - sigmoid((u (end - start) + start)/tau)) / (sigmoid(end/tau) - sigmoid(start/tau)).
    """
    u = torch.as_tensor(t_continuous, dtype=torch.float64)
    v_start = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64))
    v_end = torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))
    return (v_end - torch.sigmoid((u * (end - start) + start) / tau)) / (v_end - v_start)


def betas_from_alphas_cumprod(alpha_bar_fn, T, max_beta=MAX_BETA):
    """Discretise a continuous alpha_bar(u), u in [0, 1]: beta_t = min(1 - alpha_bar((t+1)/T) / alpha_bar(t/T), max_beta)."""
    _check_T(T)
    u = torch.arange(T + 1, dtype=torch.float64) / T
    alpha_bar = alpha_bar_fn(u)
    betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=max_beta)


def _cosine(T, s=0.008, max_beta=MAX_BETA):
    return betas_from_alphas_cumprod(lambda u: cosine_alphas_cumprod(u, s=s), T, max_beta)


def _sigmoid(T, start=-3.0, end=3.0, tau=1.0, max_beta=MAX_BETA):
    return betas_from_alphas_cumprod(lambda u: sigmoid_alphas_cumprod(u, start, end, tau), T, max_beta)


SCHEDULE_KINDS = {"linear": linear_betas, "cosine": _cosine, "sigmoid": _sigmoid}


def rescale_zero_terminal_snr(schedule):
    """Lin et al. (2023), Algorithm 1: shift sqrt(alpha_bar) so its last value is 0 and scale it so its first is kept,
    sqrt(alpha_bar_t) <- (sqrt(alpha_bar_t) - sqrt(alpha_bar_{T-1})) sqrt(alpha_bar_0) / (sqrt(alpha_bar_0) - sqrt(alpha_bar_{T-1})),
    then rebuild the betas (the last one becomes exactly 1). Every step keeps its place between the two ends."""
    root = schedule.sqrt_alphas_cumprod.clone()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * first / (first - last)
    alphas_cumprod = root**2
    alphas = torch.cat([alphas_cumprod[:1], alphas_cumprod[1:] / alphas_cumprod[:-1]])
    return schedule_from_betas(1 - alphas, kind=f"{schedule.kind}, zero terminal SNR", allow_terminal_one=True)


def make_schedule(kind, T, **kw):
    """Return the ``Schedule`` of a named kind ('linear', 'cosine' or 'sigmoid') with T steps.

    Keyword arguments go to the kind's beta function, e.g.
    ``make_schedule("linear", 150, scale_to_T=False)`` or ``make_schedule("cosine", 1000, s=0.008)``.
    """
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"unknown schedule kind {kind!r}; expected one of {sorted(SCHEDULE_KINDS)}")
    _check_T(T)
    betas = SCHEDULE_KINDS[kind](T, **kw)
    suffix = "" if not kw else "(" + ", ".join(f"{k}={v}" for k, v in kw.items()) + ")"
    return schedule_from_betas(betas, kind=kind + suffix)
