"""Checkpoints: weights_only round trip, wrong configs named, corrupt or old-format files refused, atomic writes."""
import dataclasses

import pytest
import torch

from conftest import TINY_DIFFUSION, TINY_UNET, saved_checkpoint
from course_utils import (
    CheckpointError, DiffusionConfig, UNet, config_differences, find_checkpoint, load_checkpoint, save_checkpoint,
)


def test_round_trip_with_weights_only(tmp_path):
    path, model = saved_checkpoint(tmp_path)
    raw = torch.load(path, weights_only=True)  # plain tensors and Python values only
    assert raw["step"] == 7 and raw["history"] == {"loss": [1.0, 0.5]}
    ckpt = load_checkpoint(path, expected_config=TINY_DIFFUSION)
    assert DiffusionConfig.from_dict(ckpt["config"]) == TINY_DIFFUSION
    fresh = UNet(TINY_UNET)
    fresh.load_state_dict(ckpt["model"])
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert ckpt["optimizer"]["state"], "optimizer moments are saved"
    assert set(ckpt["ema"]) == {"decay", "num_updates", "shadow"}


def test_wrong_config_is_refused_naming_the_fields(tmp_path):
    path, _ = saved_checkpoint(tmp_path)
    other = dataclasses.replace(TINY_DIFFUSION, T=30, model=dataclasses.replace(TINY_UNET, base_channels=16))
    with pytest.raises(ValueError) as info:
        load_checkpoint(path, expected_config=other)
    message = str(info.value)
    assert "T: checkpoint has 20, expected 30" in message
    assert "model.base_channels: checkpoint has 8, expected 16" in message
    assert config_differences(TINY_DIFFUSION, TINY_DIFFUSION) == {}


@pytest.mark.parametrize("keep", [0, 10, 500, -100])
def test_truncated_file_raises_checkpoint_error(tmp_path, keep):
    path, _ = saved_checkpoint(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    with pytest.raises(CheckpointError, match=r"ckpt\.pt.*delete it and train again"):
        load_checkpoint(path)


def test_foreign_file_and_missing_file(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a course checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_checkpoint_of_another_format_is_refused(tmp_path):
    """A checkpoint written before the U-Net grouped its layers per level (format 1) names the problem."""
    path, _ = saved_checkpoint(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    torch.save(dict(ckpt, format=1), path)
    with pytest.raises(CheckpointError, match="checkpoint format 1.*names its weights differently.*train again"):
        load_checkpoint(path)
    path, reason = find_checkpoint(TINY_DIFFUSION, candidates=(path,))
    assert path is None and "format 1" in reason


def test_failed_write_leaves_old_file_and_no_temp_file(tmp_path):
    path, _ = saved_checkpoint(tmp_path)
    before = path.read_bytes()

    class Unpicklable:
        def state_dict(self):
            return {"bad": lambda: None}  # torch.save cannot pickle a lambda

    with pytest.raises(Exception):
        save_checkpoint(path, TINY_DIFFUSION, 8, model=Unpicklable())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
