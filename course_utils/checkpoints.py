"""Checkpoints that survive interruptions and refuse the wrong model (notebooks 05 and 06).

A checkpoint is a dict of tensors and plain Python values (no pickled classes), so it loads
with ``torch.load(path, weights_only=True)``: ``{"format", "config", "step", "model", "ema",
"optimizer", ...}`` where ``config`` is the training config as a nested dict. It is written to a
temporary file in the same folder and then renamed over the old one (``os.replace`` is atomic),
so a crash or a KeyboardInterrupt never leaves half a file behind.
"""
import dataclasses
import os
import tempfile
from pathlib import Path

import torch

__all__ = ["CheckpointError", "config_to_dict", "config_differences", "save_checkpoint", "load_checkpoint"]

FORMAT = 2  # 2: the U-Net's layers grouped per level (``down.0.blocks.0...``); 1 had flat lists (``down.0...``)


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable (truncated, corrupt, or not a course checkpoint)."""


def config_to_dict(config):
    """A dataclass (possibly nested) or dict as a dict of plain values; tuples become lists."""
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    if isinstance(config, dict):
        return {k: config_to_dict(v) for k, v in config.items()}
    if isinstance(config, (tuple, list)):
        return [config_to_dict(v) for v in config]
    return config


def _flatten(d, prefix=""):
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(saved, expected):
    """Fields where two configs differ, as {"model.base_channels": (saved, expected), ...}. A saved dict is
    first rebuilt with ``type(expected).from_dict`` where there is one, so fields added to the config since
    the checkpoint was written count as their defaults."""
    if isinstance(saved, dict) and hasattr(type(expected), "from_dict"):
        saved = type(expected).from_dict(saved)
    a, b = _flatten(config_to_dict(saved)), _flatten(config_to_dict(expected))
    return {k: (a.get(k, "<missing>"), b.get(k, "<missing>")) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def save_checkpoint(path, config, step, model=None, ema=None, optimizer=None, **extra):
    """Write {config, step, model, ema, optimizer, **extra} to ``path`` atomically (temp file + os.replace).

    ``model``/``optimizer`` are saved as their state dicts, ``ema`` (an ``EMA``) as its state dict;
    ``extra`` values must be tensors or plain Python values (numbers, strings, lists, dicts).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "config": config_to_dict(config), "step": int(step), **extra}
    for key, obj in (("model", model), ("ema", ema), ("optimizer", optimizer)):
        if obj is not None:
            payload[key] = obj.state_dict()
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o644)  # mkstemp makes the file private (0600); a checkpoint is an ordinary file
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)  # atomic on POSIX and Windows: readers see the old file or the new one
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def load_checkpoint(path, expected_config=None, map_location="cpu"):
    """Load a checkpoint dict with ``weights_only=True``.

    Raises ``FileNotFoundError`` if it is missing, ``CheckpointError`` if it cannot be read, and
    ``ValueError`` naming every differing field if its config is not ``expected_config``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, foreign file: one clear message instead
        raise CheckpointError(
            f"could not read checkpoint {path} ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}). "
            "It is probably truncated or corrupt: delete it and train again."
        ) from None
    if not isinstance(ckpt, dict) or "config" not in ckpt or not isinstance(ckpt.get("format"), int):
        raise CheckpointError(f"{path} is not a course checkpoint (format {FORMAT}); delete it and train again.")
    if ckpt["format"] != FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {ckpt['format']}, written by another version of the "
                              f"course whose U-Net names its weights differently (this one reads format {FORMAT}); "
                              "delete it and train again.")
    if expected_config is not None:
        diff = config_differences(ckpt["config"], expected_config)
        if diff:
            fields = "; ".join(f"{k}: checkpoint has {a!r}, expected {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"checkpoint {path} was trained with a different config: {fields}")
    return ckpt
