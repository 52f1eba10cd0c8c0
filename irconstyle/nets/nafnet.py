"""NAFNet's block and the published NAFNet (Chen et al., 2022).

``NAFBlock`` is the block type plugged into the general restoration network;
``NAFNet`` is the original four-level network used as the release's baseline.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .padding import check_input, crop_to, pad_to_multiple
from .unet import TrainOutput, build_general_unet

__all__ = ["LayerNorm2d", "SimpleGate", "NAFBlock", "NAFNet", "constyle_nafnet"]


class _ChannelNorm(torch.autograd.Function):
    """Normalise over dim 1 with a hand-written backward: autograd's graph of the
    same formula (mean, subtract, square, mean, sqrt, divide, affine) costs ~20% more
    in NAFNet's CPU training step (torch.profiler: its divisions and negations).

    With ``y = (x - mean) * rstd`` and ``g = grad * weight``:
    ``dx = rstd * (g - mean(g) - y * mean(g * y))``, means over channels."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
        xc = x - x.mean(1, keepdim=True)
        rstd = (xc * xc).mean(1, keepdim=True).add_(eps).rsqrt_()
        y = xc.mul_(rstd)
        ctx.save_for_backward(y, rstd, weight)
        return torch.addcmul(bias.view(1, -1, 1, 1), y, weight.view(1, -1, 1, 1))

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        y, rstd, weight = ctx.saved_tensors
        g = grad * weight.view(1, -1, 1, 1)
        mean_gy = (g * y).mean(1, keepdim=True)
        gx = (g - g.mean(1, keepdim=True)).sub_(y * mean_gy).mul_(rstd)
        return gx, (grad * y).sum((0, 2, 3)), grad.sum((0, 2, 3)), None


class LayerNorm2d(nn.Module):
    """LayerNorm over channels of an NCHW tensor (eps 1e-6, affine).

    A channels_last input goes through ``F.layer_norm`` on its NHWC view (one fused
    kernel, no copy); any other layout through :class:`_ChannelNorm`.  Same formula
    either way (biased variance, eps inside the square root)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last):
            y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
            return y.permute(0, 3, 1, 2)
        return _ChannelNorm.apply(x, self.weight, self.bias, self.eps)


class SimpleGate(nn.Module):
    """Split channels in halves and multiply them: a parameter-free nonlinearity."""

    def forward(self, x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """Nonlinear-activation-free block: LN, 1x1, depthwise 3x3, SimpleGate, simplified
    channel attention, then an LN/SimpleGate FFN; both branches scaled by zero-initialised
    beta/gamma so a fresh block is the identity."""

    def __init__(self, channels: int, *, dw_expand: int = 2, ffn_expand: int = 2) -> None:
        super().__init__()
        c, dw, ffn = channels, channels * dw_expand, channels * ffn_expand
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.sg = SimpleGate()
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp: Tensor) -> Tensor:
        x = self.sg(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + x * self.gamma


def _blocks(n: int, channels: int) -> nn.Sequential:
    return nn.Sequential(*[NAFBlock(channels) for _ in range(n)])


class NAFNet(nn.Module):
    """The published NAFNet: additive skips, width doubling with 2x2 strided convs,
    1x1+PixelShuffle upsampling.  With ``len(enc_blk_nums)`` levels the size factor is
    ``2**levels`` (16 for the release's four-level baseline).

    ``pad_mode`` is how an input is padded (right and bottom) to the size factor inside
    the forward, before the output is cropped back.  ``"zeros"`` (default) is the
    release's and the published NAFNet's ``check_image_size``; it matters beyond the
    border, since every NAFBlock's channel attention averages over the padded map, so
    the whole output depends on it.  ``"reflect"`` is the padding of this package's
    other networks.
    """

    def __init__(self, *, img_channel: int = 3, width: int = 64, middle_blk_num: int = 7,
                 enc_blk_nums: tuple[int, ...] = (5, 6, 7, 7),
                 dec_blk_nums: tuple[int, ...] = (5, 6, 7, 7),
                 pad_mode: Literal["zeros", "reflect"] = "zeros") -> None:
        super().__init__()
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError("enc_blk_nums and dec_blk_nums must have the same length")
        if pad_mode not in ("zeros", "reflect"):
            raise ValueError(f"pad_mode must be 'zeros' (the release's) or 'reflect', got {pad_mode!r}")
        self.pad_mode = pad_mode
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        self.encoders, self.decoders = nn.ModuleList(), nn.ModuleList()
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        c = width
        for n in enc_blk_nums:
            self.encoders.append(_blocks(n, c))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle_blks = _blocks(middle_blk_num, c)
        for n in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(_blocks(n, c))
        self.size_factor = 2 ** len(enc_blk_nums)
        self.constyle = None  # the uniform model API: no ConStyle in the original network

    def forward(self, lq: Tensor, gt: Tensor | None = None) -> Tensor | TrainOutput:
        """Restore ``lq``; with ``gt`` (the trainer's uniform call) return a
        :class:`TrainOutput` without ConStyle outputs."""
        check_input(lq, self.intro.in_channels, like=self.intro.weight)
        h, w = lq.shape[-2:]
        inp = pad_to_multiple(lq, self.size_factor, mode=self.pad_mode)
        x = self.intro(inp)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for dec, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = dec(up(x) + skip)
        out = crop_to(self.ending(x) + inp, h, w)
        return TrainOutput(out, None) if gt is not None else out


def constyle_nafnet(*, width: int = 48, left_blk_num: tuple[int, ...] = (7, 8, 9),
                    bottom_blk_num: int = 9, right_blk_num: tuple[int, ...] = (7, 8, 9),
                    img_channel: int = 3, use_constyle: bool = True, constyle_train: bool = True,
                    constyle_kwargs: dict | None = None):
    """ConStyle-NAFNet (the release's defaults: 12,739,872 parameters in the inference
    build); ``use_constyle=False`` gives the same general network without ConStyle."""
    return build_general_unet(block=NAFBlock, width=width, left_blk_num=left_blk_num,
                              bottom_blk_num=bottom_blk_num, right_blk_num=right_blk_num,
                              img_channel=img_channel, use_constyle=use_constyle,
                              constyle_train=constyle_train, constyle_kwargs=constyle_kwargs)
