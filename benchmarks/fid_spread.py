"""How much FID at N = 500 moves with the sampling seed alone, for a few samplers of one checkpoint.

    flock /tmp/cpu.lock .venv/bin/python benchmarks/fid_spread.py                       # the committed checkpoint
    flock /tmp/cpu.lock .venv/bin/python benchmarks/fid_spread.py --checkpoint runs/bench_images_default.pt

Every table of this project scores 500 samples drawn from one seed. This script draws them from ``--seeds``
seeds with each sampler and prints FID / floor per seed, the mean and the spread (max - min), so that a
difference between two runs can be read against the difference between two seeds of the same run.
Samplers: DDPM with all T ancestral steps (notebooks 05-06); DDIM with 50 steps (eta = 0, notebook 07);
DPM-Solver++(2M) with 10 and 15 network calls on Karras et al.'s noise levels (notebook 11's best rows); and
DPM-Solver++(2M) with 25 calls on "trailing" steps (Lin et al. 2023), which start at T - 1 and end at step
T / 25 - 1, where the last call's x_0 prediction is the sample. Written to benchmarks/results/fid_spread_<device>.md.
"""
import argparse

import course_utils as cu
from bench_utils import load_model, reference_numbers, sample, write_results


def samplers(T):
    """name -> (bench_utils.sample's sampler, steps, spacing)."""
    return {
        f"DDPM-{T}": ("ddpm", None, None),
        "DDIM-50": ("ddim", 50, None),
        "DPM-Solver++(2M)-10, Karras": ("dpm2m", 10, "karras"),
        "DPM-Solver++(2M)-15, Karras": ("dpm2m", 15, "karras"),
        "DPM-Solver++(2M)-25, trailing": ("dpm2m", 25, "trailing"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="a course checkpoint (default: what load_pretrained finds)")
    parser.add_argument("--seeds", type=int, default=5, help="sampling seeds 0 .. seeds-1 (default 5)")
    parser.add_argument("--n-samples", type=int, default=500)
    args = parser.parse_args()

    device = cu.get_device()
    model, config, info, path = load_model(args.checkpoint, device)
    floor = reference_numbers(args.n_samples)["floor"]
    rows = []
    for name, (sampler, steps, spacing) in samplers(config.T).items():
        ratios = [cu.sample_quality(sample(model, config, args.n_samples, sampler, steps, device, seed=seed,
                                           batch_size=args.n_samples, spacing=spacing))["fid"] / floor
                  for seed in range(args.seeds)]
        rows.append({"sampler": name, **{f"seed {s}": f"{r:.2f}" for s, r in enumerate(ratios)},
                     "mean": f"{sum(ratios) / len(ratios):.2f}", "max - min": f"{max(ratios) - min(ratios):.2f}"})
        print(rows[-1], flush=True)
    protocol = (f"checkpoint {path}, {info['step']} steps ({info['step'] * config.batch_size:,} training images), "
                f"T={config.T}; {args.n_samples} samples per sampler and seed, FID / floor (floor {floor:.2f}) against "
                f"the first {cu.N_REFERENCE} test images.")
    write_results(f"fid_spread_{device.type}", "FID / floor across sampling seeds", protocol, rows)


if __name__ == "__main__":
    main()
