"""FID against training images: how many images the course default needs to reach the quality target.

    flock /tmp/cpu.lock .venv/bin/python benchmarks/images_to_target.py                 # the default, up to 300k
    .venv/bin/python benchmarks/images_to_target.py --set batch_size=64 --images 50000 100000 --tag b64
    .venv/bin/python benchmarks/images_to_target.py --sampler dpm2m --steps 10 --seeds 5 --tag default_dpm10

Trains ``default_config()`` (changed by ``--set field=value``, ``--set model.field=value``) once, and at each
number of training images in ``--images`` scores the EMA weights (with a learning-rate decay, ``lr_decay`` other
than "none", which ends at the run's end, one run per number of images, each scored at its end; the runs
together cost the sum of the numbers) with the course's protocol: 500 samples
from the course's default sampler (``--sampler ddpm``: all T ancestral steps, as notebooks 05 and 06 sample;
``--sampler ddim``: DDIM with ``--steps`` steps, eta = 0; ``--sampler dpm2m``: DPM-Solver++(2M) with ``--steps``
network calls on Karras et al.'s noise levels, notebook 11's best sampler), FID on the classifier's features against
the 2,000 reference test images (``course_utils.sample_quality``). One seed of 500 samples moves by several tenths
of the floor; with ``--seeds K`` each point is scored with sampling seeds 0..K-1 and the FID is their mean.
Target: FID at most 2x the real-vs-real floor, every class at least 5%.
With ``--x0-at K [K ...]`` (ddpm only) it also scores, from the same trajectories, the network's prediction of
x_0 at step K (what a sampler that stops at step K and returns that prediction would give): it shows how much
the last K steps add to, or take from, the samples.
Prints a table, writes it to benchmarks/results/images_to_target_<tag>.md, the curve to a .json beside it
and a plot (FID against images, the target line) to a .png.
"""
import argparse
import dataclasses
import json
import time
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import course_utils as cu  # noqa: E402
from bench_utils import RESULTS, cpu_capability, reference_numbers, write_results  # noqa: E402
from bench_utils import mean_over_seeds, sample  # noqa: E402
from course_utils.samplers import p_sample_loop  # noqa: E402

TARGET_RATIO, MIN_CLASS = 2.0, 0.05


def parse_value(text, current):
    """``text`` converted to the type of the field's current value (tuples as comma lists, None as 'none')."""
    if text.lower() == "none":
        return None
    if isinstance(current, bool):
        return text.lower() in ("1", "true", "yes")
    if isinstance(current, tuple):
        return tuple(int(v) for v in text.split(","))
    if current is None:
        return int(text)
    return type(current)(text)


def config_from_args(pairs):
    """default_config() with ``field=value`` and ``model.field=value`` changes applied."""
    config = cu.default_config()
    model_changes, changes = {}, {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        if key.startswith("model."):
            name = key[len("model."):]
            model_changes[name] = parse_value(value, getattr(config.model, name))
        else:
            changes[key] = parse_value(value, getattr(config, key))
    model = dataclasses.replace(config.model, **model_changes)
    return dataclasses.replace(config, model=model, **changes)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, nargs="+", default=[25_000, 50_000, 100_000, 150_000, 300_000],
                        help="numbers of training images at which to score (multiples of 25,000)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="change a field of default_config(), e.g. batch_size=64 or model.base_channels=16")
    parser.add_argument("--tag", default="default", help="name of the results files")
    parser.add_argument("--n-samples", type=int, default=500, help="samples per FID (protocol: 500)")
    parser.add_argument("--sampler", choices=["ddpm", "ddim", "dpm2m"], default="ddpm",
                        help="ddpm (all T ancestral steps, the course's default sampler), ddim or dpm2m "
                             "(DPM-Solver++(2M), Karras noise levels)")
    parser.add_argument("--steps", type=int, default=50,
                        help="network calls for --sampler ddim or dpm2m (default 50)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="score each point with sampling seeds 0..SEEDS-1; FID / floor is their mean")
    parser.add_argument("--x0-at", type=int, nargs="+", default=[], metavar="K",
                        help="with --sampler ddpm: also score the x_0 prediction at these steps of the same trajectories")
    parser.add_argument("--save", default=None, help="keep the trained run as this resumable checkpoint")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if any(n % 25_000 for n in args.images):
        parser.error("--images must be multiples of 25,000 (the scoring callback runs every 25,000 images)")
    if args.x0_at and args.sampler != "ddpm":
        parser.error("--x0-at reads the ancestral (ddpm) trajectory; it cannot be used with --sampler ddim or dpm2m")

    device = cu.get_device()
    config = config_from_args(args.set)
    if args.save:
        Path(args.save).unlink(missing_ok=True)  # a fresh run: train() would resume from an old file
    points, rows, curve = sorted(args.images), [], []
    floor = reference_numbers(args.n_samples)["floor"]

    def score(step, result):
        seen = result.images_seen
        if not any(seen - config.batch_size < p <= seen for p in points):
            return  # score at the first step that reaches each point
        start = time.perf_counter()
        x0_at = {}
        if args.x0_at:
            samples, x0_at = ddpm_with_x0(result.ema_model, config, args.n_samples, args.x0_at)
        qs = [cu.sample_quality(samples if args.x0_at and seed == 0 else
                                sample(result.ema_model, config, args.n_samples, args.sampler, args.steps, device,
                                       seed=seed)) for seed in range(args.seeds)]
        q = mean_over_seeds(qs)
        hist = result.history
        rows.append({"images": f"{seen:,}", "steps": step, "train time": f"{hist['train_seconds'] / 60:.1f} min",
                     "train img/s": f"{seen / hist['train_seconds']:.0f}", "FID": f"{q['fid']:.2f}",
                     "FID / floor": f"{q['fid'] / floor:.2f}", "min class": f"{q['min_class_share']:.3f}",
                     "target met": "yes" if q["fid"] <= TARGET_RATIO * floor and q["min_class_share"] >= MIN_CLASS
                     else "no"})
        if args.seeds > 1:
            rows[-1]["FID / floor per seed"] = " / ".join(f"{p['fid'] / floor:.2f}" for p in qs)
        x0_ratios = {k: cu.sample_quality(x0)["fid"] / floor for k, x0 in x0_at.items()}
        rows[-1].update({f"x_0 at step {k}": f"{r:.2f}" for k, r in x0_ratios.items()})
        curve.append({"images": seen, "fid": q["fid"], "ratio": q["fid"] / floor, "min_class": q["min_class_share"],
                      "train_seconds": hist["train_seconds"], "x0_at": x0_ratios,
                      "ratio_per_seed": [p["fid"] / floor for p in qs]})
        print(" | ".join(f"{k} {v}" for k, v in rows[-1].items()), f"(scored in {time.perf_counter() - start:.0f} s)",
              flush=True)

    one_run = config.lr_decay == "none"  # else the rate decays to 0 at the run's end: one run per point
    if one_run:  # scored as it passes each point
        result = cu.train(config, n_images=points[-1], device=device, callback=score, callback_every=25_000,
                          progress=False, checkpoint_path=args.save, checkpoint_every_s=1e9)
    else:  # each point a run of its own, scored at its end
        for point in points:
            keep = args.save if point == points[-1] else None
            result = cu.train(config, n_images=point, device=device, progress=False, checkpoint_path=keep,
                              checkpoint_every_s=1e9)
            score(result.step, result)
    precision = result.history["precision"]
    name = f"images_to_target_{args.tag}"
    changes = ", ".join(args.set) or "none"
    notes = [f"Config: default_config() with changes: {changes}; {cu.count_parameters(result.model) / 1e6:.2f}M "
             f"parameters, T={config.T}, batch {config.batch_size}, loss weighting {config.loss_weighting}.",
             f"Precision {precision}, CPU capability {cpu_capability()}; floor (real vs real, N={args.n_samples}) "
             f"{floor:.2f}; target FID <= {TARGET_RATIO * floor:.2f} with every class >= {MIN_CLASS:.0%}."]
    sampler = {"ddpm": f"DDPM-{config.T}", "ddim": f"DDIM-{args.steps}",
               "dpm2m": f"DPM-Solver++(2M)-{args.steps} (Karras)"}[args.sampler]
    seeds = f" with each of the sampling seeds 0-{args.seeds - 1} (FID: their mean, min class: the lowest)" \
        if args.seeds > 1 else ""
    runs = ("train once, score the EMA weights at each image count" if one_run else
            "train one run per image count (its rate decays to 0 at its end), score its EMA weights at its end")
    protocol = (f"{runs}: {args.n_samples} {sampler} samples{seeds} "
                f"against the first {cu.N_REFERENCE} Fashion-MNIST test images at 16x16 (course_utils.sample_quality).")
    write_results(name, f"FID against training images ({args.tag})", protocol, rows, notes)
    (RESULTS / f"{name}.json").write_text(json.dumps(
        {"tag": args.tag, "changes": args.set, "precision": precision, "floor": floor, "curve": curve}, indent=1) + "\n")
    plot_curves([RESULTS / f"{name}.json"], RESULTS / f"{name}.png")


def ddpm_with_x0(model, config, n, steps):
    """(n samples of all T ancestral steps, {k: the x_0 prediction at step k of the same trajectories}); for n up to
    500 (``bench_utils.sample``'s batch) drawn with the same seed and noise as ``sample(..., "ddpm", ...)``."""
    if not all(0 <= k < config.T for k in steps):
        raise ValueError(f"--x0-at steps must lie in 0..{config.T - 1}, got {steps}")
    shape = (n, 1, config.image_size, config.image_size)
    x, trajectory = p_sample_loop(model, config.make_schedule(), shape, generator=torch.Generator().manual_seed(0),
                                  progress=False, return_trajectory_every=1)
    return x.cpu(), {k: trajectory["x_0_pred"][trajectory["t"].index(k)] for k in steps}


def plot_curves(paths, out, labels=None):
    """FID / floor against training images for each results .json in ``paths``, with the target line."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8), dpi=150)
    for k, path in enumerate(paths):
        run = json.loads(path.read_text())
        label = labels[k] if labels else run["tag"]
        ax.plot([p["images"] / 1000 for p in run["curve"]], [p["ratio"] for p in run["curve"]], "o-", label=label)
    ax.axhline(TARGET_RATIO, color="k", ls="--", lw=1, label="target (2x floor)")
    ax.set(xscale="log", yscale="log", xlabel="training images (thousands)", ylabel="FID / floor")
    ticks = matplotlib.ticker
    ax.xaxis.set_major_locator(ticks.FixedLocator([25, 50, 100, 150, 200, 300]))
    ax.yaxis.set_major_locator(ticks.FixedLocator([2, 3, 4, 6, 10, 15, 20, 30]))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(ticks.ScalarFormatter())
        axis.set_minor_locator(ticks.NullLocator())
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    print(f"plot written to {out}")


if __name__ == "__main__":
    main()
