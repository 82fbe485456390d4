"""Find and load a trained model for the sampling notebooks (06 onwards).

Notebook 05 writes ``runs/ddpm_fashion.pt`` (not in git). When it is there and was trained with
the expected config, its EMA weights are used; otherwise a small checkpoint committed to the
repository (EMA weights only, made by ``benchmarks/train_default.py``; its ``.json`` says how it was
trained): ``checkpoints/ddpm_fashion16.pt`` for ``default_config()`` (notebooks 06-08) and
``checkpoints/ddpm_fashion16_cond.pt`` for ``guidance_config()`` (notebook 09) and
``checkpoints/flow_fashion16.pt`` for ``flow_config()`` (notebooks 10 and 11).
"""
from pathlib import Path

from .checkpoints import load_checkpoint
from .models import UNet
from .settings import REPO_ROOT, repo_relative
from .training import DiffusionConfig, default_config

__all__ = [
    "REPO_ROOT", "RUN_CHECKPOINT", "PRETRAINED_CHECKPOINT", "GUIDANCE_CHECKPOINT", "FLOW_CHECKPOINT", "find_checkpoint",
    "load_pretrained",
]

RUN_CHECKPOINT = REPO_ROOT / "runs" / "ddpm_fashion.pt"
PRETRAINED_CHECKPOINT = REPO_ROOT / "checkpoints" / "ddpm_fashion16.pt"
GUIDANCE_CHECKPOINT = REPO_ROOT / "checkpoints" / "ddpm_fashion16_cond.pt"
FLOW_CHECKPOINT = REPO_ROOT / "checkpoints" / "flow_fashion16.pt"
CANDIDATES = (RUN_CHECKPOINT, PRETRAINED_CHECKPOINT, GUIDANCE_CHECKPOINT, FLOW_CHECKPOINT)


def _first_fitting(expected_config, candidates):
    """(path, checkpoint dict, reason) of the first candidate that exists, reads and has ``expected_config``
    (default: ``default_config()``); (None, None, the reasons for skipping each) when none fits."""
    expected_config = expected_config or default_config()
    reasons = []
    for path in map(Path, candidates):
        try:
            return path, load_checkpoint(path, expected_config=expected_config), f"using {repo_relative(path)}"
        except (FileNotFoundError, ValueError, RuntimeError) as exc:
            reasons.append(f"skipped {repo_relative(path)}: {exc}")
    return None, None, "\n".join(reasons)


def find_checkpoint(expected_config=None, candidates=CANDIDATES):
    """Return (path, reason) of the first candidate that exists, reads and has ``expected_config``
    (default: ``default_config()``); (None, reasons) when none fits."""
    path, _, reason = _first_fitting(expected_config, candidates)
    return path, reason


def load_pretrained(expected_config=None, candidates=CANDIDATES, device="cpu",
                    verbose=True):
    """Load the EMA weights of the first fitting checkpoint (see ``find_checkpoint``) into a UNet.

    Returns (model in eval mode on ``device``, its ``DiffusionConfig``, the checkpoint dict without weights).
    """
    path, ckpt, reason = _first_fitting(expected_config, candidates)
    if path is None:
        raise FileNotFoundError(f"no usable checkpoint found:\n{reason}\nRun notebook 05 to train one.")
    config = DiffusionConfig.from_dict(ckpt["config"])
    model = UNet(config.model)
    model.load_state_dict(ckpt["ema"]["shadow"])
    if verbose:
        print(f"{reason} (step {ckpt['step']}, trained {ckpt.get('history', {}).get('train_seconds', 0):.0f} s)")
    info = {k: v for k, v in ckpt.items() if k not in ("model", "ema", "optimizer")}
    return model.to(device).eval(), config, info
