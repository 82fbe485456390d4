"""FID and wall time against the number of network evaluations (NFE), DDPM ancestral and DDIM, one checkpoint.

    flock /tmp/cpu.lock .venv/bin/python benchmarks/samplers.py                 # the committed checkpoint
    flock /tmp/cpu.lock .venv/bin/python benchmarks/samplers.py --checkpoint runs/ddpm_fashion.pt

Loads the EMA weights with course_utils.load_pretrained (by default the checkpoint that notebook 06
uses), draws ``--n-samples`` samples with each sampler from the same seed (a class-conditional model,
such as ``guidance_config()``'s, with the null label, with class-balanced labels, or both: ``--labels``),
and scores them with course_utils.sample_quality. Rows: DDPM ancestral sampling (Algorithm 2, T
evaluations) and deterministic DDIM (eta = 0) at ``--ddim-steps`` steps.
The table is also written to benchmarks/results/samplers_<device>.md.
"""
import argparse

import course_utils as cu
from bench_utils import load_model, quality_columns, reference_numbers, timed_sample, write_results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="a course checkpoint (default: what load_pretrained finds)")
    parser.add_argument("--n-samples", type=int, default=500)
    parser.add_argument("--ddim-steps", type=int, nargs="+", default=[10, 25, 50, 100])
    parser.add_argument("--no-ddpm", action="store_true", help="skip the (slow) full ancestral sampler")
    parser.add_argument("--labels", choices=["null", "balanced", "both"], default="both",
                        help="a class-conditional model: sample with the null label, class-balanced labels, or both")
    args = parser.parse_args()

    device = cu.get_device()
    model, config, info, _ = load_model(args.checkpoint, device)
    runs = [("ddim", n) for n in args.ddim_steps] + ([] if args.no_ddpm else [("ddpm", config.T)])
    label_modes = {"null": [False], "balanced": [True], "both": [False, True]}[args.labels]
    if config.model.num_classes is None:
        label_modes = [False]
    ref = reference_numbers(args.n_samples)
    rows, notes = [], [f"Real-vs-real floor for N={args.n_samples}: {ref['floor']:.2f}; pure noise: {ref['ceiling']:.1f}."]
    for balanced in label_modes:
        labels = ("class-balanced labels" if balanced else "unconditional" if config.model.num_classes is None
                  else "null label (unconditional)")
        for sampler, steps in runs:
            samples, seconds = timed_sample(model, config, args.n_samples, sampler, steps, device, balanced)
            name = "DDPM ancestral" if sampler == "ddpm" else "DDIM, eta 0"
            quality = quality_columns(samples)
            rows.append({"labels": labels, "sampler": name, "NFE": steps, "wall time": f"{seconds:.1f} s",
                         "ms / image": f"{1000 * seconds / args.n_samples:.1f}", **quality,
                         "FID / floor": f"{float(quality['FID']) / ref['floor']:.2f}"})
            print(rows[-1], flush=True)
        if not args.no_ddpm:
            mine = [r for r in rows if r["labels"] == labels]
            full = float(mine[-1]["FID"])
            notes += [f"{labels}: FID of DDIM-{r['NFE']} / full ancestral: {float(r['FID']) / full:.2f}"
                      for r in mine[:-1]]
    protocol = (f"checkpoint trained {info.get('history', {}).get('train_seconds', 0) / 60:.1f} min "
                f"({info['step']} steps, T={config.T}, {config.schedule} schedule); {args.n_samples} "
                f"samples per sampler and label mode from one seed, scored against the first {cu.N_REFERENCE} test images.")
    write_results(f"samplers_{device.type}", "Samplers: FID and wall time against network evaluations",
                  protocol, rows, notes)


if __name__ == "__main__":
    main()
