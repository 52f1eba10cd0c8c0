"""Pad an input to the network's size factor and crop the output back, so callers
never see the constraint (fixes D2: only lq is padded, metrics see the true size)."""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["PadMode", "pad_to_multiple", "crop_to", "check_input", "finite_check"]


PadMode = Literal["reflect", "zeros", "constant", "replicate", "circular"]
_FINITE_CHECK: contextvars.ContextVar[bool] = contextvars.ContextVar("irconstyle_finite_check",
                                                                     default=True)


@contextlib.contextmanager
def finite_check(enabled: bool) -> Iterator[None]:
    """Turn :func:`check_input`'s NaN/infinity check on or off inside the block.

    The check reads one number back from the device, which makes a GPU wait for the
    step it is running; the trainer turns it off for its training step, whose images
    were checked when they were read and whose loss it checks at every log step.
    Everything else (inference, evaluation, the CLI) keeps it."""
    token = _FINITE_CHECK.set(enabled)
    try:
        yield
    finally:
        _FINITE_CHECK.reset(token)



def pad_to_multiple(x: Tensor, factor: int, mode: PadMode = "reflect") -> Tensor:
    """Pad H and W (bottom/right) up to a multiple of ``factor``.

    ``mode="zeros"`` (or ``"constant"``) fills with 0, what the original NAFNet's
    ``check_image_size`` does; other modes are ``F.pad``'s.  Reflect padding needs a pad
    smaller than the side it mirrors; a 5x7 image padded to 64 cannot be reflected, so the
    pad is applied in reflect steps while it fits and the remainder is filled by edge
    replication.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % factor, (-w) % factor
    if ph == 0 and pw == 0:
        return x
    if mode in ("zeros", "constant"):
        return F.pad(x, (0, pw, 0, ph), mode="constant", value=0.0)
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


def check_input(x: Tensor, channels: int, *, like: Tensor | None = None) -> None:
    """Refuse what a restoration network cannot take, with a message that says why,
    instead of a shape or dtype error from deep inside a convolution.

    ``like`` (one of the model's parameters) adds the dtype and device checks.  NaN or
    infinite pixels are refused too: they would silently give a NaN image (one
    reduction over the input, negligible beside a forward; skipped while
    ``torch.compile`` traces, so the check adds no graph break; off inside
    :func:`finite_check` ``(False)``).
    """
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
    if like is not None:
        if x.device != like.device:
            raise ValueError(f"the image is on {x.device} but the model is on {like.device}; "
                             f"move one of them (x.to({str(like.device)!r}))")
        if x.dtype != like.dtype and not _autocast_enabled(x.device.type):
            raise TypeError(f"the image is {x.dtype} but the model's weights are {like.dtype}; "
                            f"convert the image (x.to({like.dtype})) or the model")
    if _FINITE_CHECK.get() and not _compiling() and not _all_finite(x):
        raise ValueError(f"the image batch of shape {tuple(x.shape)} contains NaN or infinite "
                         "values")


def _all_finite(x: Tensor) -> bool:
    """Whether every element is finite, without an image-sized boolean mask: a sum is
    NaN or infinite when any element is (summed in at least float32, so that half
    precision sums of ordinary images do not overflow); only a non-finite sum, which
    huge finite values could also give, is confirmed element by element."""
    total = x.sum(dtype=torch.promote_types(x.dtype, torch.float32))
    return bool(torch.isfinite(total)) or bool(torch.isfinite(x).all())


def _autocast_enabled(device_type: str) -> bool:
    """Under autocast a convolution casts its inputs itself: mixed dtypes are fine."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())
