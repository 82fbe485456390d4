"""Sampling speed of the committed default model in the two memory layouts of its weights.

    flock /tmp/cpu.lock .venv/bin/python benchmarks/sample_speed.py
    COURSE_PRECISION=bf16 .venv/bin/python benchmarks/sample_speed.py --tag bf16

``cu.sampling_mode`` lays the network's 4-D weights out channels-last (NHWC) while it samples on a CPU that
computes in float32 (``cu.channels_last_pays``); everywhere else they keep PyTorch's default NCHW layout. This
script times both layouts in the precision the policy picks (or ``COURSE_PRECISION``): one forward pass at batch 8
and 64 (median of ``--repeats``), and 64 samples with all T ancestral steps, notebook 06's default sampler (its
target: under 20 s on a 2-core laptop CPU in float32). Prints a table and writes it to
benchmarks/results/sample_speed_<device>[_<tag>].md.
"""
import argparse
import statistics
import time
from unittest import mock

import torch

import course_utils as cu
from bench_utils import sync, timed_sample, write_results

LAYOUTS = {"NCHW (default)": False, "channels-last": True}


def forward_ms(model, batch, repeats, device):
    """Median milliseconds of one forward pass at ``batch``, inside ``cu.sampling_mode`` as the samplers run it."""
    x = torch.randn(batch, 1, model.config.image_size, model.config.image_size).to(device)
    t = torch.full((batch,), 100, device=device)
    times = []
    with cu.sampling_mode(model), cu.autocast_for(device):
        for i in range(repeats + 3):  # 3 warm-up calls
            sync(device)
            start = time.perf_counter()
            model(x, t)
            sync(device)
            if i >= 3:
                times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="timed forward passes per batch size (default 30)")
    parser.add_argument("--tag", default=None, help="added to the results file's name")
    args = parser.parse_args()

    device = cu.get_device()
    model, config, _ = cu.load_pretrained(candidates=[cu.PRETRAINED_CHECKPOINT], device=device)
    rows = []
    for name, channels_last in LAYOUTS.items():
        with mock.patch.object(cu.device, "channels_last_pays", lambda device, on=channels_last: on):
            ms = {b: forward_ms(model, b, args.repeats, device) for b in (8, 64)}
            _, seconds = timed_sample(model, config, 64, "ddpm", config.T, device)
            rows.append({"weights": name, "forward, batch 8": f"{ms[8]:.2f} ms", "forward, batch 64": f"{ms[64]:.2f} ms",
                         f"64 samples, DDPM-{config.T}": f"{seconds:.1f} s"})
    chosen = "channels-last" if cu.channels_last_pays(device) else "NCHW (default)"
    notes = [f"Precision {cu.compute_dtype(device)}; `cu.sampling_mode` uses the {chosen} layout on this device.",
             f"Model: checkpoints/ddpm_fashion16.pt (default_config(), {cu.count_parameters(model) / 1e6:.2f}M parameters)."]
    write_results(f"sample_speed_{device.type}" + (f"_{args.tag}" if args.tag else ""), "Sampling speed by weight layout",
                  f"forward passes timed inside cu.sampling_mode (median of {args.repeats}), then 64 samples with all "
                  f"{config.T} ancestral steps (cu.p_sample_loop, seed 0).", rows, notes)


if __name__ == "__main__":
    main()
