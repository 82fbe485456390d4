"""Checkpoints: round trip with weights_only, wrong configs refused by name, corrupt files refused cleanly,
atomic writes, and the pretrained loader's fallback."""
import dataclasses

import pytest
import torch

from course_utils import (
    EMA, CheckpointError, DiffusionConfig, UNet, UNetConfig, config_differences, find_checkpoint, load_checkpoint,
    load_pretrained, save_checkpoint,
)

TINY = UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), num_groups=4, time_embed_dim=16)
CONFIG = DiffusionConfig(image_size=8, T=20, model=TINY)


def saved(tmp_path, name="ckpt.pt", config=CONFIG, step=7):
    model = UNet(config.model)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 1, 8, 8), torch.tensor([1, 2])).mean().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / name, config, step, model=model, ema=EMA(model), optimizer=optimizer,
                           history={"loss": [1.0, 0.5]})
    return path, model


def test_round_trip_with_weights_only(tmp_path):
    path, model = saved(tmp_path)
    raw = torch.load(path, weights_only=True)  # plain tensors and Python values only
    assert raw["step"] == 7 and raw["history"] == {"loss": [1.0, 0.5]}
    ckpt = load_checkpoint(path, expected_config=CONFIG)
    assert DiffusionConfig.from_dict(ckpt["config"]) == CONFIG
    fresh = UNet(TINY)
    fresh.load_state_dict(ckpt["model"])
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert ckpt["optimizer"]["state"], "optimizer moments are saved"
    assert set(ckpt["ema"]) == {"decay", "num_updates", "shadow"}


def test_wrong_config_is_refused_naming_the_fields(tmp_path):
    path, _ = saved(tmp_path)
    other = dataclasses.replace(CONFIG, T=30, model=dataclasses.replace(TINY, base_channels=16))
    with pytest.raises(ValueError) as info:
        load_checkpoint(path, expected_config=other)
    message = str(info.value)
    assert "T: checkpoint has 20, expected 30" in message
    assert "model.base_channels: checkpoint has 8, expected 16" in message
    assert config_differences(CONFIG, CONFIG) == {}


@pytest.mark.parametrize("keep", [0, 10, 500, -100])
def test_truncated_file_raises_checkpoint_error(tmp_path, keep):
    path, _ = saved(tmp_path)
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
    path, _ = saved(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    torch.save(dict(ckpt, format=1), path)
    with pytest.raises(CheckpointError, match="checkpoint format 1.*names its weights differently.*train again"):
        load_checkpoint(path)
    path, reason = find_checkpoint(CONFIG, candidates=(path,))
    assert path is None and "format 1" in reason


def test_failed_write_leaves_old_file_and_no_temp_file(tmp_path):
    path, _ = saved(tmp_path)
    before = path.read_bytes()

    class Unpicklable:
        def state_dict(self):
            return {"bad": lambda: None}  # torch.save cannot pickle a lambda

    with pytest.raises(Exception):
        save_checkpoint(path, CONFIG, 8, model=Unpicklable())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_find_and_load_pretrained_fall_back(tmp_path):
    good, model = saved(tmp_path, "good.pt")
    wrong, _ = saved(tmp_path, "wrong.pt", config=dataclasses.replace(CONFIG, T=30))
    path, reason = find_checkpoint(CONFIG, candidates=(tmp_path / "missing.pt", wrong, good))
    assert path == good
    loaded, config, info = load_pretrained(CONFIG, candidates=(wrong, good), verbose=False)
    assert config == CONFIG and info["step"] == 7 and not loaded.training
    ema_weights = torch.load(good, weights_only=True)["ema"]["shadow"]
    torch.testing.assert_close(loaded.conv_in.weight, ema_weights["conv_in.weight"])
    with pytest.raises(FileNotFoundError, match="T: checkpoint has 30, expected 20"):
        load_pretrained(CONFIG, candidates=(wrong,))


def test_the_committed_checkpoints_match_their_configs():
    """Notebooks 06-08 find the unconditional default, notebook 09 the class-conditional one."""
    from course_utils import GUIDANCE_CHECKPOINT, PRETRAINED_CHECKPOINT, default_config, guidance_config
    committed = (PRETRAINED_CHECKPOINT, GUIDANCE_CHECKPOINT)
    assert find_checkpoint(default_config(), candidates=committed)[0] == PRETRAINED_CHECKPOINT
    assert find_checkpoint(guidance_config(), candidates=committed)[0] == GUIDANCE_CHECKPOINT
    model, config, info = load_pretrained(guidance_config(), candidates=committed, verbose=False)
    assert config.model.num_classes == 10 and model.class_embed.num_embeddings == 11
