"""Restormer's block and the published Restormer (Zamir et al., 2022).

``TransformerBlock`` is the block type plugged into the general restoration network
(:func:`constyle_restormer`); :class:`Restormer` is the original four-level network
used as the release's baseline.  Module names (``norm1.body``, ``attn.qkv_dwconv``,
``ffn.project_in``, ``encoder_level1``, ``down1_2`` ...) follow the published network so
that the authors' checkpoints load with few renaming rules.
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .padding import check_input, crop_to, pad_to_multiple
from .unet import RestorationUNet, TrainOutput, build_general_unet

__all__ = ["LayerNorm", "MDTA", "GDFN", "TransformerBlock", "OverlapPatchEmbed", "Downsample",
           "Upsample", "Restormer", "constyle_restormer"]

LayerNormType = Literal["WithBias", "BiasFree"]


class _BiasFreeLayerNorm(nn.Module):
    """Scale by 1/std without centring (Restormer's 'BiasFree' variant)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return x / torch.sqrt(var + self.eps) * self.weight


class LayerNorm(nn.Module):
    """LayerNorm over the channels of an NCHW tensor.

    ``body`` normalises the last dimension (channels-last view); the name is kept so the
    release's ``norm1.body.weight`` keys load unchanged.  'WithBias' is exactly
    ``nn.LayerNorm(c, eps=1e-5)``.
    """

    def __init__(self, channels: int, kind: LayerNormType = "WithBias") -> None:
        super().__init__()
        if kind not in ("WithBias", "BiasFree"):
            raise ValueError(f"LayerNorm kind must be 'WithBias' or 'BiasFree', got {kind!r}")
        self.body = nn.LayerNorm(channels, eps=1e-5) if kind == "WithBias" else _BiasFreeLayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class MDTA(nn.Module):
    """Multi-Dconv-head transposed attention: attention *across channels* (C/h x C/h
    per head), so its cost is linear in the number of pixels.  Queries and keys are
    L2-normalised over pixels and scaled by a learnable temperature per head."""

    def __init__(self, channels: int, *, num_heads: int, bias: bool = False) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"MDTA: {channels} channels do not split into {num_heads} heads")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1,
                                    groups=3 * channels, bias=bias)
        self.project_out = nn.Conv2d(channels, channels, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        # (B, heads, C/heads, HW)
        q, k, v = (t.reshape(b, self.num_heads, c // self.num_heads, h * w) for t in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network: 1x1 to 2 x hidden, depthwise 3x3,
    GELU(x1) * x2, 1x1 back (hidden = int(c * expansion), 127 for c=48, 2.66)."""

    def __init__(self, channels: int, *, expansion: float = 2.66, bias: bool = False) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class TransformerBlock(nn.Module):
    """x + MDTA(LN(x)), then x + GDFN(LN(x))."""

    def __init__(self, channels: int, *, num_heads: int = 1, ffn_expansion_factor: float = 2.66,
                 bias: bool = False, layernorm_type: LayerNormType = "WithBias") -> None:
        super().__init__()
        self.norm1 = LayerNorm(channels, layernorm_type)
        self.attn = MDTA(channels, num_heads=num_heads, bias=bias)
        self.norm2 = LayerNorm(channels, layernorm_type)
        self.ffn = GDFN(channels, expansion=ffn_expansion_factor, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    """Restormer's shallow feature extraction: one 3x3 conv (overlapping 'patches')."""

    def __init__(self, in_channels: int = 3, embed_dim: int = 48, *, bias: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, 3, padding=1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """Conv3x3 c -> c/2, PixelUnshuffle(2): 2c channels at half resolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False),
                                  nn.PixelUnshuffle(2))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """Conv3x3 c -> 2c, PixelShuffle(2): c/2 channels at twice the resolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, 2 * channels, 3, padding=1, bias=False),
                                  nn.PixelShuffle(2))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class Restormer(nn.Module):
    """The published Restormer: four levels with widths d, 2d, 4d, 8d, concatenated
    skips (1x1 reduction at levels 3 and 2, none at level 1 where the decoder runs at
    2d), refinement blocks at 2d and a global residual.  Defaults are the release's
    baseline (26,126,644 parameters)."""

    def __init__(self, *, inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                 num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4,
                 heads: Sequence[int] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.66,
                 bias: bool = False, layernorm_type: LayerNormType = "WithBias") -> None:
        super().__init__()
        if len(num_blocks) != 4 or len(heads) != 4:
            raise ValueError("Restormer needs four entries in num_blocks and heads")

        def level(n: int, channels: int, n_heads: int) -> nn.Sequential:
            return nn.Sequential(*[TransformerBlock(channels, num_heads=n_heads,
                                                   ffn_expansion_factor=ffn_expansion_factor,
                                                   bias=bias, layernorm_type=layernorm_type)
                                   for _ in range(n)])

        d = dim
        self.patch_embed = OverlapPatchEmbed(inp_channels, d, bias=bias)
        self.encoder_level1 = level(num_blocks[0], d, heads[0])
        self.down1_2 = Downsample(d)
        self.encoder_level2 = level(num_blocks[1], 2 * d, heads[1])
        self.down2_3 = Downsample(2 * d)
        self.encoder_level3 = level(num_blocks[2], 4 * d, heads[2])
        self.down3_4 = Downsample(4 * d)
        self.latent = level(num_blocks[3], 8 * d, heads[3])
        self.up4_3 = Upsample(8 * d)
        self.reduce_chan_level3 = nn.Conv2d(8 * d, 4 * d, 1, bias=bias)
        self.decoder_level3 = level(num_blocks[2], 4 * d, heads[2])
        self.up3_2 = Upsample(4 * d)
        self.reduce_chan_level2 = nn.Conv2d(4 * d, 2 * d, 1, bias=bias)
        self.decoder_level2 = level(num_blocks[1], 2 * d, heads[1])
        self.up2_1 = Upsample(2 * d)
        self.decoder_level1 = level(num_blocks[0], 2 * d, heads[0])
        self.refinement = level(num_refinement_blocks, 2 * d, heads[0])
        self.output = nn.Conv2d(2 * d, out_channels, 3, padding=1, bias=bias)
        self.constyle = None
        self.size_factor = 8

    def restore(self, inp: Tensor) -> Tensor:
        e1 = self.encoder_level1(self.patch_embed(inp))
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        x = self.latent(self.down3_4(e3))
        x = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(x), e3], dim=1)))
        x = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(x), e2], dim=1)))
        x = self.decoder_level1(torch.cat([self.up2_1(x), e1], dim=1))
        return self.output(self.refinement(x)) + inp

    def forward(self, lq: Tensor, gt: Tensor | None = None) -> Tensor | TrainOutput:
        """Restore ``lq`` (any size: padded to 8 and cropped back); with ``gt`` return a
        :class:`TrainOutput` without ConStyle outputs (the trainer's uniform call)."""
        check_input(lq, self.patch_embed.proj.in_channels, like=self.patch_embed.proj.weight)
        h, w = lq.shape[-2:]
        out = crop_to(self.restore(pad_to_multiple(lq, self.size_factor)), h, w)
        return TrainOutput(out, None) if gt is not None else out


def constyle_restormer(*, width: int = 48, left_blk_num: Sequence[int] = (4, 6, 6),
                       bottom_blk_num: int = 8, right_blk_num: Sequence[int] = (4, 6, 6),
                       num_refinement_blocks: int = 4, heads: Sequence[int] = (1, 2, 4, 8),
                       decoder_heads: Sequence[int] = (1, 2, 4),
                       ffn_expansion_factor: float = 2.66, bias: bool = False,
                       layernorm_type: LayerNormType = "WithBias", img_channel: int = 3,
                       use_constyle: bool = True, constyle_train: bool = True,
                       constyle_kwargs: dict | None = None) -> RestorationUNet:
    """ConStyle-Restormer on the general template (release defaults: 15,574,960
    parameters in the inference build); ``use_constyle=False`` gives the same general
    network without ConStyle.

    ``heads[i]`` is used at encoder level i (widths d, 2d, 3d) and ``heads[3]`` in the
    bottleneck (4d); the decoder levels R1..R3 use ``decoder_heads`` (the release uses
    4, not 8, heads at R3 although it runs at the bottleneck's width).  Finetune is
    ``num_refinement_blocks`` one-head blocks at 2d, then a 3x3 conv.
    """
    if len(heads) != 4 or len(decoder_heads) != 3:
        raise ValueError("constyle_restormer needs 4 entries in heads and 3 in decoder_heads")

    def tb(channels: int, n_heads: int) -> TransformerBlock:
        return TransformerBlock(channels, num_heads=n_heads, ffn_expansion_factor=ffn_expansion_factor,
                                bias=bias, layernorm_type=layernorm_type)

    # Encoder and bottleneck blocks run at widths d, 2d, 3d, 4d: the width names the level.
    return build_general_unet(
        block=lambda c: tb(c, heads[c // width - 1]), width=width, left_blk_num=left_blk_num,
        bottom_blk_num=bottom_blk_num, right_blk_num=right_blk_num, img_channel=img_channel,
        use_constyle=use_constyle, constyle_train=constyle_train, constyle_kwargs=constyle_kwargs,
        affine_act="prelu", preprocess=OverlapPatchEmbed(img_channel, width, bias=bias),
        finetune_blocks=lambda c: tb(c, 1), finetune_blk_num=num_refinement_blocks,
        decoder_block=lambda c, level: tb(c, decoder_heads[level]))
