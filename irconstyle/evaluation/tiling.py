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
computed once and shared by all tiles, as the untiled forward does.  Its feature maps
are spatial (fea1 at H/2, fea2 at H/4, fea3 at H/8), so each tile gets the matching
window of the full-image maps; tile origins are therefore multiples of 8.  The
encoder never runs on more than ``encode_max_pixels`` pixels, so the footprint is
bounded whatever the image's size (issue 18.4; only the image buffers grow):

* up to ``encode_max_pixels`` (default 1024 x 1024) the code and the feature maps come
  from the whole image, exactly as untiled;
* beyond, the code comes from a copy downscaled (antialiased bilinear) to at most
  ``encode_max_pixels`` pixels (:func:`bounded_code`): an approximation of the global
  descriptor (its agreement with the whole-image code is measured in
  benchmarks/tiling_memory.py);
* and the feature maps from running the encoder on each tile with a 32-pixel margin
  and cropping the margin away.  The encoder's feature maps have a receptive field of
  31 pixels, so with margins of 32 (and origins on multiples of 8, which keeps the
  stride-2 grids aligned) these crops equal the full-image maps up to rounding.

Memory beyond the input: one output buffer of the image's size (float32 accumulation),
divided in place by the summed blending weights, which are separable and kept as two
vectors; the image padded to the size factor is never built (each tile gathers its own
padded window, :func:`padded_window`).  Everything else is per tile.

:func:`check_untiled_fits` is what an untiled restoration asks first: an estimate of
the forward's memory (from the widest activation of a small probe forward, scaled to the
image) against the memory available, refused with a message suggesting ``--tile``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import operator
import os
import sys
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nets.padding import check_input, crop_to, pad_to_multiple

__all__ = ["tiled_forward", "tile_starts", "blend_window", "FEATURE_MARGIN", "ENCODE_MAX_PIXELS",
           "estimate_forward_bytes", "available_memory_bytes", "check_untiled_fits",
           "ImageTooLargeError", "bounded_code", "padded_window", "return_freed_memory"]

FEATURE_MARGIN = 32  # >= half the encoder's 31 px receptive field, a multiple of 8
DEFAULT_OVERLAP = 32
ENCODE_MAX_PIXELS = 1024 * 1024  # the most pixels ConStyle's encoder sees at once when tiling
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
                  encode_max_pixels: int = ENCODE_MAX_PIXELS) -> Tensor:
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

    # The tiles lie on the grid of the image padded to the size factor, as the untiled
    # forward pads it; the padded image is never materialised (it would be one more
    # image-sized buffer): each tile reads its window with the padding applied locally.
    mode = getattr(model, "pad_mode", "reflect")
    rows, cols = _padded_index(h, factor, mode), _padded_index(w, factor, mode)
    hp, wp = len(rows), len(cols)
    stride = max(8, (tile - overlap) // 8 * 8)
    if hp * wp <= encode_max_pixels:  # small enough: everything from the whole image
        inp = padded_window(lq, rows, cols)
        enc = constyle.encode(inp)
        code, features = enc.code, enc.features

        def window(y0: int, y1: int, x0: int, x1: int) -> Tensor:
            return inp[..., y0:y1, x0:x1]
    else:
        code, features = bounded_code(constyle, lq, encode_max_pixels), None

        def window(y0: int, y1: int, x0: int, x1: int) -> Tensor:
            return padded_window(lq, rows[y0:y1], cols[x0:x1])

    def run(y: int, x: int, th: int, tw: int) -> Tensor:
        feats = (_crop_features(features, y, x, th, tw) if features is not None
                 else _margin_features(constyle, window, (hp, wp), y, x, th, tw))
        return model.restore(window(y, y + th, x, x + tw), code, feats)

    return _blend(run, lq, (hp, wp), tile, stride, overlap)


def _padded_index(n: int, factor: int, mode: str) -> Tensor:
    """For each position of an axis of length ``n`` padded (at the end) to a multiple
    of ``factor`` by :func:`pad_to_multiple` in ``mode``: the source position it copies,
    or -1 where it is a zero.  Padding an index ramp gives exactly the gather that
    padding the image does (reflect, its replicate fallback, or zeros)."""
    ramp = torch.arange(1, n + 1, dtype=torch.float64).view(1, 1, 1, n)
    return pad_to_multiple(ramp, factor, mode=mode)[0, 0, 0].long() - 1  # row 0: the ramp


def padded_window(lq: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """The window of the padded image at positions ``rows`` x ``cols`` (from
    :func:`_padded_index`): a view where it lies inside ``lq``, else a gathered copy of
    the window only."""
    r0, c0 = int(rows[0]), int(cols[0])
    inside_r = bool(((rows - r0) == torch.arange(len(rows))).all()) and r0 >= 0
    inside_c = bool(((cols - c0) == torch.arange(len(cols))).all()) and c0 >= 0
    out = lq[..., r0:r0 + len(rows), :] if inside_r else lq.index_select(-2, rows.clamp(min=0).to(lq.device))
    out = out[..., c0:c0 + len(cols)] if inside_c else out.index_select(-1, cols.clamp(min=0).to(lq.device))
    if not inside_r and bool((rows < 0).any()):
        out[..., (rows < 0).to(lq.device), :] = 0
    if not inside_c and bool((cols < 0).any()):
        out[..., (cols < 0).to(lq.device)] = 0
    return out


def _blend(run, inp: Tensor, size: tuple[int, int], tile: int, stride: int, overlap: int) -> Tensor:
    """Blend ``run(y, x, th, tw)``'s tiles over the grid of ``size`` (the image, or the
    image padded to the size factor) into an output of ``inp``'s size.  The summed
    weights are separable (every tile's window is a product of a row and a column ramp,
    and the grid is a product of row and column origins), so they are two vectors, not
    a plane; the output is the only image-sized buffer."""
    hp, wp = size
    h, w = inp.shape[-2:]
    th, tw = min(tile, hp), min(tile, wp)
    acc = torch.promote_types(inp.dtype, torch.float32)  # never accumulate in half precision
    out = torch.zeros(inp.shape[0], inp.shape[1], h, w, dtype=acc, device=inp.device)
    ys, xs = tile_starts(hp, th, stride), tile_starts(wp, tw, stride)
    rys = [_ramp(th, overlap, y > 0, y + th < hp) for y in ys]
    rxs = [_ramp(tw, overlap, x > 0, x + tw < wp) for x in xs]
    wy = torch.zeros(hp, dtype=torch.float64)
    wx = torch.zeros(wp, dtype=torch.float64)
    for y, ry in zip(ys, rys):
        wy[y:y + th] += ry
    for x, rx in zip(xs, rxs):
        wx[x:x + tw] += rx
    for y, ry in zip(ys, rys):
        for x, rx in zip(xs, rxs):
            win = (ry[:, None] * rx[None, :]).to(inp.device, acc)  # blend_window(...) of this tile
            ch, cw = min(th, h - y), min(tw, w - x)  # the part inside the image
            out[..., y:y + ch, x:x + cw].addcmul_(run(y, x, th, tw)[..., :ch, :cw], win[:ch, :cw])
    out.div_(wy[:h, None].to(inp.device, acc)).div_(wx[:w].to(inp.device, acc))
    return out.to(inp.dtype)


def bounded_code(constyle: nn.Module, lq: Tensor, max_pixels: int) -> Tensor:
    """ConStyle's code of ``lq`` with the encoder seeing at most ``max_pixels`` pixels:
    the whole image when it fits, else a copy downscaled (antialiased bilinear, aspect
    kept) to fit, padded to a multiple of 8."""
    h, w = lq.shape[-2:]
    if h * w > max_pixels:
        scale = math.sqrt(max_pixels / (h * w))
        size = (max(8, int(h * scale) // 8 * 8), max(8, int(w * scale) // 8 * 8))
        lq = F.interpolate(lq, size=size, mode="bilinear", antialias=True, align_corners=False)
    return constyle.encode(pad_to_multiple(lq, 8)).code


def _crop_features(features, y: int, x: int, th: int, tw: int) -> tuple[Tensor, ...]:
    return tuple(f[..., y // s:(y + th) // s, x // s:(x + tw) // s]
                 for f, s in zip(features, _FEATURE_STRIDES))


def _margin_features(constyle: nn.Module, window, size: tuple[int, int], y: int, x: int,
                     th: int, tw: int) -> tuple[Tensor, ...]:
    """The full-image feature maps' window for one tile, computed on the tile plus a
    margin (clipped at the border of the padded image of ``size``, where the full image
    has zero padding too); ``window(y0, y1, x0, x1)`` reads the padded image."""
    hp, wp = size
    y0, x0 = max(0, y - FEATURE_MARGIN), max(0, x - FEATURE_MARGIN)
    y1, x1 = min(hp, y + th + FEATURE_MARGIN), min(wp, x + tw + FEATURE_MARGIN)
    feats = constyle.encode(window(y0, y1, x0, x1)).features
    return _crop_features(feats, y - y0, x - x0, th, tw)


def _local_features(constyle: nn.Module, inp: Tensor, y: int, x: int, th: int,
                    tw: int) -> tuple[Tensor, ...]:
    """:func:`_margin_features` of an image already padded to the size factor."""
    return _margin_features(constyle, lambda y0, y1, x0, x1: inp[..., y0:y1, x0:x1],
                            tuple(inp.shape[-2:]), y, x, th, tw)


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


def return_freed_memory(threshold: int = 1 << 20) -> bool:
    """Make glibc give large freed buffers back to the system at once, for a process that
    restores huge images tile by tile.  glibc raises its mmap threshold after every free
    of a mapped buffer (up to 32 MiB), so a tile's activations, freed and reallocated
    hundreds of times, end up in a heap that fragments and keeps growing with the number
    of tiles (measured in benchmarks/tiling_memory.py).  A fixed threshold stops that, at
    a price in time: every large buffer is then freshly mapped and zeroed (measured about
    twice the time of a tiny model's tiled restoration).  Process-wide, so only
    ``irconstyle restore --low-memory`` calls it; returns whether it applied (False off
    glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))
    except (OSError, AttributeError):
        return False


# ----------------------------------------------------------------------------- untiled memory
_PER_PIXEL: "weakref.WeakKeyDictionary[nn.Module, float]" = weakref.WeakKeyDictionary()
# Live tensors at the peak of a no-grad forward, in units of the widest activation:
# its input and output, the encoder skips and ConStyle's maps.  4 is an uncalibrated
# allowance (not yet checked against measured peaks for every model).
_WIDEST_ACTIVATIONS = 4.0


def _bytes_per_pixel(model: nn.Module) -> float:
    """Bytes of the widest activation per input pixel, from one small probe forward
    (forward hooks on leaf modules); cached per model."""
    if model in _PER_PIXEL:
        return _PER_PIXEL[model]
    factor = int(getattr(model, "size_factor", 1))
    side = max(64, 2 * factor)
    param = next(model.parameters(), None)
    probe = torch.rand(1, int(getattr(model, "img_channel", 3)), side, side,
                       dtype=param.dtype if param is not None else torch.float32,
                       device=param.device if param is not None else "cpu")
    widest = 0

    def hook(_module, _inputs, output) -> None:
        nonlocal widest
        if isinstance(output, Tensor):
            widest = max(widest, output.numel() * output.element_size())

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for h in handles:
            h.remove()
    _PER_PIXEL[model] = widest / (side * side)
    return _PER_PIXEL[model]


def estimate_forward_bytes(model: nn.Module, height: int, width: int, batch: int = 1) -> int:
    """Estimated peak memory of an untiled no-grad forward on a (batch, C, H, W) image:
    ``_WIDEST_ACTIVATIONS`` times its widest activation, plus the input and output."""
    factor = int(getattr(model, "size_factor", 1))
    pixels = batch * (-(-height // factor) * factor) * (-(-width // factor) * factor)
    images = 2 * batch * 3 * height * width * 4
    return int(_WIDEST_ACTIVATIONS * _bytes_per_pixel(model) * pixels + images)


def available_memory_bytes(device: torch.device | str = "cpu") -> int | None:
    """Memory a forward may still use: free GPU memory on CUDA, ``MemAvailable`` of
    /proc/meminfo on Linux, else free pages from ``os.sysconf``; None when unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _human(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


class ImageTooLargeError(MemoryError, ValueError):
    """An untiled forward that would not fit in memory (a ValueError too, so the CLI
    reports it as a bad input rather than an internal error)."""


def check_untiled_fits(model: nn.Module, lq: Tensor, *, available: int | None = None) -> None:
    """Refuse an untiled forward whose estimated memory exceeds what is available,
    instead of letting the process be killed; ``available`` overrides the query."""
    if available is None:
        available = available_memory_bytes(lq.device)
    if available is None:
        return
    need = estimate_forward_bytes(model, lq.shape[-2], lq.shape[-1], batch=lq.shape[0])
    if need > available:
        raise ImageTooLargeError(
            f"restoring this {lq.shape[-1]}x{lq.shape[-2]} image in one piece needs about "
            f"{_human(need)}, but only {_human(available)} is available; "
            "restore it in tiles instead (--tile 512, or tile=512 in Python)")
