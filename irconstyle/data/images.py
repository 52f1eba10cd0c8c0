"""Clean colour photos bundled with scikit-image, read offline, plus real scene depth.

The files are read straight from ``skimage.data.data_dir`` with Pillow. The
``skimage.data.<name>()`` loaders are not used: they look in the pooch cache first and
some of them download, and the project must work without pooch or a network.

Downscaling (``max_side``) uses antialiased bicubic resampling and re-quantises to 8-bit
levels, so a downscaled photo is still an ordinary 8-bit image (write it to PNG and read
it back: identical values).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .io import ImageError, read_image

__all__ = ["PHOTOS", "photo_names", "photo_path", "load_photo", "downscale", "motorcycle_depth",
           "MOTORCYCLE_CALIBRATION"]

#: name -> (file in skimage/data, licence as stated in the loader's docstring)
PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("astronaut.png", "public domain (NASA)"),
    "chelsea": ("chelsea.png", "CC0 (Stefan van der Walt)"),
    "coffee": ("coffee.png", "CC0 (Rachel Michetti)"),
    "rocket": ("rocket.jpg", "public domain (SpaceX)"),
    "hubble_deep_field": ("hubble_deep_field.jpg", "public domain (NASA)"),
    "immunohistochemistry": ("ihc.png", "no known copyright restrictions"),
    "retina": ("retina.jpg", "CC0 (Hacker et al.)"),
    "motorcycle_left": ("motorcycle_left.png", "Middlebury 2014 (Scharstein et al., GCPR 2014)"),
    "motorcycle_right": ("motorcycle_right.png", "Middlebury 2014 (Scharstein et al., GCPR 2014)"),
}

#: Middlebury calibration of the motorcycle pair (skimage docstring): focal length (px),
#: baseline (mm) and disparity offset (px); depth Z = f * B / (d + doffs).
MOTORCYCLE_CALIBRATION: dict[str, float] = {"focal_px": 994.978, "baseline_mm": 193.001,
                                            "doffs_px": 31.086}


def _data_dir() -> Path:
    import skimage  # the package, not skimage.data (whose import is lazy and harmless)
    return Path(skimage.__file__).parent / "data"


def photo_names() -> tuple[str, ...]:
    return tuple(PHOTOS)


def photo_path(name: str) -> Path:
    if name not in PHOTOS:
        raise KeyError(f"unknown photo {name!r}; choose from {', '.join(PHOTOS)}")
    path = _data_dir() / PHOTOS[name][0]
    if not path.is_file():
        raise ImageError(f"{path}: bundled scikit-image photo missing (scikit-image "
                         f"installed without its data files?)")
    return path


def _target_size(h: int, w: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(h, w) <= max_side:
        return h, w
    s = max_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    y = F.interpolate(x.unsqueeze(0), size=size, mode="bicubic", antialias=True,
                      align_corners=False)[0]
    return y


def downscale(img: Tensor, max_side: int | None) -> Tensor:
    """``img`` (3, H, W) with its longer side at most ``max_side`` (antialiased bicubic,
    re-quantised to 8-bit levels); returned as is when already small enough or None.
    The one resize rule of every photo collection, so a prepared PNG equals the photo
    loaded here at the same ``max_side``."""
    size = _target_size(*img.shape[-2:], max_side)
    if size != tuple(img.shape[-2:]):
        img = _resize(img, size).clamp(0, 1).mul(255).round().div(255)  # 8-bit levels
    return img


@functools.lru_cache(maxsize=32)
def _load_photo_cached(name: str, max_side: int | None) -> Tensor:
    return downscale(read_image(photo_path(name)), max_side)


def load_photo(name: str, *, max_side: int | None = None) -> Tensor:
    """A bundled photo as float32 (3, H, W) in [0, 1], its longer side at most
    ``max_side`` (None: full size). Returns a fresh copy (safe to modify)."""
    return _load_photo_cached(name, max_side).clone()


@functools.lru_cache(maxsize=8)
def _depth_cached(max_side: int | None) -> Tensor:
    path = _data_dir() / "motorcycle_disp.npz"
    if not path.is_file():
        raise ImageError(f"{path}: bundled motorcycle disparity missing")
    with np.load(path) as npz:
        disp = np.asarray(npz[npz.files[0]], dtype=np.float64)
    c = MOTORCYCLE_CALIBRATION
    depth = c["focal_px"] * c["baseline_mm"] / (disp + c["doffs_px"]) / 1000.0
    valid = np.isfinite(depth) & (depth > 0)
    # Invalid (+inf disparity) pixels are occlusions; give them the farthest valid depth.
    depth = np.where(valid, depth, depth[valid].max())
    d = torch.from_numpy(depth.astype(np.float32))
    size = _target_size(*d.shape, max_side)
    if size != tuple(d.shape):
        d = F.interpolate(d[None, None], size=size, mode="area")[0, 0]
    return d


def motorcycle_depth(*, max_side: int | None = None) -> Tensor:
    """Metric depth (H, W) in metres of ``motorcycle_left``, from the Middlebury ground-truth
    disparity: Z = f B / (d + doffs), about 2.1-5.0 m; occluded pixels (disparity +inf)
    get the largest valid depth. Resized (area averaging) like the photo for the same
    ``max_side``."""
    return _depth_cached(max_side).clone()
