"""Pad an input to the network's size factor and crop the output back, so callers
never see the constraint (fixes D2: only lq is padded, metrics see the true size)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["pad_to_multiple", "crop_to", "check_input"]


def pad_to_multiple(x: Tensor, factor: int, mode: str = "reflect") -> Tensor:
    """Pad H and W (bottom/right) up to a multiple of ``factor``.

    Reflect padding needs a pad smaller than the side it mirrors; a 5x7 image padded
    to 64 cannot be reflected, so the pad is applied in reflect steps while it fits and
    the remainder is filled by edge replication.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % factor, (-w) % factor
    if ph == 0 and pw == 0:
        return x
    if mode != "reflect":
        return F.pad(x, (0, pw, 0, ph), mode=mode)
    # Reflect as much as each side allows (pad < side), replicate the rest.
    rh, rw = min(ph, h - 1), min(pw, w - 1)
    if rh or rw:
        x = F.pad(x, (0, rw, 0, rh), mode="reflect")
    if ph - rh or pw - rw:
        x = F.pad(x, (0, pw - rw, 0, ph - rh), mode="replicate")
    return x


def crop_to(x: Tensor, height: int, width: int) -> Tensor:
    """Inverse of :func:`pad_to_multiple`."""
    return x[..., :height, :width]


def check_input(x: Tensor, channels: int) -> None:
    """Refuse what a restoration network cannot take, with a message that says why,
    instead of a shape error from deep inside a convolution."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a torch.Tensor image batch, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"expected an image batch of shape (B, {channels}, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"expected {channels} channels, got {x.shape[1]} (shape {tuple(x.shape)}); "
                         "convert grayscale or RGBA images to RGB first")
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point image in [0, 1], got dtype {x.dtype}; "
                        "divide uint8 images by 255")
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"empty image batch of shape {tuple(x.shape)}")
