"""Side by side with a peer library, denoising-diffusion-pytorch: same data, resolution, T, budget, NFE and metric.

    flock /tmp/cpu.lock .venv/bin/python benchmarks/peer.py --minutes 3
    flock /tmp/cpu.lock .venv/bin/python benchmarks/peer.py --images 25000    # the same images instead of time

Install the peer without letting pip replace the project's torch (it is NOT in requirements.txt):

    .venv/bin/pip freeze | grep -E '^(torch|torchvision|numpy|scipy|pillow|tqdm)==' > /tmp/constraints.txt
    .venv/bin/pip install -c /tmp/constraints.txt einops ema-pytorch accelerate
    .venv/bin/pip install --no-deps denoising-diffusion-pytorch

Both models train for ``--minutes`` of training-step time (or on ``--images`` training images each) on the
60,000 Fashion-MNIST training images at 16x16 (no labels: ours is the course default, default_config()), with the T and the
batch size of the course default, then draw ``--n-samples`` samples with DDIM (eta = 0) in ``--steps``
network evaluations, scored by course_utils.sample_quality. The peer keeps its own defaults otherwise:
Unet(dim=32, dim_mults=(1, 2, 4, 8)) (dim matches our base width; the library has no default dim),
GaussianDiffusion (sigmoid schedule, v-prediction), float32, and its Trainer's optimiser settings:
Adam(lr=1e-4, betas=(0.9, 0.99)), gradient norm clipped at 1, EMA(beta=0.995, update_every=10).
"""
import argparse
import sys
import time

import torch

import course_utils as cu
from bench_utils import quality_columns, reference_numbers, sync, write_results
from course_utils.models import count_parameters
from course_utils.training import default_config
from bench_utils import timed_sample, train_for

INSTALL = __doc__.split("(it is NOT in requirements.txt):")[1].split("Both models")[0]


def train_peer(images, T, steps, minutes, batch_size, device, seed=0, n_images=None):
    """The peer's Unet + GaussianDiffusion trained as its Trainer would, for ``minutes`` of step time or, when
    ``minutes`` is None, ``n_images`` training images; returns (EMA model, online model, parameters, steps, images/s)."""
    from denoising_diffusion_pytorch import GaussianDiffusion, Unet
    from ema_pytorch import EMA

    torch.manual_seed(seed)
    unet = Unet(dim=32, channels=1)
    diffusion = GaussianDiffusion(unet, image_size=images.shape[-1], timesteps=T, sampling_timesteps=steps).to(device)
    optimizer = torch.optim.Adam(diffusion.parameters(), lr=1e-4, betas=(0.9, 0.99))
    ema = EMA(diffusion, beta=0.995, update_every=10).to(device)
    data = (images + 1) / 2  # the peer normalises [0, 1] -> [-1, 1] itself (auto_normalize=True)
    generator = torch.Generator().manual_seed(seed)
    step, seconds = 0, 0.0
    while (seconds < 60 * minutes) if minutes is not None else (step * batch_size < n_images):
        start = time.perf_counter()
        x = data[torch.randint(0, len(data), (batch_size,), generator=generator)].to(device)
        loss = diffusion(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(diffusion.parameters(), 1.0)
        optimizer.step()
        ema.update()
        sync(device)
        seconds += time.perf_counter() - start
        step += 1
    return ema.ema_model.eval(), diffusion.eval(), count_parameters(unet), step, step * batch_size / seconds


def load_run(path, config, minutes, device):
    """Our model from a training run saved by ``train_quality.py --save`` with the same config and budget;
    returns (EMA model, steps, images/s) like ``train_for``."""
    ckpt = cu.load_checkpoint(path, expected_config=config, map_location="cpu")
    seconds = ckpt["history"]["train_seconds"]
    if not 60 * minutes <= seconds < 60 * minutes + 30:
        raise ValueError(f"{path} was trained for {seconds:.0f} s, not the {60 * minutes:.0f} s of --minutes {minutes:g}")
    model = cu.UNet(config.model)
    model.load_state_dict(ckpt["ema"]["shadow"])
    return model.to(device).eval(), ckpt["step"], ckpt["step"] * config.batch_size / seconds


def sample_peer(diffusion, n, device, batch_size=500):
    sync(device)
    start = time.perf_counter()
    out = [diffusion.sample(batch_size=min(batch_size, n - i)).cpu() for i in range(0, n, batch_size)]
    sync(device)
    return torch.cat(out) * 2 - 1, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--minutes", type=float, default=None, help="training time budget per model (default 3)")
    limit.add_argument("--images", type=int, default=None, help="train each model on this many images instead")
    parser.add_argument("--n-samples", type=int, default=500)
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps = network evaluations (default 25)")
    parser.add_argument("--ours-checkpoint", default=None,
                        help="score our model from this run (train_quality.py --save, same --minutes) instead of training it again")
    args = parser.parse_args()
    if args.images is None and args.minutes is None:
        args.minutes = 3.0
    if args.ours_checkpoint and args.images:
        parser.error("--ours-checkpoint goes with --minutes (a train_quality.py run), not with --images")
    try:
        import denoising_diffusion_pytorch  # noqa: F401
    except ImportError:
        sys.exit("benchmarks/peer.py needs denoising-diffusion-pytorch, which is not in requirements.txt. "
                 "Install it without touching torch:\n" + INSTALL)

    device = cu.get_device()
    config = default_config()
    if args.ours_checkpoint:
        model, steps_ours, ips_ours = load_run(args.ours_checkpoint, config, args.minutes, device)
    else:
        model, steps_ours, ips_ours = train_for(config, args.minutes, device, n_images=args.images)
    samples_ours, sample_s_ours = timed_sample(model, config, args.n_samples, "ddim", args.steps, device)
    images = cu.fashion_mnist(train=True, image_size=config.image_size).tensors[0]
    peer_ema, peer_online, params_peer, steps_peer, ips_peer = train_peer(images, config.T, args.steps, args.minutes,
                                                                         config.batch_size, device, n_images=args.images)
    peer_rows, peer_seconds = [], []
    for name, peer in (("denoising-diffusion-pytorch (EMA)", peer_ema),
                       ("denoising-diffusion-pytorch (online)", peer_online)):
        samples_peer, sample_s_peer = sample_peer(peer, args.n_samples, device)
        peer_seconds.append(sample_s_peer)
        peer_rows.append({"model": name, "parameters": f"{params_peer / 1e6:.2f} M", "steps": steps_peer,
                          "train img/s": f"{ips_peer:.0f}", "sampler": f"DDIM-{args.steps}",
                          "sampling": f"{sample_s_peer:.1f} s", **quality_columns(samples_peer)})
    better = min(range(len(peer_rows)), key=lambda i: float(peer_rows[i]["FID"]))  # the peer's better weights
    theirs = peer_rows[better]

    ours = {"model": "course_utils (ours)", "parameters": f"{count_parameters(model) / 1e6:.2f} M",
            "steps": steps_ours, "train img/s": f"{ips_ours:.0f}", "sampler": f"DDIM-{args.steps}",
            "sampling": f"{sample_s_ours:.1f} s", **quality_columns(samples_ours)}
    ratio = {"model": "ratio ours / peer", "parameters": "", "steps": "",
             "train img/s": f"{ips_ours / ips_peer:.2f}", "sampler": "",
             "sampling": f"{sample_s_ours / peer_seconds[better]:.2f}",
             "FID": f"{float(ours['FID']) / float(theirs['FID']):.2f}", "confident": "", "class entropy": "",
             "min class": ""}
    ref = reference_numbers(args.n_samples)
    if args.images is None:
        budget, name, title = f"{args.minutes:g} min of training-step time", f"peer_{args.minutes:g}min", f"{args.minutes:g} minutes"
    else:
        budget, name, title = (f"{args.images:,} training images", f"peer_{args.images // 1000}k_images",
                               f"{args.images:,} training images each")
    protocol = (f"{budget} each, batch {config.batch_size}, T={config.T}, 16x16, "
                f"{args.n_samples} DDIM samples (eta 0, {args.steps} network evaluations) scored against the first "
                f"{cu.N_REFERENCE} test images (course_utils.sample_quality).")
    notes = [f"Real-vs-real floor for N={args.n_samples}: {ref['floor']:.2f}; pure noise: {ref['ceiling']:.1f}.",
             f"Ours: default_config() ({config.schedule} schedule, {config.model.prediction}-prediction, "
             f"{config.loss_weighting} loss weighting, {str(cu.compute_dtype(device)).replace('torch.', '')})"
             + (f", the run saved by train_quality.py --save ({args.ours_checkpoint})" if args.ours_checkpoint else "")
             + ". Peer: its defaults (sigmoid schedule, v-prediction, float32), "
             "Unet(dim=32), Adam 1e-4, EMA 0.995 every 10 steps (its Trainer's defaults: the EMA starts after "
             "step 100, so after a short budget it holds few updates; the online weights are scored too, and the "
             "ratio row uses the peer's better row)."]
    write_results(f"{name}_{device.type}", f"Ours against denoising-diffusion-pytorch, {title}", protocol,
                  [ours, *peer_rows, ratio], notes)


if __name__ == "__main__":
    main()
