"""FID and wall time against the number of network evaluations (NFE), DDPM ancestral and DDIM, one checkpoint.

    flock /tmp/cpu.lock .venv/bin/python benchmarks/samplers.py                 # the committed checkpoint
    flock /tmp/cpu.lock .venv/bin/python benchmarks/samplers.py --checkpoint runs/ddpm_fashion.pt

Loads the EMA weights with course_utils.load_pretrained (by default the checkpoint that notebook 06
uses), draws ``--n-samples`` unconditional samples (null label) with each sampler from the same seed,
and scores them with course_utils.sample_quality. Rows: DDPM ancestral sampling (Algorithm 2, T
evaluations), DDIM with eta = 0 (deterministic) and eta = 1 (stochastic, strided) at fewer steps.
The table is also written to benchmarks/results/samplers_<device>.md.
"""
import argparse

import course_utils as cu
from bench_utils import quality_columns, reference_numbers, write_results
from course_utils.checkpoints import load_checkpoint
from course_utils.pretrained import load_pretrained
from course_utils.training import DiffusionConfig
from train_quality import timed_sample


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="a course checkpoint (default: what load_pretrained finds)")
    parser.add_argument("--n-samples", type=int, default=500)
    parser.add_argument("--ddim-steps", type=int, nargs="+", default=[10, 25, 50, 100])
    parser.add_argument("--no-ddpm", action="store_true", help="skip the (slow) full ancestral sampler")
    args = parser.parse_args()

    device = cu.get_device()
    if args.checkpoint:
        expected = DiffusionConfig.from_dict(load_checkpoint(args.checkpoint)["config"])
        model, config, info = load_pretrained(expected, candidates=(args.checkpoint,), device=device)
    else:
        model, config, info = load_pretrained(device=device)
    runs = [("ddim", n) for n in args.ddim_steps] + ([] if args.no_ddpm else [("ddpm", config.T)])
    rows = []
    for sampler, steps in runs:
        samples, seconds = timed_sample(model, config, args.n_samples, sampler, steps, device)
        name = "DDPM ancestral" if sampler == "ddpm" else "DDIM, eta 0"
        rows.append({"sampler": name, "NFE": steps, "wall time": f"{seconds:.1f} s",
                     "ms / image": f"{1000 * seconds / args.n_samples:.1f}", **quality_columns(samples)})
        print(rows[-1], flush=True)
    ref = reference_numbers(args.n_samples)
    notes = [f"Real-vs-real floor for N={args.n_samples}: {ref['floor']:.2f}; pure noise: {ref['ceiling']:.1f}."]
    if not args.no_ddpm:
        full = float(rows[-1]["FID"])
        notes += [f"FID of DDIM-{n} / full ancestral: {float(r['FID']) / full:.2f}"
                  for (s, n), r in zip(runs, rows) if s == "ddim"]
    protocol = (f"checkpoint trained {info.get('history', {}).get('train_seconds', 0) / 60:.1f} min "
                f"({info['step']} steps, T={config.T}, {config.schedule} schedule); {args.n_samples} unconditional "
                f"samples per sampler from one seed, scored against the first {cu.N_REFERENCE} test images.")
    write_results(f"samplers_{device.type}", "Samplers: FID and wall time against network evaluations",
                  protocol, rows, notes)


if __name__ == "__main__":
    main()
