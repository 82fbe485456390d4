"""Sample quality after a fixed wall-clock training budget, for the course's default model.

    flock /tmp/cpu.lock .venv/bin/python benchmarks/train_quality.py --minutes 3     # also 6, 12, ...

Trains ``default_config()`` (unconditional) with ``course_utils.train`` for ``--minutes`` of training
time (on the GPU when there is one), draws ``--n-samples`` samples with the chosen sampler, and prints: parameters, training images/s, steps, FID against the protocol's reference
(course_utils.metrics), the confident share, the class entropy, the sampling time, the time of 64
samples, the model's FLOPs per image, the achieved GFLOP/s and the measured peak of a large matmul.
The table is also written to benchmarks/results/train_quality_<minutes>min_<device>[_<tag>].md; ``--save`` keeps the
trained run (``peer.py --ours-checkpoint`` scores it instead of training the same model again).
"""
import argparse

import torch

import course_utils as cu
from bench_utils import (forward_flops, peak_matmul_gflops, quality_columns, reference_numbers, timed_sample,
                         train_for, write_results)
from course_utils.models import count_parameters
from course_utils.training import default_config


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="training time budget (default 3)")
    parser.add_argument("--n-samples", type=int, default=500, help="samples scored by the metric (default 500)")
    parser.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddpm", help="ddpm (the default sampler, T steps) or ddim")
    parser.add_argument("--save", default=None, help="keep the trained model as this checkpoint (for samplers.py)")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps = network evaluations, with --sampler ddim (default 25)")
    parser.add_argument("--tag", default=None, help="added to the results file's name (train_quality_3min_cpu_<tag>.md)")
    args = parser.parse_args()

    device = cu.get_device()
    config = default_config()
    model, steps_done, images_per_s = train_for(config, args.minutes, device, args.save)
    samples, sample_s = timed_sample(model, config, args.n_samples, args.sampler, args.steps, device)
    _, sample64_s = timed_sample(model, config, 64, args.sampler, args.steps, device)

    example = (torch.zeros(1, 1, config.image_size, config.image_size, device=device),
               torch.zeros(1, dtype=torch.long, device=device))
    flops_train = 3 * forward_flops(model, *example)  # forward + backward (about 2x forward) per image
    achieved = flops_train * images_per_s / 1e9
    dtype = cu.compute_dtype(device)
    peak = peak_matmul_gflops(device, dtype)
    ref = reference_numbers(args.n_samples)
    nfe = config.T if args.sampler == "ddpm" else args.steps
    row = {
        "budget": f"{args.minutes:g} min", "device": device.type, "parameters": f"{count_parameters(model) / 1e6:.2f} M",
        "steps": steps_done, "train img/s": f"{images_per_s:.0f}",
        "sampler": f"{args.sampler.upper()}-{nfe}", f"{args.n_samples} samples": f"{sample_s:.1f} s",
        "64 samples": f"{sample64_s:.1f} s", **quality_columns(samples),
        "floor": f"{ref['floor']:.2f}", "FID / floor": f"{float(quality_columns(samples)['FID']) / ref['floor']:.2f}",
    }
    notes = [
        f"Model: course_utils default_config() (unconditional U-Net, T={config.T}, {config.schedule} schedule, "
        f"batch {config.batch_size}), EMA weights.",
        f"Reference numbers for N={args.n_samples}: real-vs-real floor {ref['floor']:.2f}, pure-noise ceiling "
        f"{ref['ceiling']:.1f}; the two test halves (5,000 vs 5,000) {ref['halves']:.2f}.",
        f"Close to the machine: {flops_train / 1e6:.1f} MFLOP per training image (3x the forward pass counted by "
        f"FlopCounterMode), {achieved:.1f} GFLOP/s achieved in training; a {dtype} 2048^3 matmul peaks at "
        f"{peak:.1f} GFLOP/s on the same run: {100 * achieved / peak:.0f}% of that peak.",
    ]
    protocol = (f"{args.minutes:g} min of training time, then {args.n_samples} samples scored against the first "
                f"{cu.N_REFERENCE} Fashion-MNIST test images at 16x16 (course_utils.sample_quality).")
    name = f"train_quality_{args.minutes:g}min_{device.type}" + (f"_{args.tag}" if args.tag else "")
    write_results(name, f"Training for {args.minutes:g} minutes",
                  protocol, [row], notes)


if __name__ == "__main__":
    main()
