"""Training a noise predictor: the simple loss, EMA weights and a resumable training loop (notebook 05).

The loss is Ho et al. (2020)'s L_simple (Algorithm 1): draw t ~ Uniform{0..T-1} and
noise ~ N(0, I), form x_t = q_sample(x_0, t, noise) and regress the noise:
    loss = mean over the batch of || noise - model(x_t, t) ||^2 / D   (D = pixels per image).
"""
import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import config_to_dict, load_checkpoint, save_checkpoint
from .data import fashion_mnist
from .diffusion import q_sample
from .models import UNet, UNetConfig, autocast_for
from .schedules import make_schedule

__all__ = ["DiffusionConfig", "default_config", "guidance_config", "noise_prediction_loss", "EMA", "TrainResult", "train"]


@dataclass(frozen=True)
class DiffusionConfig:
    """Everything that defines a trained model; stored in every checkpoint and compared on loading."""

    image_size: int = 16  # 16x16 Fashion-MNIST: 3x cheaper than 28x28 and still recognisable
    T: int = 500  # diffusion steps; sampling costs T model calls, so T is a speed/quality trade-off
    schedule: str = "cosine"  # "linear", "cosine" or "sigmoid" (course_utils.make_schedule)
    scale_to_T: bool = True  # linear only: scale 1e-4..0.02 by 1000/T so alpha_bar_T ends near 0
    model: UNetConfig = field(default_factory=UNetConfig)  # the U-Net's sizes
    batch_size: int = 128  # images per step; on a CPU larger batches barely raise images/s
    lr: float = 1e-3  # AdamW learning rate after a linear warm-up; small models tolerate a high rate
    warmup_steps: int = 200  # linear learning-rate warm-up, avoids early instability
    grad_clip: float = 1.0  # clip the gradient norm: rare large-t batches otherwise jolt the weights
    ema_decay: float = 0.999  # EMA of the weights, averaging over about 1 / (1 - decay) = 1000 steps
    p_uncond: float = 0.1  # label dropout for classifier-free guidance (needs model.num_classes; 0 = always labelled)
    seed: int = 0  # seeds the weights, the batch order, t and the noise

    def __post_init__(self):
        if self.model.image_size != self.image_size:
            raise ValueError(f"model.image_size={self.model.image_size} differs from image_size={self.image_size}")
        if not 0.0 <= self.p_uncond <= 1.0:
            raise ValueError(f"p_uncond must be a probability in [0, 1], got {self.p_uncond}")

    def make_schedule(self):
        """The noise ``Schedule`` this config trains with."""
        kw = {"scale_to_T": self.scale_to_T} if self.schedule == "linear" else {}
        return make_schedule(self.schedule, self.T, **kw)

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


def noise_prediction_loss(model, schedule, x_0, t=None, noise=None, y=None, generator=None):
    """L_simple: returns (mean loss, per-sample loss [B], t [B]).

    per-sample loss = mean over pixels of (noise - model(q_sample(x_0, t, noise), t, y))^2;
    ``t`` defaults to Uniform{0..T-1}, ``noise`` to N(0, I). The error is computed in float32.
    """
    B = x_0.shape[0]
    if t is None:
        t = torch.randint(0, schedule.T, (B,), generator=generator).to(x_0.device)
    if noise is None:
        noise = torch.randn(x_0.shape, generator=generator).to(x_0.device)
    x_t = q_sample(schedule, x_0, t, noise)
    with autocast_for(x_0.device):
        noise_pred = model(x_t, t, y)
    per_sample = (noise - noise_pred.float()).pow(2).flatten(1).mean(1)
    return per_sample.mean(), per_sample, t


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


@dataclass
class TrainResult:
    model: torch.nn.Module  # the trained weights (keeps training if you call train again)
    ema_model: torch.nn.Module  # a copy holding the EMA weights, in eval mode: sample with this one
    history: dict  # step, loss, bucket_loss (per t bucket), images_per_s, train_seconds, interrupted
    step: int


def _new_history(n_buckets):
    return {"step": [], "loss": [], "bucket_loss": [], "images_per_s": [], "n_buckets": n_buckets,
            "train_seconds": 0.0, "interrupted": False}


def train(config, model=None, data=None, n_steps=None, time_budget_s=None, device=None, checkpoint_path=None,
          checkpoint_every_s=60.0, callback=None, callback_every=500, log_every=50, n_buckets=10, progress=True):
    """Train ``model`` (default ``UNet(config.model)``) with L_simple, AdamW and an EMA; returns a ``TrainResult``.

    Stops after ``n_steps`` in total or when ``time_budget_s`` seconds of training in total (summed over
    resumed runs) are spent, whichever comes first. ``data``: (images [N, 1, S, S] in [-1, 1], labels [N]),
    default Fashion-MNIST at config.image_size. With ``checkpoint_path`` it resumes from that file when it
    exists (its config must equal ``config``), saves every ``checkpoint_every_s`` seconds and at the end;
    a KeyboardInterrupt saves and returns what was trained so far. ``callback(step, result)`` runs every
    ``callback_every`` steps (e.g. to show samples).
    """
    if n_steps is None and time_budget_s is None:
        raise ValueError("give n_steps, time_budget_s or both, so training knows when to stop")
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
        ckpt = load_checkpoint(checkpoint_path, expected_config=config, map_location=device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        ema.load_state_dict(ckpt["ema"])
        step, history = ckpt["step"], dict(ckpt["history"], interrupted=False)
        print(f"resumed from {checkpoint_path} at step {step} ({history['train_seconds']:.0f} s trained)")
    generator = torch.Generator().manual_seed(config.seed + step)  # a resumed run draws fresh batches
    result = TrainResult(model, None, history, step)

    def save():
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, config, step, model=model, ema=ema, optimizer=optimizer, history=history)

    def done():
        return (n_steps is not None and step >= n_steps) or (
            time_budget_s is not None and history["train_seconds"] >= time_budget_s)

    bar = tqdm(total=n_steps, initial=step, desc="training", disable=not progress)
    bucket_sum, bucket_count = torch.zeros(n_buckets), torch.zeros(n_buckets)
    losses, t_log, t_save, n_seen, seen_s = [], time.perf_counter(), time.perf_counter(), 0, 0.0
    model.train()
    try:
        while not done():
            t_start = time.perf_counter()
            idx = torch.randint(0, images.shape[0], (config.batch_size,), generator=generator)
            x_0, y = images[idx].to(device), labels[idx].to(device)
            if config.model.num_classes is None:
                y = None
            else:  # label dropout: some samples get the null label, so the model also learns p(x)
                drop = torch.rand(config.batch_size, generator=generator).to(device) < config.p_uncond
                y = torch.where(drop, torch.full_like(y, config.model.num_classes), y)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * min(1.0, (step + 1) / max(1, config.warmup_steps))
            loss, per_sample, t = noise_prediction_loss(model, schedule, x_0, y=y, generator=generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            ema.update(model)
            step += 1
            elapsed = time.perf_counter() - t_start
            history["train_seconds"] += elapsed
            n_seen, seen_s = n_seen + config.batch_size, seen_s + elapsed
            losses.append(loss.item())
            buckets = (t.cpu() * n_buckets // schedule.T).long()
            bucket_sum.index_add_(0, buckets, per_sample.detach().float().cpu())
            bucket_count.index_add_(0, buckets, torch.ones_like(per_sample.detach().float().cpu()))
            bar.update(1)
            if step % log_every == 0 or done():
                history["step"].append(step)
                history["loss"].append(sum(losses) / len(losses))
                history["bucket_loss"].append((bucket_sum / bucket_count.clamp(min=1)).tolist())
                history["images_per_s"].append(n_seen / seen_s)
                bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", img_per_s=f"{n_seen / seen_s:.0f}")
                bucket_sum.zero_(), bucket_count.zero_()
                losses, n_seen, seen_s = [], 0, 0.0
            if time.perf_counter() - t_save > checkpoint_every_s:
                save()
                t_save = time.perf_counter()
            if callback is not None and step % callback_every == 0:
                result.step, result.ema_model = step, ema.copy_to(copy.deepcopy(model)).eval()
                callback(step, result)
    except KeyboardInterrupt:
        history["interrupted"] = True
        print(f"interrupted at step {step}: checkpoint saved, run the cell again to resume" if checkpoint_path
              else f"interrupted at step {step}: the model keeps what it learned")
    finally:
        bar.close()
    save()
    result.step, result.ema_model = step, ema.copy_to(copy.deepcopy(model)).eval()
    return result
