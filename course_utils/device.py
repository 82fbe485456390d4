"""Device and precision policy, seeding (introduced in notebook 00), and the device helpers the samplers share.

Precision: the network runs under bfloat16 autocast only where that is faster. On a CPU that means
native bf16 instructions (AVX512-BF16 or AMX on x86, BF16 on ARM) *and* a short measurement that
confirms it: without them bf16 is emulated and about 100x slower than float32. CUDA uses bf16 where
the GPU supports it; Apple MPS runs float32. ``COURSE_PRECISION=fp32|bf16`` overrides the choice.
"""
import contextlib
import functools
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .settings import precision_setting

__all__ = ["get_device", "seed_everything", "model_device", "randn_on", "sampling_mode", "channels_last_pays",
           "measure_channels_last_speedup", "compute_dtype",
           "precision_choice", "autocast_for", "cpu_has_native_bf16", "measure_bf16_speedup"]


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
        dtype, why = precision_choice(device)
        print(f"Using device '{device}': {reason}")
        print(f"Compute precision: {_DTYPE_NAMES[dtype]} ({why})")
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


def _best_seconds(run, repeats, context=contextlib.nullcontext):
    """The shortest of ``repeats`` timed calls of ``run()``, after one warm-up call, in inference mode and
    ``context()``: the timing of the two speed probes (channels-last layout, bf16 autocast)."""
    times = []
    with torch.inference_mode(), context():
        run()
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return min(times)


def measure_channels_last_speedup(repeats=5):
    """(NCHW seconds, channels-last seconds): the best of ``repeats`` runs of two 3x3 convolutions of the course
    U-Net's sizes (batch 64, 16x16, 32 and 64 channels) on the CPU in float32, with the weights in PyTorch's default
    layout and laid out channels-last (NHWC). A tenth of a second or less."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 32, 16, 16, generator=generator)
    weights = [torch.randn(32, 32, 3, 3, generator=generator), torch.randn(64, 32, 3, 3, generator=generator)]

    def convolutions(memory_format):
        ws = [w.contiguous(memory_format=memory_format) for w in weights]
        return lambda: F.conv2d(F.conv2d(x, ws[0], padding=1), ws[1], padding=1)

    return (_best_seconds(convolutions(torch.contiguous_format), repeats),
            _best_seconds(convolutions(torch.channels_last), repeats))


@functools.lru_cache(maxsize=None)
def _channels_last_measured_faster():
    nchw_s, nhwc_s = measure_channels_last_speedup()
    return nhwc_s < nchw_s


def channels_last_pays(device):
    """True where sampling should lay the weights out channels-last: on a CPU computing in float32, when a short
    measurement (once per process) finds oneDNN's convolutions faster that way. On a 2-core AVX512 CPU the U-Net's
    forward pass at batch 64 ran 1.2-1.7x faster so in float32, and slower under bf16 autocast
    (benchmarks/results/sample_speed_cpu_*.md); other CPUs may differ, so it is measured, never assumed."""
    device = torch.device(device)
    return device.type == "cpu" and compute_dtype(device) == torch.float32 and _channels_last_measured_faster()


@contextlib.contextmanager
def sampling_mode(model):
    """Run the block with ``model`` in eval mode and torch.inference_mode, then restore its train/eval mode.

    Where ``channels_last_pays`` for the model's device, its 4-D weights are laid out channels-last for the block
    and back afterwards: the same values and the same Parameter objects, so an optimiser keeps its state. A block
    entered inside inference mode (a sampler called by another) keeps the layout it finds.
    """
    was_training = model.training
    relayout = not torch.is_inference_mode_enabled() and channels_last_pays(model_device(model))
    model.eval()
    if relayout:
        model.to(memory_format=torch.channels_last)
    try:
        with torch.inference_mode():
            yield
    finally:
        if relayout:
            model.to(memory_format=torch.contiguous_format)
        model.train(was_training)


_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16"}
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # /proc/cpuinfo names: x86 AVX512-BF16, x86 AMX, ARM BF16


def cpu_has_native_bf16():
    """True when the CPU reports native bfloat16 arithmetic (AVX512-BF16 or AMX on x86, BF16 on ARM)."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            return True
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    words = set(text.replace(":", " ").split())
    return any(flag in words for flag in _CPU_BF16_FLAGS)


def measure_bf16_speedup(device="cpu", repeats=5):
    """(float32 seconds, bfloat16 seconds): the best of ``repeats`` runs of a 3x3 convolution and a matmul of
    the course U-Net's sizes, plain and under bf16 autocast. Takes well under a second where bf16 is native."""
    device = torch.device(device)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 64, 8, 8, generator=generator).to(device)
    w = torch.randn(64, 64, 3, 3, generator=generator).to(device)
    a = torch.randn(256, 256, generator=generator).to(device)

    def run():
        F.conv2d(x, w, padding=1)
        a @ a

    return (_best_seconds(run, repeats),
            _best_seconds(run, repeats, lambda: torch.autocast(device.type, dtype=torch.bfloat16)))


@functools.lru_cache(maxsize=None)
def _auto_choice(device_type):
    """The automatic (dtype, reason) for a device type; measured at most once per process."""
    if device_type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "CUDA GPU with bfloat16 support"
        return torch.float32, "this CUDA GPU has no bfloat16 support"
    if device_type != "cpu":
        return torch.float32, f"float32 on {device_type} (bfloat16 autocast is not used there)"
    if not cpu_has_native_bf16():
        return torch.float32, "this CPU has no native bfloat16 (AVX512-BF16/AMX): bf16 would be ~100x slower"
    fp32_s, bf16_s = measure_bf16_speedup("cpu")
    if bf16_s < fp32_s:
        return torch.bfloat16, f"native bfloat16 measured {fp32_s / bf16_s:.1f}x faster than float32"
    return torch.float32, f"native bfloat16 measured {bf16_s / fp32_s:.1f}x slower than float32"


def precision_choice(device):
    """(dtype, reason): the compute dtype of the network on ``device`` and why.

    COURSE_PRECISION=fp32 or bf16 forces it; 'auto' (default) picks bfloat16 only on a CUDA GPU that supports
    it or on a CPU with native bf16 that a short measurement confirms is faster; float32 everywhere else.
    """
    setting = precision_setting()
    device = torch.device(device)
    if setting == "fp32":
        return torch.float32, "COURSE_PRECISION=fp32"
    if setting == "bf16":
        return torch.bfloat16, "COURSE_PRECISION=bf16"
    return _auto_choice(device.type)


def compute_dtype(device):
    """torch.float32 or torch.bfloat16: the dtype the network computes in on ``device`` (see ``precision_choice``)."""
    return precision_choice(device)[0]


def autocast_for(device, enabled=True):
    """bfloat16 autocast where ``compute_dtype(device)`` chose it, else a no-op context (float32).

    Only the model's matmuls and convolutions run in bfloat16; losses, optimiser and EMA stay in float32.
    """
    device = torch.device(device)
    if enabled and compute_dtype(device) == torch.bfloat16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
