"""Pretrained models: the loader finds the first checkpoint that fits a config, and the committed checkpoints fit theirs."""
import dataclasses

import pytest
import torch

from conftest import TINY_DIFFUSION, saved_checkpoint
from course_utils import find_checkpoint, load_pretrained


def test_find_and_load_pretrained_fall_back(tmp_path):
    good, model = saved_checkpoint(tmp_path, "good.pt")
    wrong, _ = saved_checkpoint(tmp_path, "wrong.pt", config=dataclasses.replace(TINY_DIFFUSION, T=30))
    path, reason = find_checkpoint(TINY_DIFFUSION, candidates=(tmp_path / "missing.pt", wrong, good))
    assert path == good
    loaded, config, info = load_pretrained(TINY_DIFFUSION, candidates=(wrong, good), verbose=False)
    assert config == TINY_DIFFUSION and info["step"] == 7 and not loaded.training
    ema_weights = torch.load(good, weights_only=True)["ema"]["shadow"]
    torch.testing.assert_close(loaded.conv_in.weight, ema_weights["conv_in.weight"])
    with pytest.raises(FileNotFoundError, match="T: checkpoint has 30, expected 20"):
        load_pretrained(TINY_DIFFUSION, candidates=(wrong,))


def test_the_committed_checkpoints_match_their_configs():
    """Notebooks 06-08 find the unconditional default, notebook 09 the class-conditional one."""
    from course_utils import GUIDANCE_CHECKPOINT, PRETRAINED_CHECKPOINT, default_config, guidance_config
    committed = (PRETRAINED_CHECKPOINT, GUIDANCE_CHECKPOINT)
    assert find_checkpoint(default_config(), candidates=committed)[0] == PRETRAINED_CHECKPOINT
    assert find_checkpoint(guidance_config(), candidates=committed)[0] == GUIDANCE_CHECKPOINT
    model, config, info = load_pretrained(guidance_config(), candidates=committed, verbose=False)
    assert config.model.num_classes == 10 and model.class_embed.num_embeddings == 11
