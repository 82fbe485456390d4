"""Train a course model and write the small committed checkpoint that notebooks 06-09 fall back on.

    flock /tmp/cpu.lock .venv/bin/python benchmarks/train_default.py                # default_config()
    flock /tmp/cpu.lock .venv/bin/python benchmarks/train_default.py --conditional  # guidance_config()
    flock /tmp/cpu.lock .venv/bin/python benchmarks/train_default.py --flow         # flow_config() (notebook 10)

Trains ``--images`` training images (default ``cu.TRAIN_IMAGES``, as notebook 05) with a time cap of ``--budget``
seconds, then

writes runs/train_default[_cond|_flow].pt (full, resumable), checkpoints/ddpm_fashion16[_cond].pt or
checkpoints/flow_fashion16.pt (EMA weights only) and its .json (config, how it was trained, timings, FID), and
saves a grid of 64 samples to runs/train_default[_cond|_flow]_samples.png. ``--run runs/ddpm_fashion.pt`` exports notebook 05's finished run
instead (training resumes from that file and stops at once when it has seen its images).
"""
import argparse
import json
import time
from datetime import date
from pathlib import Path

import matplotlib
import torch

import course_utils as cu
from bench_utils import machine, mean_over_seeds, sample, save_ema_weights

matplotlib.use("Agg")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=cu.TRAIN_IMAGES, help="training images (default: as notebook 05)")
    parser.add_argument("--budget", type=float, default=900.0, help="time cap in training seconds (default 15 min)")
    parser.add_argument("--conditional", action="store_true", help="train guidance_config() (notebook 09's model)")
    parser.add_argument("--flow", action="store_true", help="train flow_config() (notebook 10's flow matching model)")
    parser.add_argument("--run", default=None, help="the resumable training file (default runs/train_default[_cond].pt)")
    args = parser.parse_args()
    if args.conditional and args.flow:
        parser.error("--conditional and --flow cannot be combined")
    suffix = "_cond" if args.conditional else "_flow" if args.flow else ""
    run = args.run or str(cu.REPO_ROOT / "runs" / f"train_default{suffix}.pt")
    out = cu.GUIDANCE_CHECKPOINT if args.conditional else cu.FLOW_CHECKPOINT if args.flow else cu.PRETRAINED_CHECKPOINT
    factory = "guidance_config" if args.conditional else "flow_config" if args.flow else "default_config"
    samples_png = cu.REPO_ROOT / "runs" / f"train_default{suffix}_samples.png"

    device = cu.get_device()
    config = getattr(cu, factory)()
    result = cu.train(config, n_images=args.images, time_budget_s=args.budget, device=device, checkpoint_path=run)
    history = result.history

    schedule = config.make_schedule()
    start = time.perf_counter()
    labels = (torch.arange(64) % 10).to(device) if args.conditional else None
    shape, generator = (64, 1, config.image_size, config.image_size), torch.Generator().manual_seed(0)
    if args.flow:  # the flow model: 50 Euler steps; the diffusion models: all T ancestral steps
        samples = cu.flow_sample(result.ema_model, shape, 50, generator=generator)
    else:
        samples = cu.p_sample_loop(result.ema_model, schedule, shape, generator=generator, y=labels)
    sample_seconds = time.perf_counter() - start
    cu.show_images(samples, nrow=10, title=f"EMA model after {result.step} steps").savefig(samples_png)

    save_ema_weights(out, config, result,
                     history={"train_seconds": history["train_seconds"], "images_seen": history["images_seen"],
                              "precision": history["precision"], "loss": history["loss"][-20:]})
    record = {
        "file": out.name,
        "contents": "EMA weights only (key 'ema' -> 'shadow'), config as a dict; load with course_utils.load_pretrained()",
        "config": config.to_dict(),
        "parameters": cu.count_parameters(result.model),
        "trained_by": f"benchmarks/train_default.py{' --conditional' if args.conditional else ' --flow' if args.flow else ''} "
                      f"(course_utils.train, {factory}(), from {Path(run).name})",
        "date": date.today().isoformat(),
        "machine": f"{machine()}, device {device}",
        "precision": history["precision"],
        "steps": result.step,
        "images_seen": history["images_seen"],
        "stopped_by": history["stopped_by"] or "already finished",
        "train_seconds": round(history["train_seconds"], 1),
        "images_per_s": round(history["images_seen"] / history["train_seconds"], 1),
        "final_loss": round(sum(history["loss"][-10:]) / len(history["loss"][-10:]), 5),
        ("sampling_seconds_64_images_50_euler_steps" if args.flow else "sampling_seconds_64_images_T_steps"):
            round(sample_seconds, 1),
        "quality": quality(result.ema_model, config),
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "config"}, indent=2))


def quality(model, config, n=500, steps=50, target_seeds=5):
    """FID etc. (cu.sample_quality) of n samples from DDIM (a flow model: Euler) with ``steps`` steps:
    unconditional, and for a class-conditional model also with class-balanced labels. A diffusion model is also
    scored by the quality target's protocol (benchmarks/images_to_target.py): DPM-Solver++(2M) with 10 steps,
    the mean FID over sampling seeds 0..target_seeds-1 and the rarest class over all of them."""
    sampler = "Euler" if config.model.prediction == "velocity" else "DDIM"
    eta = "" if sampler == "Euler" else " (eta 0)"
    out = {"protocol": f"cu.sample_quality: {n} samples, {sampler} {steps} steps{eta}, seed 0, against the first 2000 "
                       f"test images (classifier-feature FID; fid_floor = FID of {n} real test images)"}
    device = next(model.parameters()).device
    modes = [("unconditional" if config.model.num_classes is None else "null label", False)]
    if config.model.num_classes is not None:
        modes.insert(0, ("class-balanced labels", True))
    for name, balanced in modes:
        q = cu.sample_quality(sample(model, config, n, "ddim", steps, device, balanced=balanced))
        out[name] = {k: round(q[k], 3) for k in ("fid", "fid_floor", "confident_share", "class_entropy", "min_class_share")}
        if sampler == "DDIM":
            target = mean_over_seeds([cu.sample_quality(sample(model, config, n, "dpm2m", 10, device, seed=seed,
                                                               balanced=balanced)) for seed in range(target_seeds)])
            out[name]["target_protocol"] = {
                "sampler": f"DPM-Solver++(2M) 10 steps (Karras), seeds 0-{target_seeds - 1}",
                "fid": round(target["fid"], 3), "fid_over_floor": round(target["fid"] / q["fid_floor"], 3),
                "min_class_share": round(target["min_class_share"], 3)}
    return out


if __name__ == "__main__":
    main()
