"""Device selection and seeding (introduced in notebook 00)."""
import random

import numpy as np
import torch

__all__ = ["get_device", "seed_everything"]


def get_device(verbose=True):
    """Pick the best available device: CUDA, then Apple MPS, then CPU, and say why."""
    if torch.cuda.is_available():
        device = torch.device("cuda")
        reason = f"CUDA GPU found: {torch.cuda.get_device_name(0)}"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = torch.device("mps")
        reason = "Apple MPS found (no CUDA)"
    else:
        device = torch.device("cpu")
        reason = f"no CUDA or MPS found; using {torch.get_num_threads()} CPU threads"
    if verbose:
        print(f"Using device '{device}': {reason}")
    return device


def seed_everything(seed):
    """Seed Python's ``random``, NumPy and torch (all devices) with one integer."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed
