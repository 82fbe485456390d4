"""Device: choosing the device and the precision (which samplers and training follow), seeding, device helpers."""
import dataclasses
import random

import numpy as np
import pytest
import torch

import course_utils as cu
from conftest import TINY_UNET, HalfX


@pytest.fixture
def fresh_policy():
    """Forget the measured precision choice before and after the test."""
    cu.device._auto_choice.cache_clear()
    yield
    cu.device._auto_choice.cache_clear()


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


class _AutocastProbe(HalfX):
    """Records whether CPU autocast is on at each call; returns a function of its input (as a noise predictor)."""

    def __init__(self):
        super().__init__()
        self.config = dataclasses.replace(TINY_UNET, image_size=4, channel_mults=(1,))
        self.autocast = []

    def forward(self, x, t, y=None):
        self.autocast.append(torch.is_autocast_enabled("cpu"))
        return super().forward(x, t, y)


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


@pytest.mark.parametrize("value, faster, relaid", [("fp32", True, True), ("fp32", False, False), ("bf16", True, False)])
def test_sampling_lays_out_weights_channels_last_only_where_it_pays(monkeypatch, value, faster, relaid):
    """float32 on a CPU that measured channels-last faster: the 4-D weights are channels-last inside the block,
    nested blocks included, and back to the default layout afterwards, as the same Parameters, so training goes on.
    Measured slower, or under bf16: nothing moves."""
    monkeypatch.setenv("COURSE_PRECISION", value)
    monkeypatch.setattr(cu.device, "_channels_last_measured_faster", lambda: faster)
    model = cu.UNet(dataclasses.replace(TINY_UNET, image_size=4, channel_mults=(1,)))
    params = list(model.parameters())
    weight = next(p for p in params if p.ndim == 4 and p.shape[1] > 1 and p.shape[2] > 1)  # a 3x3 conv's [C_out, C_in, 3, 3]
    def channels_last():
        return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()

    seen = []
    with cu.sampling_mode(model):
        seen.append(channels_last())
        with cu.sampling_mode(model):
            seen.append(channels_last())
        seen.append(channels_last())
    assert seen == [relaid] * 3
    assert all(p.is_contiguous() for p in model.parameters()) and all(a is b for a, b in zip(params, model.parameters()))
    model(torch.randn(2, 1, 4, 4), torch.tensor([1, 2])).pow(2).mean().backward()  # no inference tensors left behind
    assert weight.grad is not None


def test_channels_last_sampling_gives_the_samples_of_the_default_layout(monkeypatch):
    monkeypatch.setenv("COURSE_PRECISION", "fp32")
    monkeypatch.setattr(cu.device, "_channels_last_measured_faster", lambda: True)
    model, schedule = cu.UNet(dataclasses.replace(TINY_UNET, image_size=4, channel_mults=(1,))), cu.make_schedule("cosine", 20)
    kw = dict(shape=(3, 1, 4, 4), progress=False)
    fast = cu.p_sample_loop(model, schedule, generator=torch.Generator().manual_seed(1), **kw)
    monkeypatch.setattr(cu.device, "channels_last_pays", lambda device: False)
    plain = cu.p_sample_loop(model, schedule, generator=torch.Generator().manual_seed(1), **kw)
    torch.testing.assert_close(fast, plain)


def test_measure_channels_last_speedup_times_both_layouts():
    nchw_s, nhwc_s = cu.measure_channels_last_speedup(repeats=2)
    assert 0 < nchw_s < 1 and 0 < nhwc_s < 1


@pytest.mark.parametrize("nchw_s, nhwc_s, expected", [(2.0, 1.0, True), (1.0, 2.0, False)])
def test_channels_last_is_chosen_only_when_measured_faster(monkeypatch, nchw_s, nhwc_s, expected):
    monkeypatch.setenv("COURSE_PRECISION", "fp32")
    monkeypatch.setattr(cu.device, "measure_channels_last_speedup", lambda: (nchw_s, nhwc_s))
    cu.device._channels_last_measured_faster.cache_clear()
    try:
        assert cu.channels_last_pays("cpu") is expected
        assert cu.channels_last_pays("meta") is False  # only CPUs are measured
    finally:
        cu.device._channels_last_measured_faster.cache_clear()
