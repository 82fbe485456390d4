"""Flow matching on the straight path (notebook 10): rectified flow / conditional flow matching.

    code                                   paper
    flow_path(x_0, noise, t)               x_t = (1 - t) x_0 + t noise        (Liu et al. 2022, eq. 1; Esser et al. 2024, eq. 3)
    flow_target(x_0, noise)                u = dx_t/dt = noise - x_0          (the conditional velocity; Lipman et al. 2022, eq. 23)
    flow_loss(model, x_0, ...)             E || model(x_t, t) - (noise - x_0) ||^2   (conditional flow matching, Lipman eq. 9)
    mixture_velocity(mixture, x_t, t)      E[noise - x_0 | x_t] for a Gaussian mixture: the marginal field, exactly
    sample_flow_times(n, "logit_normal")   t = sigmoid(m + s z), z ~ N(0, 1)  (Esser et al. 2024, eq. 19)
    shift_times(t, shift)                  t' = shift t / (1 + (shift - 1) t) (Esser et al. 2024, eq. 23)
    flow_sample(model, shape, n_steps)     Euler or Heun on dx/dt = v(x, t) from t = 1 (noise) to t = 0 (data)

Time runs the diffusion way: t = 0 is data, t = 1 is pure noise (Liu et al. and Stable Diffusion 3 use
this direction; Lipman et al. use the opposite one). ``t`` is a float tensor [B] in [0, 1]; the U-Net,
whose time embedding was built for step numbers, is called with ``FLOW_TIME_SCALE * t``.

Regressing the conditional velocity noise - x_0 is enough: the minimiser of the expected squared error
over (x_0, noise) given x_t is the conditional mean E[noise - x_0 | x_t], which is the velocity of the
marginal probability path (Lipman et al. 2022, Theorem 2; Liu et al. 2022, Theorem 3.3).
"""
import torch

from .device import autocast_for, model_device, randn_on, sampling_mode
from .jupyter import tqdm

__all__ = [
    "FLOW_TIME_SCALE", "TIME_SAMPLINGS", "flow_path", "flow_target", "sample_flow_times", "shift_times", "flow_loss",
    "flow_velocity", "flow_time_grid", "flow_sample", "mixture_velocity", "ExactVelocityModel", "straightness",
]

FLOW_TIME_SCALE = 1000.0  # the network sees 1000 t, as Stable Diffusion 3 does, so its step embedding fits
TIME_SAMPLINGS = ("uniform", "logit_normal")


def _check_times(t, batch_size):
    """t: a float tensor [B] with values in [0, 1]."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"flow times t must be a float tensor in [0, 1], got {type(t).__name__}"
                        f"{'' if not isinstance(t, torch.Tensor) else ' of dtype ' + str(t.dtype)}")
    if t.shape != (batch_size,):
        raise ValueError(f"expected t of shape [{batch_size}] (one time per sample), got {tuple(t.shape)}")
    if t.numel() and (t.min() < 0 or t.max() > 1):
        raise ValueError(f"flow times must lie in [0, 1], got values in [{t.min().item():.4g}, {t.max().item():.4g}]")
    return t


def _per_sample(t, x):
    """t [B] reshaped to broadcast against x [B, ...]."""
    return t.to(x.device, x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def flow_path(x_0, noise, t):
    """x_t = (1 - t) x_0 + t noise: the straight line from the data point (t = 0) to its noise (t = 1)."""
    t = _check_times(t, x_0.shape[0])
    tt = _per_sample(t, x_0)
    return (1 - tt) * x_0 + tt * noise


def flow_target(x_0, noise):
    """The conditional velocity u = d x_t / dt = noise - x_0 (the same at every t on the straight line)."""
    return noise - x_0


def sample_flow_times(n, kind="uniform", mean=0.0, std=1.0, generator=None):
    """n training times in (0, 1): "uniform", or "logit_normal" t = sigmoid(mean + std z), z ~ N(0, 1)
    (Esser et al. 2024, eq. 19: more weight on the middle of the path, where the velocity is hardest)."""
    if kind == "uniform":
        return torch.rand(n, generator=generator)
    if kind == "logit_normal":
        return torch.sigmoid(mean + std * torch.randn(n, generator=generator))
    raise ValueError(f"time sampling must be one of {TIME_SAMPLINGS}, got {kind!r}")


def shift_times(t, shift):
    """t' = shift t / (1 + (shift - 1) t) (Esser et al. 2024, eq. 23, shift = sqrt(m / n) for m pixels
    against a base of n): shift > 1 spends more of the path at high noise, which larger images need."""
    if not shift > 0:
        raise ValueError(f"shift must be > 0, got {shift!r}")
    return shift * t / (1 + (shift - 1) * t)


def flow_velocity(model, x_t, t, y=None):
    """The model's velocity v_theta(x_t, t) in float32 (``t`` float [B] in [0, 1])."""
    t = _check_times(t, x_t.shape[0]).to(x_t.device)
    with autocast_for(x_t.device):
        return model(x_t, FLOW_TIME_SCALE * t, y).float()


def flow_loss(model, x_0, t=None, noise=None, y=None, generator=None, time_sampling="uniform"):
    """Conditional flow matching: returns (mean loss, per-sample error [B], t [B]).

    per-sample error = mean over entries of (noise - x_0 - v_theta(x_t, t))^2 with x_t = flow_path(x_0, noise, t);
    ``t`` defaults to ``sample_flow_times(B, time_sampling)``, ``noise`` to N(0, I). Computed in float32.
    """
    B = x_0.shape[0]
    if t is None:
        t = sample_flow_times(B, time_sampling, generator=generator)
    if noise is None:
        noise = torch.randn(x_0.shape, generator=generator)
    t, noise = t.to(x_0.device), noise.to(x_0.device)
    out = flow_velocity(model, flow_path(x_0, noise, t), t, y)
    per_sample = (flow_target(x_0, noise) - out).pow(2).flatten(1).mean(1)
    return per_sample.mean(), per_sample, t


def flow_time_grid(n_steps, shift=1.0):
    """n_steps + 1 times from 1 down to 0: uniform, then ``shift_times`` (shift = 1 keeps them uniform)."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
    return shift_times(torch.linspace(1.0, 0.0, n_steps + 1, dtype=torch.float64), shift)


@torch.no_grad()
def flow_sample(model, shape, n_steps, method="euler", shift=1.0, generator=None, y=None, x_1=None, progress=True,
                return_trajectory=False):
    """Integrate dx/dt = v_theta(x, t) from x_1 ~ N(0, I) at t = 1 to t = 0 on ``flow_time_grid(n_steps, shift)``.

    "euler": x <- x + (t_next - t) v(x, t), one network call per step. "heun" (the trapezoidal predictor-corrector
    of Karras et al. 2022, Algorithm 1, without noise): an Euler guess x', then
    x <- x + (t_next - t) (v(x, t) + v(x', t_next)) / 2, 2 n_steps calls (the velocity is defined at t = 0 too, so
    unlike Karras et al.'s sigma-ODE the last step is corrected as well). Returns samples (and the list of x at
    every grid time with ``return_trajectory``).
    """
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun', got {method!r}")
    device = model_device(model)
    x = randn_on(shape, generator, device) if x_1 is None else x_1.to(device).float()
    times = flow_time_grid(n_steps, shift).tolist()
    trajectory = [x.cpu()] if return_trajectory else None
    with sampling_mode(model):
        for t, t_next in tqdm(list(zip(times[:-1], times[1:])), desc=f"flow {method}", disable=not progress, leave=False):
            full = lambda value: torch.full((x.shape[0],), value, device=device)  # noqa: E731
            d = flow_velocity(model, x, full(t), y)
            x_next = x + (t_next - t) * d
            if method == "heun":
                x_next = x + (t_next - t) * 0.5 * (d + flow_velocity(model, x_next, full(t_next), y))
            x = x_next
            if return_trajectory:
                trajectory.append(x.cpu())
    return (x, trajectory) if return_trajectory else x


def mixture_velocity(mixture, x_t, t):
    """The exact marginal velocity E[noise - x_0 | x_t] on the straight path for x_0 ~ ``mixture``
    (a ``GaussianMixture``), x_t [B, D] at one time ``t`` in [0, 1): a float64 tensor [B, D].

    Given component k, (x_0, noise, x_t) are jointly Gaussian with x_t ~ N((1 - t) m_k, c_k I),
    c_k = (1 - t)^2 s_k^2 + t^2, so E[x_0 | x_t, k] = m_k + (1 - t) s_k^2 / c_k (x_t - (1 - t) m_k) and
    E[noise | x_t, k] = t / c_k (x_t - (1 - t) m_k); the components are weighted by their
    responsibilities for x_t under the mixture of those Gaussians.
    """
    t = float(t)
    if not 0 <= t < 1:
        raise ValueError(f"t must lie in [0, 1) (at t = 1 every point is pure noise and x_0 is lost), got {t}")
    from .score import GaussianMixture  # score imports training; import here to keep the modules flat

    c = (1 - t) ** 2 * mixture.stds**2 + t**2  # [K]
    marginal = GaussianMixture((1 - t) * mixture.means, c.sqrt(), mixture.weights)
    x = x_t.double()
    r = marginal.responsibilities(x)  # [B, K]
    offset = x[:, None, :] - (1 - t) * mixture.means[None]  # [B, K, D]
    e_x0 = mixture.means[None] + ((1 - t) * mixture.stds**2 / c)[None, :, None] * offset
    e_noise = (t / c)[None, :, None] * offset
    return (r[:, :, None] * (e_noise - e_x0)).sum(1)


class ExactVelocityModel(torch.nn.Module):
    """``mixture_velocity`` of a ``GaussianMixture`` as a model: (x_t [B, D], 1000 t [B]) -> E[noise - x_0 | x_t],
    usable by ``flow_sample`` and ``flow_loss`` (each row at its own t)."""

    def __init__(self, mixture):
        super().__init__()
        self.mixture = mixture
        self.register_buffer("anchor", torch.zeros(()))  # gives the model a device for model_device

    def forward(self, x_t, t_scaled, y=None):
        out = torch.empty_like(x_t)
        for value in t_scaled.unique().tolist():
            rows = t_scaled == value
            out[rows] = mixture_velocity(self.mixture, x_t[rows], min(value / FLOW_TIME_SCALE, 1 - 1e-9)).to(x_t.dtype)
        return out


def straightness(trajectory):
    """How straight a sampled path is: |x_end - x_start| / (sum of segment lengths), per sample (1 = a line).
    ``trajectory``: a list of [B, ...] tensors, as ``flow_sample(..., return_trajectory=True)`` returns."""
    points = torch.stack([p.flatten(1).double() for p in trajectory])  # [steps + 1, B, N]
    path = (points[1:] - points[:-1]).norm(dim=-1).sum(0)
    return (points[-1] - points[0]).norm(dim=-1) / path.clamp(min=1e-12)

