"""Training a diffusion model: the loss, one step of Algorithm 1, EMA weights and a resumable training loop (notebook 05).

Ho et al. (2020)'s L_simple (Algorithm 1): draw t ~ Uniform{0..T-1} and noise ~ N(0, I), form
x_t = q_sample(x_0, t, noise) and regress the noise:
    loss = mean over the batch of w_t || noise - model(x_t, t) ||^2 / D   (D = pixels per image), w_t = 1.
The course default keeps L_simple's objective and changes what the network outputs (benchmarks/DEFAULTS.md):
v = sqrt(alpha_bar_t) noise - sqrt(1 - alpha_bar_t) x_0 (Salimans & Ho 2022), with the v error weighted by
w_t = alpha_bar_t = SNR_t / (SNR_t + 1) (loss_weighting="snr"). That is the squared error of the noise prediction
the v output implies, since ||noise - noise_pred||^2 = alpha_bar_t ||v - v_pred||^2. Min-SNR-gamma (Hang et al.
2023), which turns the nearly clean steps down, and the plain v loss, which turns the noisiest ones up, are
options; on this course's model both reach a given quality later (benchmarks/DEFAULTS.md).
"""
import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoints import config_to_dict, load_checkpoint, save_checkpoint
from .data import fashion_mnist
from .device import autocast_for, compute_dtype
from .diffusion import q_sample, v_target
from .jupyter import end_early, tqdm
from .flow import TIME_SAMPLINGS, flow_loss
from .models import UNet, UNetConfig
from .schedules import SCHEDULE_KINDS, make_schedule, rescale_zero_terminal_snr

__all__ = ["DiffusionConfig", "default_config", "guidance_config", "LOSS_WEIGHTINGS", "loss_weights",
           "diffusion_loss", "train_step", "EMA", "TrainResult", "train", "TRAIN_IMAGES",
           "measure_training_speed"]

LOSS_WEIGHTINGS = ("uniform", "min_snr", "snr", "elbo")
LR_DECAYS = ("none", "cosine", "wsd")
TRAIN_IMAGES = 150_000  # training images of notebook 05's full run and the committed checkpoint (benchmarks/DEFAULTS.md)


@dataclass(frozen=True)
class DiffusionConfig:
    """Everything that defines a trained model; stored in every checkpoint and compared on loading."""

    image_size: int = 16  # 16x16 Fashion-MNIST: 3x cheaper than 28x28 and still recognisable
    T: int = 250  # diffusion steps; sampling costs T model calls, so T is a speed/quality trade-off
    schedule: str = "cosine"  # "linear", "cosine" or "sigmoid" (course_utils.make_schedule)
    scale_to_T: bool = True  # linear only: scale 1e-4..0.02 by 1000/T so alpha_bar_T ends near 0
    zero_terminal_snr: bool = False  # rescale the schedule so alpha_bar_{T-1} = 0 (Lin et al. 2023; needs v or x0)
    model: UNetConfig = field(default_factory=UNetConfig)  # the U-Net's sizes
    batch_size: int = 32  # images per optimiser step: small batches make more steps from the same images
    lr: float = 1e-3  # AdamW learning rate after a linear warm-up; small models tolerate a high rate
    warmup_steps: int = 200  # linear learning-rate warm-up, avoids early instability
    lr_decay: str = "wsd"  # after warm-up: "wsd" (constant, then linear to 0), "cosine" or "none" (constant)
    decay_share: float = 0.6  # lr_decay="wsd": the last share of the run, over which the rate falls linearly to 0
    grad_clip: float = 1.0  # clip the gradient norm: rare large-t batches otherwise jolt the weights
    ema_decay: float = 0.999  # EMA of the weights, averaging over about 1 / (1 - decay) = 1000 steps
    loss_weighting: str = "snr"  # one of LOSS_WEIGHTINGS: "snr" (L_simple's), "uniform", "min_snr" (Hang et al. 2023), "elbo"
    min_snr_gamma: float = 5.0  # the cap gamma of the Min-SNR weight (loss_weighting="min_snr" only)
    time_sampling: str = "uniform"  # flow matching only: "uniform" or "logit_normal" training times (flow.py)
    p_uncond: float = 0.1  # label dropout for classifier-free guidance (needs model.num_classes; 0 = always labelled)
    seed: int = 0  # seeds the weights, the batch order, t and the noise

    def __post_init__(self):
        if self.model.image_size != self.image_size:
            raise ValueError(f"model.image_size={self.model.image_size} differs from image_size={self.image_size}")
        if not 0.0 <= self.p_uncond <= 1.0:
            raise ValueError(f"p_uncond must be a probability in [0, 1], got {self.p_uncond}")
        if isinstance(self.T, bool) or not isinstance(self.T, int) or self.T < 2:
            raise ValueError(f"T must be an int >= 2 (the number of diffusion steps), got {self.T!r}")
        if self.schedule not in SCHEDULE_KINDS:
            raise ValueError(f"schedule must be one of {tuple(SCHEDULE_KINDS)}, got {self.schedule!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {self.warmup_steps!r}")
        if self.lr_decay not in LR_DECAYS:
            raise ValueError(f"lr_decay must be one of {LR_DECAYS}, got {self.lr_decay!r}")
        if not 0.0 < self.decay_share <= 1.0:
            raise ValueError(f"decay_share must be in (0, 1], got {self.decay_share!r}")
        if not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0, got {self.grad_clip!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting must be one of {LOSS_WEIGHTINGS}, got {self.loss_weighting!r}")
        if self.time_sampling not in TIME_SAMPLINGS:
            raise ValueError(f"time_sampling must be one of {TIME_SAMPLINGS}, got {self.time_sampling!r}")
        if self.zero_terminal_snr and self.model.prediction not in ("v", "x0"):
            raise ValueError("zero_terminal_snr=True needs prediction 'v' or 'x0': where alpha_bar = 0, x_t is pure "
                             f"noise and a noise prediction says nothing about x_0 (got {self.model.prediction!r})")
        if self.model.prediction == "velocity" and self.loss_weighting != "uniform":
            raise ValueError("a flow matching model (prediction='velocity') trains with loss_weighting='uniform', "
                             f"got {self.loss_weighting!r}")
        if not self.min_snr_gamma > 0:
            raise ValueError(f"min_snr_gamma must be > 0, got {self.min_snr_gamma!r}")

    def make_schedule(self):
        """The noise ``Schedule`` this config trains with."""
        kw = {"scale_to_T": self.scale_to_T} if self.schedule == "linear" else {}
        schedule = make_schedule(self.schedule, self.T, **kw)
        return rescale_zero_terminal_snr(schedule) if self.zero_terminal_snr else schedule

    def to_dict(self):
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d):
        """Rebuild a config from ``to_dict()`` output (as stored in a checkpoint)."""
        model = dict(d["model"], channel_mults=tuple(d["model"]["channel_mults"]))
        return cls(**dict(d, model=UNetConfig(**model)))


def default_config(**changes):
    """The course's unconditional CPU default (measured in benchmarks/DEFAULTS.md) used by notebooks 05-08;
    keyword arguments override fields."""
    return dataclasses.replace(DiffusionConfig(), **changes)


def guidance_config(**changes):
    """The default made class-conditional for classifier-free guidance (notebook 09): 10 classes plus the
    null label, which replaces a share ``p_uncond`` (default 0.1) of the training labels."""
    model = dataclasses.replace(DiffusionConfig().model, num_classes=10)
    return default_config(**{"model": model, **changes})


def flow_config(**changes):
    """The default with the flow matching objective (notebook 10): the same U-Net predicting the velocity
    noise - x_0 on the straight path (``course_utils.flow``), trained with the plain squared error."""
    model = dataclasses.replace(DiffusionConfig().model, prediction="velocity")
    return default_config(**{"model": model, "loss_weighting": "uniform", **changes})


def learning_rate(config, step, progress=None):
    """The rate of optimiser step ``step`` (0-based) when the share ``progress`` (in [0, 1]) of the run is done:
    lr * min(1, (step + 1) / warmup_steps), the linear warm-up, times the decay factor of ``config.lr_decay``:
    "none": 1; "cosine": (1 + cos(pi p)) / 2 (Loshchilov & Hutter 2017); "wsd" (warm-up, stable, decay; Hu et al.
    2024, Hägele et al. 2024): min(1, (1 - p) / decay_share), constant until the last ``decay_share`` of the run,
    then linear to 0. The decays need ``progress``; ``train`` passes the larger of the shares of n_images and of
    time_budget_s done, so the decay ends whichever budget runs out first."""
    warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
    if config.lr_decay == "none":
        return config.lr * warm
    if progress is None:
        raise ValueError(f"lr_decay={config.lr_decay!r} needs progress, the share of the run done")
    p = min(1.0, max(0.0, progress))
    if config.lr_decay == "cosine":
        return config.lr * warm * 0.5 * (1.0 + math.cos(math.pi * p))
    return config.lr * warm * min(1.0, (1.0 - p) / config.decay_share)


def loss_weights(schedule, t, weighting="uniform", gamma=5.0, prediction="noise"):
    """w_t per sample [B] (float32), the weight of each sample's squared error in the model's own target.

    "uniform": 1 (L_simple of Ho et al. 2020 for a noise predictor). The others are set on the x_0 error and
    converted: the noise error of step t is SNR_t times its x_0 error and the v error (SNR_t + 1) times it.
    "min_snr": x_0 weight min(SNR_t, gamma) (Min-SNR-gamma, Hang et al. 2023), i.e. min(SNR_t, gamma) / SNR_t
    on the noise error and min(SNR_t, gamma) / (SNR_t + 1) on the v error.
    "snr": x_0 weight SNR_t, L_simple's weighting whatever the network predicts (Ho et al. 2020, eq. 14: the noise
    error unweighted), i.e. 1 on the noise error and SNR_t / (SNR_t + 1) = alpha_bar_t on the v error.
    "elbo": x_0 weight SNR_{t-1} - SNR_t (Kingma et al. 2021, eq. 13), i.e. SNR_{t-1} / SNR_t - 1 on the noise
    error, which is twice Ho et al.'s (2020) eq. 12 weight beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t)) with
    sigma_t^2 = beta_tilde_t; step 0 (the decoder term) gets step 1's weight; scaled so the noise weights average 1.
    """
    if weighting == "uniform":
        return torch.ones(t.shape, dtype=torch.float32, device=t.device)
    if prediction not in ("noise", "x0", "v"):
        raise ValueError(f"loss weighting {weighting!r} is defined for noise, x0 or v prediction, not {prediction!r}")
    snr = schedule.snr.double()
    if weighting == "min_snr":
        x0_weight = snr.clamp(max=gamma)
    elif weighting == "snr":
        x0_weight = snr
    elif weighting == "elbo":
        ratio = snr[:-1] / snr[1:] - 1  # noise weight of steps 1..T-1
        noise_weight = torch.cat([ratio[:1], ratio])
        x0_weight = snr * noise_weight / noise_weight.mean()
    else:
        raise ValueError(f"weighting must be one of {LOSS_WEIGHTINGS}, got {weighting!r}")
    per_unit = {"noise": snr, "x0": torch.ones_like(snr), "v": snr + 1}[prediction]
    return (x0_weight / per_unit).float().to(t.device)[t]


def diffusion_loss(model, schedule, x_0, t=None, noise=None, y=None, generator=None, weighting="uniform",
                          gamma=5.0):
    """The training loss: returns (mean weighted loss, per-sample error [B], t [B]).

    per-sample error = mean over pixels of (target - model(q_sample(x_0, t, noise), t, y))^2, the target being
    what ``model.config.prediction`` names: the noise (L_simple with the default "uniform" weighting), x_0, or
    v = sqrt(alpha_bar_t) noise - sqrt(1 - alpha_bar_t) x_0;
    the loss is the batch mean of ``loss_weights(schedule, t, weighting, gamma, prediction)`` times it.
    ``t`` defaults to Uniform{0..T-1}, ``noise`` to N(0, I). The error is computed in float32.
    """
    B = x_0.shape[0]
    if t is None:
        t = torch.randint(0, schedule.T, (B,), generator=generator).to(x_0.device)
    if noise is None:
        noise = torch.randn(x_0.shape, generator=generator).to(x_0.device)
    x_t = q_sample(schedule, x_0, t, noise)
    prediction = getattr(getattr(model, "config", None), "prediction", "noise")
    if prediction not in ("noise", "x0", "v"):
        raise ValueError(f"this model predicts {prediction!r}: train it with course_utils.flow_loss")
    target = {"noise": noise, "x0": x_0}.get(prediction) if prediction != "v" else v_target(schedule, x_0, t, noise)
    with autocast_for(x_0.device):
        out = model(x_t, t, y)
    per_sample = (target - out.float()).pow(2).flatten(1).mean(1)
    loss = (loss_weights(schedule, t, weighting, gamma, prediction) * per_sample).mean()
    return loss, per_sample, t


def train_step(model, optimizer, schedule, config, x_0, y=None, generator=None):
    """One optimiser step of Algorithm 1 (Ho et al. 2020): t ~ Uniform{0..T-1}, noise ~ N(0, I),
    a gradient step on the loss (clipped to ``config.grad_clip``). Returns (loss, per-sample error [B], t [B]).
    A model that predicts the flow "velocity" takes a flow matching step instead (``flow_loss``, t in [0, 1])."""
    if model.config.prediction == "velocity":
        loss, per_sample, t = flow_loss(model, x_0, y=y, generator=generator, time_sampling=config.time_sampling)
    else:
        loss, per_sample, t = diffusion_loss(model, schedule, x_0, y=y, generator=generator,
                                             weighting=config.loss_weighting, gamma=config.min_snr_gamma)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    return loss.detach(), per_sample.detach(), t


class EMA:
    """Exponential moving average of a model's weights: shadow = decay * shadow + (1 - decay) * param.

    The decay used at update n (0-based) is min(decay, (1 + n) / (10 + n)), so the average does not
    remember the random initial weights for the first thousands of steps. Buffers are copied.
    """

    def __init__(self, model, decay=0.999):
        self.decay = decay
        self.num_updates = 0
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items()}

    def current_decay(self):
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model):
        d = self.current_decay()
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                self.shadow[name].mul_(d).add_(value.float(), alpha=1 - d)
            else:
                self.shadow[name].copy_(value)
        self.num_updates += 1

    def copy_to(self, model):
        """Load the averaged weights into ``model`` (use a copy for sampling, keep training the original)."""
        model.load_state_dict(self.shadow)
        return model

    def state_dict(self):
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, state):
        self.decay, self.num_updates = state["decay"], state["num_updates"]
        self.shadow = {k: v.float().clone() for k, v in state["shadow"].items()}


def measure_training_speed(config, device="cpu", n_steps=4):
    """Training images per second of ``config`` on ``device``, from ``n_steps`` timed steps (after one warm-up)
    on a throwaway copy of the model; the course's own weights, seeds and checkpoints are not touched."""
    device = torch.device(device)
    model, schedule = UNet(config.model).to(device), config.make_schedule()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(12345)
    x_0 = torch.randn(config.batch_size, 1, config.image_size, config.image_size, generator=generator).to(device)
    y = None if config.model.num_classes is None else torch.zeros(config.batch_size, dtype=torch.long, device=device)
    train_step(model, optimizer, schedule, config, x_0, y, generator)  # warm-up: first calls allocate and tune
    start = time.perf_counter()
    for _ in range(n_steps):
        train_step(model, optimizer, schedule, config, x_0, y, generator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n_steps * config.batch_size / (time.perf_counter() - start)


@dataclass
class TrainResult:
    model: torch.nn.Module  # the trained weights (keeps training if you call train again)
    ema_model: torch.nn.Module  # a copy holding the EMA weights, in eval mode: sample with this one
    history: dict  # step, images, loss, bucket_loss (per t bucket), images_per_s, train_seconds, stopped_by
    step: int

    @property
    def images_seen(self):
        return self.history["images_seen"]


def _new_history(n_buckets):
    return {"step": [], "images": [], "loss": [], "bucket_loss": [], "images_per_s": [], "lr": [],
            "n_buckets": n_buckets, "images_seen": 0, "train_seconds": 0.0, "stopped_by": None}


def _batch(config, images, labels, generator, device):
    """A random batch x_0 [B, 1, S, S] and labels y [B] (None for an unconditional model; with label dropout:
    a share p_uncond of the labels replaced by the null label num_classes)."""
    idx = torch.randint(0, images.shape[0], (config.batch_size,), generator=generator)
    x_0, y = images[idx].to(device), labels[idx].to(device)
    if config.model.num_classes is None:
        return x_0, None
    drop = torch.rand(config.batch_size, generator=generator).to(device) < config.p_uncond
    return x_0, torch.where(drop, torch.full_like(y, config.model.num_classes), y)


def train(config, model=None, data=None, n_images=None, time_budget_s=None, device=None, checkpoint_path=None,
          checkpoint_every_s=60.0, callback=None, callback_every=25_000, log_every=50, n_buckets=10, progress=True):
    """Train ``model`` (default ``UNet(config.model)``) with ``train_step``, AdamW and an EMA; returns a ``TrainResult``.

    Stops once ``n_images`` training images (in total, summed over resumed runs) have been seen or when
    ``time_budget_s`` seconds of training in total are spent, whichever comes first; ``history['stopped_by']``
    says which. ``data``: (images [N, 1, S, S] in [-1, 1], labels [N]), default Fashion-MNIST at
    config.image_size. With ``checkpoint_path`` it resumes from that file when it exists (its config must equal
    ``config``), saves every ``checkpoint_every_s`` seconds and at the end; a KeyboardInterrupt saves and returns
    what was trained so far. ``callback(step, result)`` runs about every ``callback_every`` images (e.g. to show
    samples). The progress bar counts images. Each step's learning rate is ``learning_rate(config, step, p)``, p the
    larger of the shares of ``n_images`` and of ``time_budget_s`` done, so a decay ends with whichever budget runs
    out first; ``history['lr']`` logs it.
    """
    if n_images is None and time_budget_s is None:
        raise ValueError("give n_images, time_budget_s or both, so training knows when to stop")
    device = torch.device(device or "cpu")
    torch.manual_seed(config.seed)
    model = (model or UNet(config.model)).to(device)
    if model.config != config.model:
        raise ValueError(f"model.config {model.config} differs from config.model {config.model}")
    schedule = config.make_schedule()
    images, labels = data if data is not None else fashion_mnist(train=True, image_size=config.image_size).tensors
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    ema, step, history = EMA(model, config.ema_decay), 0, _new_history(n_buckets)
    if checkpoint_path is not None and Path(checkpoint_path).is_file():
        try:
            ckpt = load_checkpoint(checkpoint_path, expected_config=config, map_location=device)
        except ValueError as err:  # a run of another config (or of an older course default) in the same file
            raise ValueError(f"{err}. To train this config from scratch, delete {checkpoint_path} or pass another "
                             "checkpoint_path") from None
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        ema.load_state_dict(ckpt["ema"])
        step, history = ckpt["step"], dict(ckpt["history"], stopped_by=None)
        print(f"resumed from {Path(checkpoint_path).name} at step {step} ({history['images_seen']:,} images, "
              f"{history['train_seconds']:.0f} s trained)")
    history["precision"] = str(compute_dtype(device)).replace("torch.", "")
    generator = torch.Generator().manual_seed(config.seed + step)  # a resumed run draws fresh batches
    result = TrainResult(model, None, history, step)

    def save():
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, config, step, model=model, ema=ema, optimizer=optimizer, history=history)

    def stop_reason():
        if n_images is not None and history["images_seen"] >= n_images:
            return "images"
        if time_budget_s is not None and history["train_seconds"] >= time_budget_s:
            return "time"
        return None

    history.setdefault("lr", [])  # runs saved before the rate was logged

    def share_done():
        return max(history["images_seen"] / n_images if n_images else 0.0,
                   history["train_seconds"] / time_budget_s if time_budget_s else 0.0)

    bar = tqdm(total=n_images, initial=history["images_seen"], desc="training images", unit="img", unit_scale=True,
               disable=not progress)
    bucket_sum, bucket_count = torch.zeros(n_buckets), torch.zeros(n_buckets)
    losses, t_save, n_seen, seen_s = [], time.perf_counter(), 0, 0.0
    model.train()
    try:
        while stop_reason() is None:
            t_start = time.perf_counter()
            x_0, y = _batch(config, images, labels, generator, device)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step, share_done())
            loss, per_sample, t = train_step(model, optimizer, schedule, config, x_0, y, generator)
            ema.update(model)
            step += 1
            elapsed = time.perf_counter() - t_start
            history["train_seconds"] += elapsed
            history["images_seen"] += config.batch_size
            n_seen, seen_s = n_seen + config.batch_size, seen_s + elapsed
            losses.append(loss.item())
            share = t.cpu().double() if t.is_floating_point() else t.cpu().double() / schedule.T  # in [0, 1)
            buckets = (share * n_buckets).long().clamp(max=n_buckets - 1)
            bucket_sum.index_add_(0, buckets, per_sample.float().cpu())
            bucket_count.index_add_(0, buckets, torch.ones_like(per_sample.float().cpu()))
            bar.update(config.batch_size)
            if step % log_every == 0 or stop_reason() is not None:
                history["step"].append(step)
                history["images"].append(history["images_seen"])
                history["loss"].append(sum(losses) / len(losses))
                history["bucket_loss"].append((bucket_sum / bucket_count.clamp(min=1)).tolist())
                history["images_per_s"].append(n_seen / seen_s)
                history["lr"].append(optimizer.param_groups[0]["lr"])
                bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", img_per_s=f"{n_seen / seen_s:.0f}")
                bucket_sum.zero_(), bucket_count.zero_()
                losses, n_seen, seen_s = [], 0, 0.0
            if time.perf_counter() - t_save > checkpoint_every_s:
                save()
                t_save = time.perf_counter()
            if callback is not None and history["images_seen"] // callback_every > (
                    history["images_seen"] - config.batch_size) // callback_every:
                result.step, result.ema_model = step, ema.copy_to(copy.deepcopy(model)).eval()
                callback(step, result)
        history["stopped_by"] = stop_reason()
        if history["stopped_by"] == "time":
            end_early(bar, "time budget reached")
    except KeyboardInterrupt:
        history["stopped_by"] = "interrupt"
        print(f"interrupted at step {step}: checkpoint saved, run the cell again to resume" if checkpoint_path
              else f"interrupted at step {step}: the model keeps what it learned")
    finally:
        bar.close()
    save()
    result.step, result.ema_model = step, ema.copy_to(copy.deepcopy(model)).eval()
    return result
