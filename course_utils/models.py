"""A small U-Net that predicts the noise in x_t, readable in one sitting (notebook 05).

Built from small pieces a notebook can assemble one at a time:
``sinusoidal_embedding`` (the time t as a vector), ``ResBlock`` (two 3x3 convolutions with
the time added in between), ``Attention`` (self-attention over pixels at the lowest resolution)
and ``UNet`` (down path, middle, up path with skip connections). Shapes: ``x`` is
``[B, C, H, W]``, ``t`` is ``[B]`` (0-based steps), ``y`` is ``[B]`` class labels or None.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PREDICTIONS = ("noise", "x0", "v", "velocity")

__all__ = ["PREDICTIONS", "UNetConfig", "sinusoidal_embedding", "ResBlock", "Attention", "UNet", "count_parameters"]


@dataclass(frozen=True)
class UNetConfig:
    """Every size of the U-Net; the default is the course's CPU model (see benchmarks/DEFAULTS.md)."""

    image_size: int = 16  # H = W of the input; must halve cleanly at each level (16, 28 and 32 all do)
    in_channels: int = 1  # Fashion-MNIST is grey: one channel in, one noise channel out
    base_channels: int = 32  # width of the first level; cost grows with its square
    channel_mults: tuple = (1, 1, 2)  # width per level as a multiple of base_channels; 3 levels: 16->8->4, 28->14->7
    num_res_blocks: int = 1  # ResBlocks per level on the way down (one more on the way up, to take the skips)
    attention: bool = True  # self-attention in the middle (lowest resolution), where it is cheap and sees the whole image
    num_groups: int = 8  # GroupNorm groups; must divide every width; works at any batch size, unlike BatchNorm
    time_embed_dim: int = 128  # size of the time (and class) embedding fed to every ResBlock
    dropout: float = 0.0  # dropout inside ResBlocks; a regulariser that small, briefly trained models do not need
    num_classes: int = None  # None: unconditional; an int: class-conditional with an extra "null" label num_classes
    prediction: str = "v"  # what the output means: "noise" (Ho et al. 2020), "x0", "v" (Salimans & Ho 2022),
    # or "velocity" (noise - x_0 on the straight path of flow matching, course_utils.flow; t is then 1000 x time)

    def __post_init__(self):
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if isinstance(self.base_channels, bool) or not isinstance(self.base_channels, int) or self.base_channels < 1:
            raise ValueError(f"base_channels must be a positive int, got {self.base_channels!r}")
        levels = len(self.channel_mults)
        if self.image_size % 2 ** (levels - 1):
            raise ValueError(
                f"image_size={self.image_size} cannot be halved {levels - 1} times by channel_mults="
                f"{self.channel_mults}; use fewer levels (28 works with 3 levels: 28->14->7)"
            )
        widths = [self.base_channels * m for m in self.channel_mults]
        if any(w % self.num_groups for w in widths):
            raise ValueError(f"num_groups={self.num_groups} must divide every level width {widths}")


def sinusoidal_embedding(t, dim):
    """Vaswani et al. (2017) / Ho et al. (2020): [sin(t * f_i), cos(t * f_i)], f_i = exp(-log(10000) * i / half).

    ``t`` is [B] (integers or floats), ``dim`` even; returns [B, dim] float32. Low i turn fast
    with t, high i slowly, so every step gets a distinct, smooth code.
    """
    if dim % 2:
        raise ValueError(f"embedding dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm, SiLU, conv, + time projection, GroupNorm, SiLU, dropout, conv; plus a skip (1x1 if widths differ)."""

    def __init__(self, in_ch, out_ch, time_embed_dim, num_groups=8, dropout=0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(num_groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_proj = nn.Linear(time_embed_dim, out_ch)
        self.norm2 = nn.GroupNorm(num_groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x, emb):
        """x [B, in_ch, H, W], emb [B, time_embed_dim] -> [B, out_ch, H, W]."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_proj(F.silu(emb))[:, :, None, None]  # the same shift for every pixel: "which t"
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class Attention(nn.Module):
    """Multi-head self-attention over the H*W pixels, with a residual connection."""

    def __init__(self, channels, num_heads=4, num_groups=8):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels={channels} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(num_groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        """x [B, C, H, W] -> [B, C, H, W]: softmax(q k^T / sqrt(d)) v for each head, pixels as tokens."""
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.num_heads, C // self.num_heads, H * W).unbind(1)
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(h.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    """Noise predictor noise_pred = UNet(x_t, t, y): same shape out as in.

    Down path: per level ``num_res_blocks`` ResBlocks, then a stride-2 conv (not after the last level).
    Middle: ResBlock, Attention (optional), ResBlock. Up path: per level ``num_res_blocks + 1``
    ResBlocks, each fed the matching down-path activation (skip connection), then 2x nearest upsampling.
    """

    def __init__(self, config=None):
        super().__init__()
        self.config = c = config or UNetConfig()
        emb = c.time_embed_dim
        self.time_mlp = nn.Sequential(nn.Linear(c.base_channels, emb), nn.SiLU(), nn.Linear(emb, emb))
        # class-conditional: labels 0..num_classes-1 plus the "null" label num_classes (no class, for CFG)
        self.class_embed = nn.Embedding(c.num_classes + 1, emb) if c.num_classes is not None else None
        self.conv_in = nn.Conv2d(c.in_channels, c.base_channels, 3, padding=1)

        block = lambda i, o: ResBlock(i, o, emb, c.num_groups, c.dropout)  # noqa: E731
        self.down, skip_widths, ch = nn.ModuleList(), [c.base_channels], c.base_channels
        for level, mult in enumerate(c.channel_mults):
            for _ in range(c.num_res_blocks):
                self.down.append(block(ch, c.base_channels * mult))
                ch = c.base_channels * mult
                skip_widths.append(ch)
            if level < len(c.channel_mults) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skip_widths.append(ch)

        self.mid1 = block(ch, ch)
        self.mid_attn = Attention(ch, num_groups=c.num_groups) if c.attention else nn.Identity()
        self.mid2 = block(ch, ch)

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mults))):
            for _ in range(c.num_res_blocks + 1):
                self.up.append(block(ch + skip_widths.pop(), c.base_channels * mult))
                ch = c.base_channels * mult
            if level > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1)))
        self.norm_out = nn.GroupNorm(c.num_groups, ch)
        self.conv_out = nn.Conv2d(ch, c.in_channels, 3, padding=1)

    def _check_inputs(self, x, t, y):
        c = self.config
        expected = (c.in_channels, c.image_size, c.image_size)
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != expected:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected x of shape [B, {', '.join(map(str, expected))}], got {got}")
        if not isinstance(t, torch.Tensor) or t.shape != (x.shape[0],):
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"expected t of shape [{x.shape[0]}] (one step per image), got {got}")
        if y is not None and c.num_classes is None:
            raise ValueError("got labels y but this UNet is unconditional (config.num_classes is None)")
        if y is not None and (y.shape != (x.shape[0],) or y.min() < 0 or y.max() > c.num_classes):
            raise ValueError(f"expected y of shape [{x.shape[0]}] with labels in 0..{c.num_classes} "
                             f"({c.num_classes} = no class), got shape {tuple(y.shape)}")

    def embed(self, t, y=None):
        """Time embedding MLP(sinusoidal(t)), plus the class embedding (null label when y is None): [B, time_embed_dim]."""
        emb = self.time_mlp(sinusoidal_embedding(t, self.config.base_channels))
        if self.class_embed is not None:
            if y is None:
                y = torch.full_like(t, self.config.num_classes, dtype=torch.long)
            emb = emb + self.class_embed(y.long())
        return emb

    def forward(self, x, t, y=None):
        """x [B, C, S, S] (x_t), t [B] steps, y [B] labels or None -> noise_pred [B, C, S, S]."""
        self._check_inputs(x, t, y)
        emb = self.embed(t, y)
        h = self.conv_in(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for layer in self.up:
            h = layer(torch.cat([h, skips.pop()], dim=1), emb) if isinstance(layer, ResBlock) else layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def count_parameters(model):
    """Number of trainable parameters (the sum of p.numel() over parameters with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
