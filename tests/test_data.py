"""Data: Fashion-MNIST from the Debian package or a download, scaling to [-1, 1] and resizing, clear errors."""
import gzip

import numpy as np
import pytest
import torch

import course_utils as cu
from course_utils import DatasetNotFoundError, fashion_mnist, prepare_fashion_mnist, to_minus_one_one


def test_to_minus_one_one_scaling_and_resize():
    x = torch.tensor([[[0, 255], [128, 64]]], dtype=torch.uint8)
    out = to_minus_one_one(x, image_size=2)
    torch.testing.assert_close(out, torch.tensor([[[[-1.0, 1.0], [128 / 255 * 2 - 1, 64 / 255 * 2 - 1]]]]))
    big = to_minus_one_one(torch.full((3, 28, 28), 255, dtype=torch.uint8), image_size=16)
    assert big.shape == (3, 1, 16, 16)
    torch.testing.assert_close(big, torch.ones_like(big))
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        to_minus_one_one(torch.zeros(28, 28, dtype=torch.uint8))


def _write_idx_gz(folder, name, array):
    """Write an IDX file (the MNIST format) gzip-compressed, as the Debian package ships them."""
    magic = {1: 0x0801, 3: 0x0803}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(folder / (name + ".gz"), "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_debian(tmp_path):
    """A tiny stand-in for /usr/share/datasets/fashion-mnist: 6 train and 4 test images."""
    src = tmp_path / "debian"
    src.mkdir()
    rng = np.random.default_rng(0)
    _write_idx_gz(src, "train-images-idx3-ubyte", rng.integers(0, 256, (6, 28, 28)))
    _write_idx_gz(src, "train-labels-idx1-ubyte", np.arange(6))
    _write_idx_gz(src, "t10k-images-idx3-ubyte", rng.integers(0, 256, (4, 28, 28)))
    _write_idx_gz(src, "t10k-labels-idx1-ubyte", np.array([9, 8, 7, 6]))
    return src


def test_prepare_decompresses_debian_files(tmp_path, fake_debian):
    root, source = prepare_fashion_mnist(tmp_path / "data", download=False, debian_dir=fake_debian)
    assert "Debian" in source
    assert (root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").stat().st_size == 16 + 6 * 28 * 28
    root2, source2 = prepare_fashion_mnist(tmp_path / "data", download=False, debian_dir=fake_debian)
    assert "already on disk" in source2


def test_dataset_from_debian_files(tmp_path, fake_debian, monkeypatch):
    prepare_fashion_mnist(tmp_path / "d", download=False, debian_dir=fake_debian)
    ds = fashion_mnist(train=False, image_size=16, root=tmp_path / "d", download=False)
    x, y = ds.tensors
    assert x.shape == (4, 1, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert y.tolist() == [9, 8, 7, 6]


def test_missing_data_offline_gives_one_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        prepare_fashion_mnist(tmp_path / "nothing", download=False, debian_dir=tmp_path / "no-debian")
    msg = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "torchvision downloads" in msg


def test_failed_download_is_wrapped(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(DatasetNotFoundError, match=r"download failed \(OSError: Network is unreachable\)"):
        prepare_fashion_mnist(tmp_path / "x", download=True, debian_dir=tmp_path / "no-debian")


@pytest.mark.parametrize("size", [3, 65, 16.0, True])
def test_bad_image_size_rejected(size):
    with pytest.raises(ValueError, match="image_size"):
        fashion_mnist(image_size=size)


real_data = pytest.mark.skipif(
    not (cu.default_data_root() / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").exists()
    and not cu.DEBIAN_FASHION_MNIST_DIR.exists(), reason="Fashion-MNIST not available")


@real_data
def test_real_fashion_mnist_test_split():
    ds = fashion_mnist(train=False, image_size=28)
    x, y = ds.tensors
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert torch.bincount(y).tolist() == [1000] * 10
    assert x.min().item() == -1.0 and x.max().item() == 1.0
