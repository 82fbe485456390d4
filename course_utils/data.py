"""Fashion-MNIST at a chosen resolution, scaled to [-1, 1] (notebook 00).

Where the files come from, in this order:
1. ``root/FashionMNIST/raw/`` already holds the four un-gzipped files (``root`` is the
   argument, else the environment variable ``COURSE_DATA``, else ``data/`` at the repository root);
2. the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist/``):
   its ``.gz`` files are decompressed into ``root`` (Debian re-compressed them, so their
   checksums differ from torchvision's; we decompress rather than ask torchvision to verify);
3. torchvision downloads them (needs the internet).
With none of these, ``DatasetNotFoundError`` says how to get them.
"""
import gzip
import os
import shutil
from pathlib import Path

import torch.nn.functional as F
from torch.utils.data import TensorDataset

from .settings import REPO_ROOT, repo_relative

__all__ = [
    "FASHION_MNIST_CLASSES",
    "DEBIAN_FASHION_MNIST_DIR",
    "DatasetNotFoundError",
    "default_data_root",
    "prepare_fashion_mnist",
    "fashion_mnist",
    "to_minus_one_one",
]

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
RAW_FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)


class DatasetNotFoundError(FileNotFoundError):
    """Fashion-MNIST is neither on disk nor downloadable."""


def default_data_root():
    """Return $COURSE_DATA if set, else ``data/`` next to the ``course_utils`` package."""
    env = os.environ.get("COURSE_DATA")
    return Path(env) if env else REPO_ROOT / "data"


def _raw_dir(root):
    return Path(root) / "FashionMNIST" / "raw"


def _have_raw(root):
    return all((_raw_dir(root) / name).is_file() for name in RAW_FILES)


def _copy_from_debian(root, source_dir):
    raw = _raw_dir(root)
    raw.mkdir(parents=True, exist_ok=True)
    for name in RAW_FILES:
        tmp = raw / (name + ".part")
        with gzip.open(source_dir / (name + ".gz"), "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, raw / name)  # atomic: a half-written file never looks complete


def prepare_fashion_mnist(root=None, download=True, debian_dir=DEBIAN_FASHION_MNIST_DIR):
    """Make sure the four raw files are under ``root/FashionMNIST/raw``; return (root, where they came from)."""
    root = Path(root) if root is not None else default_data_root()
    if _have_raw(root):
        return root, f"already on disk in {repo_relative(_raw_dir(root))}"
    debian_dir = Path(debian_dir)
    if all((debian_dir / (name + ".gz")).is_file() for name in RAW_FILES):
        _copy_from_debian(root, debian_dir)
        raw = repo_relative(_raw_dir(root))
        return root, f"Debian package dataset-fashion-mnist ({debian_dir}), decompressed into {raw}"
    error = "downloading was switched off"
    if download:
        from torchvision.datasets import FashionMNIST

        try:
            FashionMNIST(str(root), train=True, download=True)
            return root, f"downloaded by torchvision into {repo_relative(_raw_dir(root))}"
        except Exception as exc:  # network errors come in many types; we re-raise one clear error
            error = f"the download failed ({type(exc).__name__}: {exc})"
    raise DatasetNotFoundError(
        f"Fashion-MNIST not found in {_raw_dir(root)} or {debian_dir}, and {error}.\n"
        "Get it one of two ways:\n"
        "  1. Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist  (files land in "
        f"{DEBIAN_FASHION_MNIST_DIR})\n"
        "  2. With internet: run again and torchvision downloads it, or put the four un-gzipped "
        f"files {', '.join(RAW_FILES)} into {_raw_dir(root)} (or set COURSE_DATA to another folder)."
    )


def to_minus_one_one(images_uint8, image_size=28):
    """Map uint8 images [N, H, W] in {0..255} to float [N, 1, image_size, image_size] in [-1, 1]: x = 2 * (p / 255) - 1.

    Resizing uses bilinear interpolation with antialiasing (as torchvision's Resize does).
    """
    if images_uint8.ndim != 3:
        raise ValueError(f"expected uint8 images of shape [N, H, W], got {tuple(images_uint8.shape)}")
    x = images_uint8.float().div(255.0).unsqueeze(1)
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return (x * 2.0 - 1.0).clamp(-1.0, 1.0)


def fashion_mnist(train=True, image_size=28, root=None, download=True):
    """Return Fashion-MNIST as a ``TensorDataset`` of (image [1, S, S] in [-1, 1], label) pairs, S = image_size.

    The whole split is read by torchvision, resized once and kept in memory (47 MB for
    the 60,000 training images at 28x28), so batches cost nothing to load.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 4 <= image_size <= 64:
        raise ValueError(f"image_size must be an int between 4 and 64 pixels, got {image_size!r}")
    from torchvision.datasets import FashionMNIST

    root, _ = prepare_fashion_mnist(root, download=download)
    raw = FashionMNIST(str(root), train=train, download=False)
    return TensorDataset(to_minus_one_one(raw.data, image_size), raw.targets.clone())
