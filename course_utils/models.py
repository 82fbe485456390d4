"""A small U-Net that predicts the noise in x_t, readable in one sitting (notebook 05).

Built from small pieces a notebook can assemble one at a time:
``sinusoidal_embedding`` (the time t as a vector), ``ResBlock`` (two 3x3 convolutions with
the time added in between), ``Attention`` (self-attention over pixels at the lowest resolution),
``DownLevel`` and ``UpLevel`` (one resolution of each path) and ``UNet`` (down path, middle, up path with
skip connections). Shapes: ``x`` is ``[B, C, H, W]``, ``t`` is ``[B]`` (0-based steps), ``y`` is ``[B]`` class
labels or None.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PREDICTIONS = ("noise", "x0", "v", "velocity")

__all__ = [
    "PREDICTIONS", "UNetConfig", "sinusoidal_embedding", "ResBlock", "Attention", "DownLevel", "UpLevel", "UNet",
    "count_parameters",
]


@dataclass(frozen=True)
class UNetConfig:
    """Every size of the U-Net; the default is the course's CPU model (see benchmarks/DEFAULTS.md)."""

    image_size: int = 16  # H = W of the input; must halve cleanly at each level (16, 28 and 32 all do)
    in_channels: int = 1  # Fashion-MNIST is grey: one channel in, one noise channel out
    base_channels: int = 32  # width of the first level; cost grows with its square
    channel_mults: tuple = (1, 2, 2)  # width per level as a multiple of base_channels; 3 levels: 16->8->4, 28->14->7
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
        for name in ("base_channels", "num_res_blocks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        levels = len(self.channel_mults)
        if self.image_size % 2 ** (levels - 1):
            raise ValueError(
                f"image_size={self.image_size} cannot be halved {levels - 1} times by channel_mults="
                f"{self.channel_mults}; use fewer levels (28 works with 3 levels: 28->14->7)"
            )
        widths = [self.base_channels * m for m in self.channel_mults]
        if any(w % self.num_groups for w in widths):
            raise ValueError(f"num_groups={self.num_groups} must divide every level width {widths}")


def _silu(x):
    """SiLU(x) = x * sigmoid(x), written over ``x`` when no gradient is recorded (sampling): no new tensor, and
    notebook 06's sampler ran about 15% faster on 2 CPU cores running AVX2 code. Only for fresh tensors that nothing
    else reads."""
    return F.silu(x, inplace=not torch.is_grad_enabled())


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
        h = self.conv1(_silu(self.norm1(x)))
        h = h + self.time_proj(F.silu(emb))[:, :, None, None]  # the same shift for every pixel: "which t"
        h = self.conv2(self.dropout(_silu(self.norm2(h))))
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


class DownLevel(nn.Module):
    """One level of the down path: ``n_blocks`` ResBlocks at one resolution, then (``downsample``) a stride-2
    convolution that halves it. Every output is saved in ``skips`` for the up path."""

    def __init__(self, in_ch, out_ch, n_blocks, block, downsample):
        super().__init__()
        self.blocks = nn.ModuleList([block(in_ch if i == 0 else out_ch, out_ch) for i in range(n_blocks)])
        self.downsample = nn.Conv2d(out_ch, out_ch, 3, stride=2, padding=1) if downsample else None

    def forward(self, h, emb, skips):
        """h [B, in_ch, H, W] -> [B, out_ch, H/2, W/2] ([B, out_ch, H, W] without downsample); appends to skips."""
        for block in self.blocks:
            h = block(h, emb)  # [B, out_ch, H, W]
            skips.append(h)
        if self.downsample is not None:
            h = self.downsample(h)  # [B, out_ch, H/2, W/2]
            skips.append(h)
        return h


class UpLevel(nn.Module):
    """One level of the up path: one ResBlock per entry of ``skip_widths``, each fed the previous output
    concatenated with a saved down-path activation (a skip connection), then (``upsample``) 2x nearest
    upsampling and a 3x3 convolution."""

    def __init__(self, in_ch, skip_widths, out_ch, block, upsample):
        super().__init__()
        widths = [in_ch] + [out_ch] * (len(skip_widths) - 1)
        self.blocks = nn.ModuleList([block(ch + skip, out_ch) for ch, skip in zip(widths, skip_widths)])
        self.upsample = (nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(out_ch, out_ch, 3, padding=1))
                         if upsample else None)

    def forward(self, h, emb, skips):
        """h [B, in_ch, H, W] -> [B, out_ch, 2H, 2W] ([B, out_ch, H, W] without upsample); pops from skips."""
        for block in self.blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)  # [B, ch + skip, H, W] -> [B, out_ch, H, W]
        if self.upsample is not None:
            h = self.upsample(h)  # [B, out_ch, 2H, 2W]
        return h


class UNet(nn.Module):
    """Noise predictor noise_pred = UNet(x_t, t, y): same shape out as in.

    ``down[level]`` (a ``DownLevel``): ``num_res_blocks`` ResBlocks, then a stride-2 conv (not at the lowest
    level). Middle: ResBlock, Attention (optional), ResBlock. ``up[level]`` (an ``UpLevel``, lowest level
    first): ``num_res_blocks + 1`` ResBlocks, each fed a matching down-path activation (skip connection), then
    2x upsampling (not at the top level). With the default config the resolution goes 16 -> 8 -> 4 -> 8 -> 16.
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
        widths = [c.base_channels * m for m in c.channel_mults]
        lowest = len(widths) - 1
        skip_widths, ch = [c.base_channels], c.base_channels  # the widths of what down[...] saves, conv_in's first
        self.down = nn.ModuleList()
        for level, width in enumerate(widths):
            self.down.append(DownLevel(ch, width, c.num_res_blocks, block, downsample=level < lowest))
            skip_widths += [width] * (c.num_res_blocks + (level < lowest))
            ch = width

        self.mid1 = block(ch, ch)
        self.mid_attn = Attention(ch, num_groups=c.num_groups) if c.attention else nn.Identity()
        self.mid2 = block(ch, ch)

        self.up = nn.ModuleList()
        for level in reversed(range(len(widths))):
            skips = [skip_widths.pop() for _ in range(c.num_res_blocks + 1)]
            self.up.append(UpLevel(ch, skips, widths[level], block, upsample=level > 0))
            ch = widths[level]
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
        emb = self.embed(t, y)  # [B, time_embed_dim]
        h = self.conv_in(x)  # [B, base_channels, S, S]
        skips = [h]
        for level in self.down:
            h = level(h, emb, skips)  # halves S, except at the lowest level
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)  # [B, widest, S / 2^(levels - 1), ...]
        for level in self.up:
            h = level(h, emb, skips)  # doubles S, except at the top level; uses up every skip
        return self.conv_out(_silu(self.norm_out(h)))  # [B, C, S, S]


def count_parameters(model):
    """Number of trainable parameters (the sum of p.numel() over parameters with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
