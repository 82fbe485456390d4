"""Data loading, device selection, seeding and quick mode."""
import gzip
import random

import numpy as np
import pytest
import torch

import course_utils as cu
from course_utils import DatasetNotFoundError, fashion_mnist, prepare_fashion_mnist, to_minus_one_one


def test_pick_reads_course_quick(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")
    assert cu.is_quick() and cu.pick(full=100, quick=3) == 3
    for off in ["0", "", "false", "no"]:
        monkeypatch.setenv("COURSE_QUICK", off)
        assert not cu.is_quick() and cu.pick(full=100, quick=3) == 100
    monkeypatch.delenv("COURSE_QUICK")
    assert cu.pick(full=100, quick=3) == 100


def test_course_quick_rejects_a_value_it_does_not_understand(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "maybe")
    with pytest.raises(ValueError, match="COURSE_QUICK='maybe'"):
        cu.is_quick()


@pytest.fixture
def fresh_policy():
    """Forget the measured precision choice before and after the test."""
    cu.device._auto_choice.cache_clear()
    yield
    cu.device._auto_choice.cache_clear()


@pytest.mark.parametrize("value, dtype", [("fp32", torch.float32), ("FP32", torch.float32), ("bf16", torch.bfloat16)])
def test_course_precision_forces_the_dtype(monkeypatch, value, dtype):
    monkeypatch.setenv("COURSE_PRECISION", value)
    assert cu.compute_dtype("cpu") == dtype
    assert f"COURSE_PRECISION={value.lower()}" in cu.precision_choice("cpu")[1]


@pytest.mark.parametrize("value", ["fp16", "float32", "yes"])
def test_course_precision_rejects_bad_values(monkeypatch, value):
    monkeypatch.setenv("COURSE_PRECISION", value)
    with pytest.raises(ValueError, match=f"COURSE_PRECISION='{value.lower()}' is not one of auto, fp32, bf16"):
        cu.compute_dtype("cpu")


def test_auto_never_picks_bf16_without_native_support(monkeypatch, fresh_policy):
    monkeypatch.setenv("COURSE_PRECISION", "auto")
    monkeypatch.setattr(cu.device, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(cu.device, "measure_bf16_speedup", lambda device: pytest.fail("must not measure"))
    dtype, reason = cu.precision_choice("cpu")
    assert dtype == torch.float32 and "no native bfloat16" in reason


@pytest.mark.parametrize("fp32_s, bf16_s, expected", [(1.0, 0.6, torch.bfloat16), (1.0, 1.4, torch.float32),
                                                      (1.0, 1.0, torch.float32)])
def test_auto_picks_the_dtype_it_measured_faster(monkeypatch, fresh_policy, fp32_s, bf16_s, expected):
    monkeypatch.setenv("COURSE_PRECISION", "auto")
    monkeypatch.setattr(cu.device, "cpu_has_native_bf16", lambda: True)
    calls = []
    monkeypatch.setattr(cu.device, "measure_bf16_speedup", lambda device: calls.append(device) or (fp32_s, bf16_s))
    assert cu.compute_dtype("cpu") == expected
    assert cu.compute_dtype("cpu") == expected and len(calls) == 1  # measured once per process
    assert "measured" in cu.precision_choice("cpu")[1]


def test_auto_on_this_machine_is_never_slower_than_float32(monkeypatch, fresh_policy):
    monkeypatch.setenv("COURSE_PRECISION", "auto")
    if cu.compute_dtype("cpu") == torch.bfloat16:
        fp32_s, bf16_s = cu.measure_bf16_speedup("cpu")
        assert cu.cpu_has_native_bf16() and bf16_s < 1.5 * fp32_s  # a second measurement, within noise


def test_measure_bf16_speedup_times_both_precisions():
    fp32_s, bf16_s = cu.measure_bf16_speedup("cpu", repeats=2)
    assert 0 < fp32_s < 1 and 0 < bf16_s < 5


class _AutocastProbe(torch.nn.Module):
    """Records whether CPU autocast is on at each call; returns a function of its input (as a noise predictor)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(0.5))
        self.config = cu.UNetConfig(image_size=4, base_channels=8, channel_mults=(1,), num_groups=4)
        self.autocast = []

    def forward(self, x, t, y=None):
        self.autocast.append(torch.is_autocast_enabled("cpu"))
        return self.weight * x


@pytest.mark.parametrize("value, on", [("fp32", False), ("bf16", True)])
def test_samplers_and_training_step_follow_the_precision(monkeypatch, value, on):
    monkeypatch.setenv("COURSE_PRECISION", value)
    schedule, probe = cu.make_schedule("cosine", 10), _AutocastProbe()
    shape, g = (2, 1, 4, 4), torch.Generator().manual_seed(0)
    cu.p_sample_loop(probe, schedule, shape, generator=g, progress=False)
    cu.ddim_sample_loop(probe, schedule, shape, 3, generator=g, progress=False)
    cu.pc_sample_loop(probe, schedule, shape, generator=g, progress=False)
    config = cu.DiffusionConfig(image_size=4, T=10, model=probe.config, batch_size=2)
    cu.train_step(probe, torch.optim.SGD(probe.parameters(), lr=0.1), schedule, config, torch.zeros(shape), generator=g)
    assert len(probe.autocast) > 10 and set(probe.autocast) == {on}


def test_get_device_on_this_machine(capsys):
    device = cu.get_device()
    out = capsys.readouterr().out
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert device.type == expected
    assert f"Using device '{expected}'" in out
    assert "Compute precision: " in out and ("float32" in out or "bfloat16" in out)


def test_get_device_falls_back_to_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert cu.get_device(verbose=False).type == "cpu"


def test_seed_everything_repeats_all_three_generators():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()
    cu.seed_everything(123)
    first = draw()
    cu.seed_everything(123)
    assert draw() == first
    with pytest.raises(TypeError, match="seed must be an int"):
        cu.seed_everything(1.5)


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


def test_sampler_device_helpers():
    from course_utils import model_device, randn_on, sampling_mode
    layer = torch.nn.Linear(2, 2)
    assert model_device(layer) == torch.device("cpu") and model_device(torch.nn.ReLU()) == torch.device("cpu")
    a = randn_on((3, 2), torch.Generator().manual_seed(5), "cpu")
    torch.testing.assert_close(a, torch.randn((3, 2), generator=torch.Generator().manual_seed(5)))
    layer.train()
    with sampling_mode(layer):
        assert not layer.training and torch.is_inference_mode_enabled()
        assert not layer(a).requires_grad
    assert layer.training and not torch.is_inference_mode_enabled()
    layer.eval()
    with sampling_mode(layer):
        pass
    assert not layer.training


def test_repo_relative_hides_the_machines_folders(tmp_path):
    from course_utils.settings import REPO_ROOT, repo_relative

    assert str(repo_relative(REPO_ROOT / "runs" / "x.pt")) == "runs/x.pt"
    assert repo_relative(tmp_path / "y.pt") == tmp_path / "y.pt"  # outside the repository: unchanged
