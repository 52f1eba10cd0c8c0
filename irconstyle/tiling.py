"""Tiled inference: restore an image of any size within a memory budget.

The image is cut into overlapping tiles; each tile is restored and blended back with
a smooth window (a raised-cosine ramp over the overlap on every side that has a
neighbour, 1 elsewhere), and the weighted sum is divided by the summed weights, as
in Restormer's demo (overlap + weighted accumulation).  The output matches the
untiled output closely but not exactly, because blocks with global operations see only
their tile.  Measured agreement with the untiled output (PSNR, tiny random models,
512x512, tile 128, overlap 32; tests/test_tiling.py): 78 dB for ConStyle-NAFNet (its
channel attention pools over the tile), 81 dB for the plain CNN, 38 dB for
ConStyle-Restormer (transposed attention is global over the tile), and only 17 dB for
ConStyle-MAXIM at 256x256: its grid gating mixes pixels spread over the whole image, so
a tile changes what it computes; tile MAXIM only when memory forces it, with large tiles.

ConStyle models: ConStyle's code is a *global* descriptor of the image, so it is
computed once on the whole (padded) image and shared by all tiles, exactly as the
untiled forward does.  Its feature maps are spatial (fea1 at H/2, fea2 at H/4, fea3
at H/8), so each tile gets the matching window of the full-image maps; tile origins
are therefore multiples of 8.  When the image has more than ``encode_max_pixels``
pixels, the encoder does not run on the whole image:

* the code comes from a copy downscaled (antialiased bilinear) to at most
  ``encode_max_pixels`` pixels: an approximation of the global descriptor;
* the feature maps come from running the encoder on each tile with a 32-pixel margin
  and cropping the margin away.  The encoder's feature maps have a receptive field of
  31 pixels, so with margins of 32 (and origins on multiples of 8, which keeps the
  stride-2 grids aligned) these crops equal the full-image maps up to rounding.
"""
from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .nets.padding import check_input, crop_to, pad_to_multiple

__all__ = ["tiled_forward", "tile_starts", "blend_window", "FEATURE_MARGIN"]

FEATURE_MARGIN = 32  # >= half the encoder's 31 px receptive field, a multiple of 8
DEFAULT_OVERLAP = 32
_FEATURE_STRIDES = (2, 4, 8)


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Origins of tiles of size ``tile`` covering ``[0, length)`` with step ``stride``;
    the last tile is flush with the end."""
    if tile >= length:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _ramp(n: int, ramp: int, left: bool, right: bool) -> Tensor:
    w = torch.ones(n, dtype=torch.float64)
    ramp = min(ramp, n // 2)
    if ramp > 0:
        r = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(ramp, dtype=torch.float64) + 0.5) / ramp)
        if left:
            w[:ramp] = r
        if right:
            w[n - ramp:] = r.flip(0)
    return w


def blend_window(h: int, w: int, ramp: int, *, top: bool, bottom: bool, left: bool,
                 right: bool) -> Tensor:
    """The separable blending weight of one tile: raised-cosine ramps of length
    ``ramp`` on the sides that overlap a neighbour (never zero, so every pixel keeps a
    positive total weight)."""
    return _ramp(h, ramp, top, bottom)[:, None] * _ramp(w, ramp, left, right)[None, :]


def _round_to(x: int, m: int) -> int:
    return max(m, int(round(x / m)) * m)


@torch.no_grad()
def tiled_forward(model: nn.Module, lq: Tensor, *, tile: int = 256, overlap: int | None = None,
                  encode_max_pixels: int = 2048 * 2048) -> Tensor:
    """Restore ``lq`` (BCHW) tile by tile; returns a tensor of lq's size.

    ``tile`` is rounded to a multiple of the model's ``size_factor`` (and of 8 for
    ConStyle models); ``overlap`` is the minimum overlap between neighbouring tiles
    and the length of the blending ramp (default: ``min(32, tile // 4)``).  Images no
    larger than one tile run untiled.  The model should be in eval mode.
    """
    if not isinstance(lq, Tensor):
        raise TypeError(f"expected a BCHW torch.Tensor, got {type(lq).__name__}")
    if lq.ndim != 4:
        raise ValueError(f"expected a BCHW tensor, got shape {tuple(lq.shape)}")
    # The ConStyle path calls the encoder and restore() directly, past the model's own
    # check: validate the whole image once here (channels, dtype, device, NaN/Inf).
    check_input(lq, int(getattr(model, "img_channel", lq.shape[1])),
                like=next(model.parameters(), None))
    try:
        tile = operator.index(tile)
        overlap = None if overlap is None else operator.index(overlap)
    except TypeError:
        raise TypeError(f"tile and overlap must be integers, got {tile!r} and {overlap!r}") from None
    if overlap is None:
        overlap = min(DEFAULT_OVERLAP, tile // 4)
    if tile <= 0 or overlap < 0:
        raise ValueError(f"tile must be positive and overlap non-negative, got {tile}, {overlap}")
    h, w = lq.shape[-2:]
    factor = int(getattr(model, "size_factor", 1))
    constyle = getattr(model, "constyle", None)
    if constyle is not None:
        if not hasattr(model, "restore"):
            raise TypeError(f"{type(model).__name__} has ConStyle but no restore(inp, code, "
                            "features): cannot share ConStyle's code across tiles")
        factor = math.lcm(factor, 8)
    tile = _round_to(tile, factor)
    if overlap >= tile:  # refused whatever the image's size, not only when it is tiled
        raise ValueError(f"overlap {overlap} must be smaller than the tile size {tile}")
    if h <= tile and w <= tile:
        return model(lq)
    if constyle is None:
        stride = max(1, tile - overlap)
        return _blend(lambda y, x, th, tw: model(lq[..., y:y + th, x:x + tw]),
                      lq, (h, w), tile, stride, overlap)

    inp = pad_to_multiple(lq, factor)
    hp, wp = inp.shape[-2:]
    stride = max(8, (tile - overlap) // 8 * 8)
    code, features = _global_encoding(constyle, inp, encode_max_pixels)

    def run(y: int, x: int, th: int, tw: int) -> Tensor:
        feats = (_crop_features(features, y, x, th, tw) if features is not None
                 else _local_features(constyle, inp, y, x, th, tw))
        return model.restore(inp[..., y:y + th, x:x + tw], code, feats)

    out = _blend(run, inp, (hp, wp), tile, stride, overlap)
    return crop_to(out, h, w)


def _blend(run, inp: Tensor, size: tuple[int, int], tile: int, stride: int, overlap: int) -> Tensor:
    hp, wp = size
    th, tw = min(tile, hp), min(tile, wp)
    out = torch.zeros(inp.shape[0], inp.shape[1], hp, wp, dtype=torch.float64, device=inp.device)
    weight = torch.zeros(hp, wp, dtype=torch.float64, device=inp.device)
    for y in tile_starts(hp, th, stride):
        for x in tile_starts(wp, tw, stride):
            win = blend_window(th, tw, overlap, top=y > 0, bottom=y + th < hp,
                               left=x > 0, right=x + tw < wp).to(inp.device)
            out[..., y:y + th, x:x + tw] += run(y, x, th, tw).double() * win
            weight[y:y + th, x:x + tw] += win
    return (out / weight).to(inp.dtype)


def _global_encoding(constyle: nn.Module, inp: Tensor, max_pixels: int):
    """(code, features) from the whole image, or (code of a downscaled copy, None)."""
    hp, wp = inp.shape[-2:]
    if hp * wp <= max_pixels:
        enc = constyle.encode(inp)
        return enc.code, enc.features
    scale = math.sqrt(max_pixels / (hp * wp))
    small = F.interpolate(inp, size=(max(8, int(hp * scale)), max(8, int(wp * scale))),
                          mode="bilinear", antialias=True, align_corners=False)
    return constyle.encode(pad_to_multiple(small, 8)).code, None


def _crop_features(features, y: int, x: int, th: int, tw: int) -> tuple[Tensor, ...]:
    return tuple(f[..., y // s:(y + th) // s, x // s:(x + tw) // s]
                 for f, s in zip(features, _FEATURE_STRIDES))


def _local_features(constyle: nn.Module, inp: Tensor, y: int, x: int, th: int,
                    tw: int) -> tuple[Tensor, ...]:
    """The full-image feature maps' window for one tile, computed on the tile plus a
    margin (clipped at the image border, where the full image has zero padding too)."""
    hp, wp = inp.shape[-2:]
    y0, x0 = max(0, y - FEATURE_MARGIN), max(0, x - FEATURE_MARGIN)
    y1, x1 = min(hp, y + th + FEATURE_MARGIN), min(wp, x + tw + FEATURE_MARGIN)
    feats = constyle.encode(inp[..., y0:y1, x0:x1]).features
    return _crop_features(feats, y - y0, x - x0, th, tw)
