"""Measure training images/s and sampling cost of candidate U-Nets on this machine (benchmarks/DEFAULTS.md).

Run under the CPU lock on a shared machine: flock /tmp/cpu.lock .venv/bin/python benchmarks/unet_speed.py
``--tuning`` measures the course default instead under cheap settings often suggested for CPU training: bf16 autocast or
not, channels-last memory format or not, and the number of torch threads.
"""
import argparse
import time

import torch

import course_utils as cu


def measure(config, device, autocast, steps=10, batch_size=128, channels_last=False):
    """(train images/s, ms per forward of 64 images) for UNet(config) with or without bf16 autocast and
    the channels-last memory format."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = cu.UNet(config).to(device, memory_format=memory_format)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch_size, 1, config.image_size, config.image_size, device=device)
    x = x.contiguous(memory_format=memory_format)
    t = torch.randint(0, 500, (batch_size,), device=device)

    def train_step():
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
            noise_pred = model(x, t)
        loss = (noise_pred.float() - x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        train_step()
    start = time.perf_counter()
    for _ in range(steps):
        train_step()
    images_per_s = steps * batch_size / (time.perf_counter() - start)
    model.eval()
    with torch.inference_mode(), torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
        for _ in range(3):
            model(x[:64], t[:64])
        start = time.perf_counter()
        for _ in range(20):
            model(x[:64], t[:64])
    return images_per_s, (time.perf_counter() - start) / 20 * 1000


def tuning(device, steps):
    """The default U-Net under bf16 autocast or not, channels-last or not, 1 thread or all of them."""
    config = cu.default_config().model
    print("| threads | autocast | memory format | train images/s | ms / forward of 64 |")
    print("| --- | --- | --- | --- | --- |")
    all_threads = torch.get_num_threads()
    for threads in sorted({1, all_threads}):
        torch.set_num_threads(threads)
        for autocast in (True, False):
            for channels_last in (False, True):
                images_per_s, ms = measure(config, device, autocast, steps, channels_last=channels_last)
                print(f"| {threads} | {'bf16' if autocast else 'fp32'} | {'channels-last' if channels_last else 'contiguous'} "
                      f"| {images_per_s:.0f} | {ms:.1f} |", flush=True)
    torch.set_num_threads(all_threads)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--tuning", action="store_true", help="bf16 / channels-last / threads for the default U-Net")
    args = parser.parse_args()
    device = cu.get_device()
    if args.tuning:
        return tuning(device, args.steps)
    candidates = [
        dict(image_size=16, base_channels=32, num_res_blocks=1),
        dict(image_size=16, base_channels=32, num_res_blocks=2),
        dict(image_size=16, base_channels=48, num_res_blocks=1),
        dict(image_size=16, base_channels=64, num_res_blocks=1),
        dict(image_size=16, base_channels=32, num_res_blocks=1, attention=False),
        dict(image_size=28, base_channels=32, num_res_blocks=1),
    ]
    print("| image size | base | res blocks | attention | params | autocast | train images/s | ms / forward of 64 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for kw in candidates:
        config = cu.UNetConfig(num_classes=10, **kw)
        for autocast in (True, False):
            images_per_s, ms = measure(config, device, autocast, steps=args.steps)
            print(f"| {config.image_size} | {config.base_channels} | {config.num_res_blocks} | {config.attention} | "
                  f"{cu.count_parameters(cu.UNet(config)) / 1e6:.2f}M | {'bf16' if autocast else 'fp32'} | "
                  f"{images_per_s:.0f} | {ms:.1f} |", flush=True)


if __name__ == "__main__":
    main()
