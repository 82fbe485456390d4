"""What the benchmark scripts share: the machine, FLOPs and peak, the metric's reference numbers, tables, sampling
and training helpers.

Not part of ``course_utils``: the course code lives there; this file only measures it.
"""
import os
import platform
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.utils.flop_counter import FlopCounterMode

import course_utils as cu
from course_utils.checkpoints import load_checkpoint
from course_utils.flow import flow_sample
from course_utils.pretrained import find_checkpoint, load_pretrained
from course_utils.samplers import ddim_sample_loop, p_sample_loop
from course_utils.settings import repo_relative
from course_utils.solvers import dpm_solver_2m_sample
from course_utils.training import DiffusionConfig

RESULTS = Path(__file__).resolve().parent / "results"


def machine():
    """One line naming the processor (or GPU), its cores and torch's threads."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({cpu_capability()}), {torch.get_num_threads()} threads, torch {torch.__version__}"


def cpu_capability():
    """torch's CPU kernel level (AVX2, AVX512, ...) and whether bfloat16 is native: names the kind of CPU a run used;
    with oneDNN held to older code (``ONEDNN_MAX_CPU_ISA``, to stand in for an older CPU) it says so."""
    native = "native bf16" if cu.cpu_has_native_bf16() else "no native bf16"
    held = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f"{torch.backends.cpu.get_cpu_capability()}, {native}" + (f", oneDNN held to {held}" if held else "")


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def forward_flops(model, *inputs):
    """FLOPs (2 per multiply-add) of one forward pass, counted by torch.utils.flop_counter (convs, matmuls, attention)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(*inputs)
    return counter.get_total_flops()


def peak_matmul_gflops(device, dtype, n=2048, seconds=2.0):
    """Measured GFLOP/s of an n x n x n matmul (2 n^3 FLOPs) in ``dtype``: the machine's practical peak."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm-up
    sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
        sync(device)
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


def reference_numbers(n):
    """The protocol's floor and ceiling for N = n samples against the 2,000 reference test images.

    floor: n real test images outside the reference; ceiling: n images of pure Gaussian noise,
    clamped to [-1, 1] as samples are; halves: test images 0-4,999 against 5,000-9,999 (large-N floor).
    """
    real = cu.reference_images()
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn((n, 1, 16, 16), generator=generator).clamp(-1, 1)
    noise_quality = cu.sample_quality(noise)  # its fid_floor is the FID of n real images outside the reference
    return {
        "floor": noise_quality["fid_floor"],
        "ceiling": noise_quality["fid"],
        "halves": cu.fid(real[:5000], real[5000:]),
    }


def quality_columns(samples):
    """FID, confident share, class entropy (nats, max log 10 = 2.30) and rarest class share of samples."""
    q = cu.sample_quality(samples)
    return {"FID": f"{q['fid']:.2f}", "confident": f"{q['confident_share']:.2f}",
            "class entropy": f"{q['class_entropy']:.2f}", "min class": f"{q['min_class_share']:.3f}"}


def mean_over_seeds(qualities):
    """The quality target's reduction of several sampling seeds' ``cu.sample_quality`` results: the mean FID and the
    rarest class's share in any of them (benchmarks/images_to_target.py)."""
    return {"fid": sum(q["fid"] for q in qualities) / len(qualities),
            "min_class_share": min(q["min_class_share"] for q in qualities)}


def markdown_table(rows):
    """Rows (dicts with the same keys) as a GitHub markdown table."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name, title, protocol, rows, notes=()):
    """Print a markdown section (title, date, machine, protocol, table, notes) and write it to results/<name>.md."""
    text = "\n".join([
        f"#### {title}", "",
        f"Measured {date.today().isoformat()} on {machine()}.", "",
        f"Protocol: {protocol}", "",
        markdown_table(rows), "",
        *[f"- {note}" for note in notes],
    ]).rstrip() + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text)
    print("\n" + text + f"(written to {RESULTS / (name + '.md')})")
    return text


def load_model(checkpoint, device):
    """(EMA model, config, checkpoint dict without weights, path) of ``checkpoint`` with the config it was trained
    with, or, when ``checkpoint`` is None, of the checkpoint ``load_pretrained`` finds (as notebook 06 does)."""
    if checkpoint:
        expected = DiffusionConfig.from_dict(load_checkpoint(checkpoint)["config"])
        return (*load_pretrained(expected, candidates=(checkpoint,), device=device), checkpoint)
    return (*load_pretrained(device=device), repo_relative(find_checkpoint()[0]))


def sample(model, config, n, sampler, steps, device, seed=0, batch_size=500, balanced=False, spacing="karras"):
    """n samples [n, 1, S, S]: ``sampler`` "ddpm" (T ancestral steps), "ddim" (``steps``, eta = 0) or "dpm2m"
    (DPM-Solver++(2M) with ``steps`` network calls, on Karras et al.'s noise levels unless ``spacing`` names
    another of ``course_utils.solvers``' spacings, notebook 11); a flow
    matching model (prediction "velocity") is sampled with ``steps`` Euler steps ("euler") or Heun steps ("heun").

    Unconditional (for a class-conditional model: the null label); with ``balanced`` a class-conditional model gets the
    labels 0, 1, ..., 9, 0, 1, ... (every class n/10 times, no guidance).
    """
    schedule, generator, out = config.make_schedule(), torch.Generator().manual_seed(seed), []
    for start in range(0, n, batch_size):
        shape = (min(batch_size, n - start), 1, config.image_size, config.image_size)
        kw = {}
        if balanced:
            kw = {"y": (torch.arange(start, start + shape[0]) % config.model.num_classes).to(device)}
        if config.model.prediction == "velocity":
            method = sampler if sampler in ("euler", "heun") else "euler"
            out.append(flow_sample(model, shape, steps, method, generator=generator, progress=False, **kw).cpu())
        elif sampler == "ddpm":
            out.append(p_sample_loop(model, schedule, shape, generator=generator, progress=False, **kw).cpu())
        elif sampler == "dpm2m":
            out.append(dpm_solver_2m_sample(model, schedule, shape, steps, spacing=spacing, generator=generator,
                                            progress=False, **kw).cpu())
        elif sampler == "ddim":
            out.append(ddim_sample_loop(model, schedule, shape, steps, generator=generator, progress=False, **kw).cpu())
        else:
            raise ValueError(f"sampler must be 'ddpm', 'ddim' or 'dpm2m' for a diffusion model, got {sampler!r}")
    return torch.cat(out)


def timed_sample(model, config, n, sampler, steps, device, balanced=False):
    sync(device)
    start = time.perf_counter()
    samples = sample(model, config, n, sampler, steps, device, balanced=balanced)
    sync(device)
    return samples, time.perf_counter() - start


def train_for(config, minutes, device, save=None, n_images=None):
    """Train ``config`` for ``minutes`` of training time, or for ``n_images`` training images when ``minutes`` is
    None (a fresh run; kept at ``save`` if given); returns (EMA model, steps, images/s)."""
    if save is not None:
        Path(save).unlink(missing_ok=True)  # train() would resume from an old file
    budget = {"n_images": n_images} if minutes is None else {"time_budget_s": 60 * minutes}
    result = cu.train(config, device=device, progress=False, checkpoint_path=save, **budget)
    images_per_s = result.images_seen / result.history["train_seconds"]
    return result.ema_model, result.step, images_per_s


def save_ema_weights(path, config, result, **extra):
    """Save only the EMA weights of a ``cu.train`` result, under 'ema' -> 'shadow' where a training run keeps
    them, so ``cu.load_pretrained`` reads the file; a few MB, without the raw weights and the optimizer."""
    ema = SimpleNamespace(state_dict=lambda: {"decay": None, "num_updates": None, "shadow": result.ema_model.state_dict()})
    return cu.save_checkpoint(path, config, result.step, ema=ema, **extra)
