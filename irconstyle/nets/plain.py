"""A plain-CNN block for the general restoration network: the template in its
simplest form, close to ConStyle v2's ``ConStyleConv`` / ``OriginConv``.

Like ConStyleConv: d = 48, one residual block of two Conv3x3 + PReLU per level,
Preprocess Conv3x3 + PReLU, PReLU affine transforms.  Unlike it: the Finetune head is
the template's single Conv3x3 (2d -> 3), where ConStyleConv uses Conv3x3(2d -> d) +
PReLU, Conv3x3(d -> 3) + PReLU; no authors' checkpoint exists for either.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from ..method.constyle import ConvAct
from .unet import RestorationUNet, build_general_unet

__all__ = ["PlainBlock", "constyle_plain"]


class PlainBlock(nn.Module):
    """x + PReLU(Conv3x3(PReLU(Conv3x3(x)))): a residual pair of conv + PReLU, so
    that deep stacks of the block start near the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvAct(channels, channels, act="prelu"),
                                  ConvAct(channels, channels, act="prelu"))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def constyle_plain(*, width: int = 48, left_blk_num: Sequence[int] = (1, 1, 1),
                   bottom_blk_num: int = 1, right_blk_num: Sequence[int] = (1, 1, 1),
                   img_channel: int = 3, use_constyle: bool = True, constyle_train: bool = True,
                   constyle_kwargs: dict | None = None) -> RestorationUNet:
    """ConStyle on a plain-CNN U-Net (``use_constyle=False``: the same network without
    ConStyle, the zoo's ``plain``)."""
    return build_general_unet(
        block=PlainBlock, width=width, left_blk_num=left_blk_num, bottom_blk_num=bottom_blk_num,
        right_blk_num=right_blk_num, img_channel=img_channel, use_constyle=use_constyle,
        constyle_train=constyle_train, constyle_kwargs=constyle_kwargs, affine_act="prelu",
        preprocess=ConvAct(img_channel, width, act="prelu"))
