"""Train the course's default model and write the small committed checkpoint notebooks 06-09 fall back on.

    flock /tmp/cpu.lock .venv/bin/python benchmarks/train_default.py --budget 780

writes runs/train_default.pt (full, resumable), checkpoints/ddpm_fashion16.pt (EMA weights only)
and checkpoints/ddpm_fashion16.json (config, how it was trained, timings, FID), and saves a grid of
64 samples to runs/train_default_samples.png.
"""
import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import matplotlib
import torch

import course_utils as cu

matplotlib.use("Agg")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=780.0, help="training wall-clock seconds (default 13 min)")
    parser.add_argument("--run", default=str(cu.REPO_ROOT / "runs" / "train_default.pt"))
    parser.add_argument("--out", default=str(cu.PRETRAINED_CHECKPOINT))
    parser.add_argument("--samples", default=str(cu.REPO_ROOT / "runs" / "train_default_samples.png"))
    args = parser.parse_args()

    device = cu.get_device()
    config = cu.default_config()
    result = cu.train(config, time_budget_s=args.budget, device=device, checkpoint_path=args.run)
    history = result.history

    schedule = config.make_schedule()
    start = time.perf_counter()
    labels = torch.arange(64) % 10
    samples = cu.p_sample_loop(result.ema_model, schedule, (64, 1, config.image_size, config.image_size),
                               generator=torch.Generator().manual_seed(0), y=labels.to(device))
    sample_seconds = time.perf_counter() - start
    cu.show_images(samples, nrow=10, title=f"EMA model after {result.step} steps").savefig(args.samples)

    out = Path(args.out)
    cu.save_checkpoint(out, config, result.step, ema=_EmaWeights(result.ema_model),
                       history={"train_seconds": history["train_seconds"], "loss": history["loss"][-20:]})
    record = {
        "file": out.name,
        "contents": "EMA weights only (key 'ema' -> 'shadow'), config as a dict; load with course_utils.load_pretrained()",
        "config": config.to_dict(),
        "parameters": cu.count_parameters(result.model),
        "trained_by": "benchmarks/train_default.py (course_utils.train, default_config())",
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}, device {device}",
        "steps": result.step,
        "images_seen": result.step * config.batch_size,
        "train_seconds": round(history["train_seconds"], 1),
        "images_per_s": round(result.step * config.batch_size / history["train_seconds"], 1),
        "final_loss": round(sum(history["loss"][-10:]) / len(history["loss"][-10:]), 5),
        "sampling_seconds_64_images_T_steps": round(sample_seconds, 1),
        "quality": quality(result.ema_model, schedule, config),
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "config"}, indent=2))


def quality(model, schedule, config, n=500, steps=50):
    """FID etc. (cu.sample_quality) of n samples from DDIM with ``steps`` steps, with class-balanced and null labels."""
    out = {"protocol": f"cu.sample_quality: {n} samples, DDIM {steps} steps (eta 0), seed 0, against the first 2000 "
                       f"test images (classifier-feature FID; fid_floor = FID of {n} real test images)"}
    device = next(model.parameters()).device
    for name, y in [("class-balanced labels", torch.arange(n, device=device) % 10), ("null label", None)]:
        x = cu.ddim_sample_loop(model, schedule, (n, 1, config.image_size, config.image_size), n_steps=steps,
                                generator=torch.Generator().manual_seed(0), y=y, progress=False)
        q = cu.sample_quality(x.cpu())
        out[name] = {k: round(q[k], 3) for k in ("fid", "fid_floor", "confident_share", "class_entropy", "min_class_share")}
    return out


class _EmaWeights:
    """Adapter so save_checkpoint stores the EMA model's weights under 'ema' like a training run does."""

    def __init__(self, model):
        self.model = model

    def state_dict(self):
        return {"decay": None, "num_updates": None, "shadow": self.model.state_dict()}


if __name__ == "__main__":
    main()
