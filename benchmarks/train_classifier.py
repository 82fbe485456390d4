"""Train the Fashion-MNIST classifier whose features the FID metric uses (course_utils/metrics.py).

    flock /tmp/cpu.lock .venv/bin/python benchmarks/train_classifier.py            # ~3 CPU-minutes on 2 cores

Trains ``FashionClassifier`` on the 60,000 training images at 16x16 (the resolution the course
generates at), with random horizontal flips and 1-pixel shifts, AdamW and a one-cycle learning rate;
then writes checkpoints/classifier16.pt (weights only, load with torch.load(weights_only=True)) and
checkpoints/classifier16.json (architecture, test accuracy, date, how it was trained).
"""
import argparse
import json
import platform
import sys
import time
from datetime import date

import torch
import torch.nn.functional as F

import course_utils as cu
from course_utils.metrics import CLASSIFIER_PATH, FashionClassifier


def augment(x):
    """Random horizontal flip and a random shift of up to 1 pixel (edge padding), per image [B, 1, S, S]."""
    flip = torch.rand(x.shape[0]) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    s = x.shape[-1]
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    dx, dy = torch.randint(0, 3, (2,)).tolist()  # one shift per batch keeps it cheap
    return padded[..., dy:dy + s, dx:dx + s]


@torch.no_grad()
def accuracy(model, images, labels):
    model.eval()
    pred = torch.cat([model(chunk).argmax(1) for chunk in images.split(2000)])
    return float((pred == labels).float().mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cu.seed_everything(args.seed)
    config = {"image_size": 16, "width": 24, "n_features": 128, "n_classes": 10}
    train_x, train_y = cu.fashion_mnist(train=True, image_size=16).tensors
    test_x, test_y = cu.fashion_mnist(train=False, image_size=16).tensors
    model = FashionClassifier(**config)
    steps_per_epoch = len(train_x) // args.batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.epochs * steps_per_epoch)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_x))
        for i in range(steps_per_epoch):
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            loss = F.cross_entropy(model(augment(train_x[idx])), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f}, test accuracy "
              f"{accuracy(model, test_x, test_y):.4f}, {time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start
    test_accuracy = accuracy(model, test_x, test_y)
    CLASSIFIER_PATH.parent.mkdir(exist_ok=True)
    torch.save(model.state_dict(), CLASSIFIER_PATH)
    info = {
        "model": config,
        "parameters": sum(p.numel() for p in model.parameters()),
        "test_accuracy": round(test_accuracy, 4),
        "date": date.today().isoformat(),
        "trained_by": "benchmarks/train_classifier.py " + " ".join(sys.argv[1:]),
        "training": {**vars(args), "optimizer": "AdamW(weight_decay=0.05) + OneCycleLR",
                     "loss": "cross-entropy", "augmentation": "h-flip, 1-pixel shift",
                     "data": "Fashion-MNIST train split (60,000) at 16x16, antialiased bilinear resize, [-1, 1]",
                     "seconds": round(seconds), "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
                     "torch": torch.__version__},
        "features": "penultimate layer, 128 values before its ReLU (FashionClassifier.features)",
    }
    CLASSIFIER_PATH.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"test accuracy {test_accuracy:.4f}; wrote {CLASSIFIER_PATH} and its .json ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
