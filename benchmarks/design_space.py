"""Notebook 11's measurements: prediction targets, loss weightings and zero terminal SNR on the course default.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/design_space.py            # every run not yet in the results
    .venv/bin/python benchmarks/design_space.py --runs noise-uniform --force # redo one run

Each run trains ``default_config()`` with the changes in RUNS for ``--images`` images (scored at each point:
500 samples, FID with ``cu.sample_quality`` against the course's reference set) and is appended to
benchmarks/results/design_space.json as soon as it ends, so an interrupted job keeps what it finished.
Diffusion runs on the cosine schedule are scored with DDIM-50 (eta 0); the zero-terminal-SNR pair (the
unscaled linear schedule, T = 250, whose alpha_bar_{T-1} is 0.08, against the same schedule rescaled by
Lin et al.'s Algorithm 1) with DPM-Solver++(2M), 25 steps, trailing spacing, which handles alpha_bar = 0; the pair
also records the mean brightness of every sample and of the data, and keeps its EMA weights in checkpoints/.
Writes design_space.md (a table) and design_space.png (FID against images).
"""
import argparse
import dataclasses
import json
import time
from datetime import date

import matplotlib
import torch

import course_utils as cu
from bench_utils import RESULTS, cpu_capability, machine, reference_numbers, sample, save_ema_weights, write_results

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ZSNR = {"schedule": "linear", "scale_to_T": False}
RUNS = {  # name: (changes to default_config(), changes to its UNetConfig)
    "noise-uniform": ({"loss_weighting": "uniform"}, {"prediction": "noise"}),
    "noise-elbo": ({"loss_weighting": "elbo"}, {"prediction": "noise"}),
    "noise-min_snr": ({"loss_weighting": "min_snr"}, {"prediction": "noise"}),
    "x0-uniform": ({"loss_weighting": "uniform"}, {"prediction": "x0"}),
    "v-uniform": ({"loss_weighting": "uniform"}, {"prediction": "v"}),
    "v-min_snr": ({"loss_weighting": "min_snr"}, {}),
    "v-snr": ({}, {}),  # the course default: L_simple's weighting with the v target
    "zsnr-off": (dict(ZSNR), {}),
    "zsnr-on": (dict(ZSNR, zero_terminal_snr=True), {}),
}
JSON = RESULTS / "design_space.json"


def config_of(name):
    changes, model_changes = RUNS[name]
    base = cu.default_config()
    return dataclasses.replace(base, model=dataclasses.replace(base.model, **model_changes), **changes)


def draw(model, config, n, device):
    """n samples by the run's scoring sampler (see the module docstring)."""
    if config.schedule == "linear":
        schedule, out = config.make_schedule(), []
        generator = torch.Generator().manual_seed(0)
        for start in range(0, n, 500):
            shape = (min(500, n - start), 1, config.image_size, config.image_size)
            out.append(cu.dpm_solver_2m_sample(model, schedule, shape, 25, spacing="trailing", generator=generator,
                                               progress=False).cpu())
        return torch.cat(out)
    return sample(model, config, n, "ddim", 50, device)


def run_one(name, points, n, device, floor):
    config = config_of(name)
    curve, samples = [], {}

    def score(step, result):
        seen = result.images_seen
        if not any(seen - config.batch_size < p <= seen for p in points):
            return
        x = draw(result.ema_model, config, n, device)
        q = cu.sample_quality(x)
        curve.append({"images": seen, "fid": round(q["fid"], 3), "ratio": round(q["fid"] / floor, 3),
                      "min_class": round(q["min_class_share"], 3)})
        samples["last"] = x
        print(f"{name}: {seen:,} images, FID {q['fid']:.2f} ({q['fid'] / floor:.2f}x floor)", flush=True)

    start = time.perf_counter()
    result = cu.train(config, n_images=points[-1], device=device, callback=score, callback_every=points[0],
                      progress=False)
    record = {"config_changes": {**RUNS[name][0], **{f"model.{k}": v for k, v in RUNS[name][1].items()}},
              "curve": curve, "train_seconds": round(result.history["train_seconds"], 1),
              "wall_seconds": round(time.perf_counter() - start, 1), "precision": result.history["precision"]}
    if name.startswith("zsnr"):
        data = cu.fashion_mnist(train=False, image_size=config.image_size).tensors[0][:n]
        record["brightness"] = {"samples": samples["last"].mean(dim=(1, 2, 3)).tolist(),
                                "data": data.mean(dim=(1, 2, 3)).tolist()}
        path = cu.REPO_ROOT / "checkpoints" / f"{name.replace('-', '_')}16.pt"
        save_ema_weights(path, config, result,
                         history={"images_seen": result.images_seen, "train_seconds": result.history["train_seconds"],
                                  "precision": result.history["precision"]})
        record["checkpoint"] = str(path.relative_to(cu.REPO_ROOT))
        write_checkpoint_json(name, record, config)
    return record


def write_checkpoint_json(name, record, config):
    """The .json beside a zero-terminal-SNR checkpoint: what it is, how it was trained, how good it is."""
    path = cu.REPO_ROOT / record["checkpoint"]
    info = {"file": path.name, "contents": "EMA weights only (key 'ema' -> 'shadow'), config as a dict; load with "
                                          "course_utils.load_pretrained(config, candidates=[path])",
            "config": config.to_dict(), "trained_by": f"benchmarks/design_space.py --runs {name}",
            "date": date.today().isoformat(), "machine": machine(), "precision": record["precision"],
            "images_seen": record["curve"][-1]["images"], "train_seconds": record["train_seconds"],
            "quality": {"protocol": "500 samples, DPM-Solver++(2M) 25 trailing steps, cu.sample_quality",
                        **{k: record["curve"][-1][k] for k in ("fid", "ratio", "min_class")}}}
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--images", type=int, nargs="+", default=[15_000, 30_000],
                        help="training images at which to score; the first must divide the others")
    parser.add_argument("--n-samples", type=int, default=500)
    parser.add_argument("--force", action="store_true", help="redo runs already in the results")
    args = parser.parse_args()
    if any(p % args.images[0] for p in args.images):
        parser.error("every --images point must be a multiple of the first")
    device = cu.get_device()
    floor = reference_numbers(args.n_samples)["floor"]
    results = json.loads(JSON.read_text()) if JSON.exists() else {"runs": {}}
    results.update({"floor": floor, "n_samples": args.n_samples, "machine": f"CPU capability {cpu_capability()}"})
    for name in args.runs:
        if name in results["runs"] and not args.force:
            print(f"{name}: already measured (use --force to redo)")
            continue
        results["runs"][name] = run_one(name, sorted(args.images), args.n_samples, device, floor)
        results["runs"] = {key: results["runs"][key] for key in RUNS if key in results["runs"]}  # RUNS' order
        JSON.write_text(json.dumps(results, indent=1) + "\n")
    report(results)


def report(results):
    rows = []
    for name, run in results["runs"].items():
        row = {"run": name, "changes": ", ".join(f"{k}={v}" for k, v in run["config_changes"].items()) or "none"}
        for point in run["curve"]:
            row[f"FID/floor at {point['images'] // 1000}k"] = f"{point['ratio']:.2f}"
        row["train s"] = f"{run['train_seconds']:.0f}"
        rows.append(row)
    write_results("design_space", "Design space: prediction target, loss weighting, zero terminal SNR",
                  "default_config() changed as listed; 500 samples, FID against the reference test images; DDIM-50 "
                  "(cosine runs) or DPM-Solver++(2M) 25 trailing steps (zsnr runs)", rows,
                  [f"floor (real vs real, N={results['n_samples']}) {results['floor']:.2f}; {results['machine']}.",
                   "Each run is one training run to the last number of images, scored on its way there: with a "
                   "learning-rate decay (the default's lr_decay='wsd') the earlier points are mid-run, before the "
                   "rate has fallen to 0.",
                   "train s: training seconds of each run; compare them only between runs made on the same machine "
                   "the same way (alone with two threads, or two at a time with one thread each)."])
    fig, ax = plt.subplots(figsize=(6.5, 3.8), dpi=150)
    for name, run in results["runs"].items():
        ax.plot([p["images"] / 1000 for p in run["curve"]], [p["ratio"] for p in run["curve"]], "o-", label=name)
    ax.set(yscale="log", xlabel="training images (thousands)", ylabel="FID / floor")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "design_space.png")


if __name__ == "__main__":
    main()
