"""Device selection and seeding (introduced in notebook 00), and the device helpers the samplers share."""
import contextlib
import random

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "model_device", "randn_on", "sampling_mode"]


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


def model_device(model):
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def randn_on(shape, generator, device):
    """N(0, I) noise drawn on the CPU from ``generator``, then moved: a seed gives the same numbers on every device."""
    return torch.randn(shape, generator=generator).to(device)


@contextlib.contextmanager
def sampling_mode(model):
    """Run the block with ``model`` in eval mode and torch.inference_mode, then restore its train/eval mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)
