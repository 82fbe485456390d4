"""The U-Net: shapes at every supported size, time and class conditioning, gradients, input checks."""
import dataclasses
import math

import pytest
import torch

from conftest import TINY_UNET
from course_utils import Attention, ResBlock, UNet, UNetConfig, count_parameters, sinusoidal_embedding


TINY = dataclasses.replace(TINY_UNET, image_size=16, channel_mults=(1, 2, 2))  # three levels: 16 -> 8 -> 4


@pytest.mark.parametrize("size", [16, 28, 32])
def test_output_shape_equals_input_shape(size):
    model = UNet(dataclasses.replace(TINY, image_size=size))
    x = torch.randn(2, 1, size, size)
    assert model(x, torch.tensor([0, 99])).shape == x.shape


def test_sinusoidal_embedding_formula():
    t = torch.tensor([0, 1, 17, 999])
    emb = sinusoidal_embedding(t, 8)
    assert emb.shape == (4, 8)
    half = 4
    for row, tv in zip(emb, t.tolist()):
        for i in range(half):
            freq = math.exp(-math.log(10000) * i / half)
            assert row[i].item() == pytest.approx(math.sin(tv * freq), abs=1e-4)
            assert row[half + i].item() == pytest.approx(math.cos(tv * freq), abs=1e-4)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(t, 7)


def test_time_embedding_differs_across_t():
    model = UNet(TINY).eval()
    emb = model.embed(torch.tensor([0, 1, 500]))
    assert not torch.allclose(emb[0], emb[1]) and not torch.allclose(emb[1], emb[2])
    x = torch.randn(1, 1, 16, 16).repeat(2, 1, 1, 1)
    out = model(x, torch.tensor([3, 400]))
    assert not torch.allclose(out[0], out[1]), "the same x_t at two different t must give different noise_pred"


def test_class_embedding_and_null_label():
    model = UNet(dataclasses.replace(TINY, num_classes=10)).eval()
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([5, 5])
    torch.testing.assert_close(model(x, t), model(x, t, torch.tensor([10, 10])))  # y=None is the null label 10
    assert not torch.allclose(model(x, t, torch.tensor([0, 0])), model(x, t, torch.tensor([7, 7])))
    with pytest.raises(ValueError, match="labels in 0..10"):
        model(x, t, torch.tensor([0, 11]))
    with pytest.raises(ValueError, match="unconditional"):
        UNet(TINY)(x, t, torch.tensor([0, 1]))


def test_gradient_reaches_every_parameter():
    model = UNet(dataclasses.replace(TINY, num_classes=3))
    x = torch.randn(4, 1, 16, 16)
    model(x, torch.tensor([0, 10, 20, 30]), torch.tensor([0, 1, 2, 3])).pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"no gradient reaches {missing}"


def test_resblock_skip_and_time():
    block = ResBlock(8, 16, time_embed_dim=4, num_groups=4)
    assert isinstance(block.skip, torch.nn.Conv2d) and block.skip.kernel_size == (1, 1)
    assert isinstance(ResBlock(8, 8, 4, 4).skip, torch.nn.Identity)
    x = torch.randn(2, 8, 4, 4)
    a, b = block(x, torch.zeros(2, 4)), block(x, torch.ones(2, 4))
    assert a.shape == (2, 16, 4, 4) and not torch.allclose(a, b)


def test_sampling_gives_the_training_output_and_leaves_inputs_alone():
    """Without gradients the U-Net's SiLUs overwrite their (fresh) inputs; outputs and inputs must not change."""
    model = UNet(dataclasses.replace(TINY, num_classes=3)).eval()
    x, t, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 10, 20, 30]), torch.tensor([0, 1, 2, 3])
    expected = model(x, t, y)  # gradients recorded: every op writes a new tensor
    block = model.down[0].blocks[0]
    h, emb = torch.randn(4, block.norm1.num_channels, 16, 16), torch.randn(4, block.time_proj.in_features)
    block_expected = block(h, emb)
    copies = [v.clone() for v in (x, t, y, h, emb)]
    with torch.inference_mode():
        torch.testing.assert_close(model(x, t, y), expected, rtol=0, atol=0)
        torch.testing.assert_close(block(h, emb), block_expected, rtol=0, atol=0)
    for before, after in zip(copies, (x, t, y, h, emb)):
        torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_attention_matches_explicit_softmax():
    attn = Attention(8, num_heads=2, num_groups=4)
    x = torch.randn(1, 8, 3, 3)
    q, k, v = attn.qkv(attn.norm(x)).reshape(1, 3, 2, 4, 9).unbind(1)
    weights = torch.softmax(q.transpose(-1, -2) @ k / math.sqrt(4), dim=-1)  # [1, heads, 9 queries, 9 keys]
    h = (weights @ v.transpose(-1, -2)).transpose(-1, -2).reshape(1, 8, 3, 3)
    torch.testing.assert_close(attn(x), x + attn.out(h))


@pytest.mark.parametrize("x, t, msg", [
    (torch.randn(2, 1, 28, 28), torch.tensor([0, 1]), r"expected x of shape \[B, 1, 16, 16\], got \(2, 1, 28, 28\)"),
    (torch.randn(2, 3, 16, 16), torch.tensor([0, 1]), r"expected x of shape \[B, 1, 16, 16\]"),
    (torch.randn(1, 16, 16), torch.tensor([0]), r"got \(1, 16, 16\)"),
    (torch.randn(2, 1, 16, 16), torch.tensor([0]), r"expected t of shape \[2\]"),
    (torch.randn(2, 1, 16, 16), torch.tensor([[0, 1]]), r"expected t of shape \[2\]"),
])
def test_bad_input_raises(x, t, msg):
    with pytest.raises(ValueError, match=msg):
        UNet(TINY)(x, t)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="cannot be halved"):
        UNetConfig(image_size=28, channel_mults=(1, 2, 2, 2))
    with pytest.raises(ValueError, match="num_groups"):
        UNetConfig(base_channels=12, num_groups=8)
    with pytest.raises(ValueError, match="num_res_blocks must be a positive int"):
        UNetConfig(num_res_blocks=0)


@pytest.mark.parametrize("num_res_blocks", [1, 2])
def test_levels_halve_then_double_and_use_every_skip(num_res_blocks):
    """Walking the U level by level (as notebook 05 does) gives the model's output; each down level halves the
    resolution but the lowest, each up level doubles it but the top, and the up path takes every saved skip."""
    config = UNetConfig(image_size=16, base_channels=8, channel_mults=(1, 2, 2), num_res_blocks=num_res_blocks,
                        num_groups=4)
    torch.manual_seed(0)
    model = UNet(config).eval()
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3, 7])
    with torch.no_grad():
        emb = model.embed(t)
        h = model.conv_in(x)
        skips, sizes = [h], []
        for level in model.down:
            assert len(level.blocks) == num_res_blocks
            h = level(h, emb, skips)
            sizes.append(tuple(h.shape[1:]))
        assert sizes == [(8, 8, 8), (16, 4, 4), (16, 4, 4)]
        assert len(skips) == 1 + 3 * num_res_blocks + 2
        h = model.mid2(model.mid_attn(model.mid1(h, emb)), emb)
        sizes = []
        for level in model.up:
            assert len(level.blocks) == num_res_blocks + 1
            h = level(h, emb, skips)
            sizes.append(tuple(h.shape[1:]))
        assert sizes == [(16, 8, 8), (16, 16, 16), (8, 16, 16)] and skips == []
        torch.testing.assert_close(model.conv_out(torch.nn.functional.silu(model.norm_out(h))), model(x, t))


def test_count_parameters():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2, bias=False))
    assert count_parameters(model) == 3 * 4 + 4 + 4 * 2
    model[0].weight.requires_grad_(False)
    assert count_parameters(model) == 4 + 8
