"""PSNR and SSIM as the authors' release computes them (BasicSR), plus the MATLAB
variants that the canonical benchmark scripts use.

BasicSR conventions (``basicsr/metrics/psnr_ssim.py``, used by the release's test YAMLs;
the book's fidelity page, "Evaluation protocols"), which :func:`psnr` and
:func:`ssim` follow:

* images are first clamped to [0, 1], scaled by 255 and rounded to uint8 (BasicSR's
  ``tensor2img``: round half to even, in the input's float precision);
* the arithmetic is float64, the peak is 255;
* the Y channel is BT.601 on [0, 1] input, ``Y = 16 + 65.481 R + 128.553 G + 24.966 B``,
  kept as a float on the 0-255 scale (not rounded).  BasicSR does this step in float32;
  we use float64 (the difference is far below 1e-4 dB);
* SSIM uses an 11x11 Gaussian window with sigma 1.5, K = (0.01, 0.03), 'valid'
  filtering (only windows fully inside the image), the mean of the map, then the mean
  over channels.

Agreement with scikit-image (tests/test_metrics.py): ``structural_similarity(
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)`` pads
with 'reflect' and then drops ``(win_size - 1) // 2 = 5`` pixels on each side before
averaging, which is exactly the 'valid' region of an 11x11 window: both agree to
rounding error, per channel and on Y.

Inputs: numpy ``HW``/``HWC`` arrays (uint8, or float in [0, 1]) or torch ``CHW``/
``BCHW`` float tensors in [0, 1].  A batch gives the mean over its images.
"""
from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch
from scipy import ndimage

__all__ = [
    "ImageLike",
    "to_uint8",
    "rgb_to_y",
    "rgb_to_y_matlab",
    "psnr",
    "ssim",
    "psnr_uint8",
    "ssim_uint8",
    "ssim_matlab",
    "gaussian_window",
    "ssim_map_valid",
]

ImageLike = Union[np.ndarray, torch.Tensor]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K = (0.01, 0.03)
PEAK = 255.0
# BT.601 luma on [0, 1] RGB input, output on the 0-255 scale (BasicSR's bgr2ycbcr y_only).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])
_Y_OFFSET = 16.0


# ----------------------------------------------------------------------------- input
def to_uint8(img: ImageLike, *, name: str = "image") -> np.ndarray:
    """Return ``img`` as a ``(N, H, W, C)`` uint8 stack, the way BasicSR's tensor2img
    rounds: clamp to [0, 1], multiply by 255 in the input's precision, round half to
    even.  Raises TypeError for unsupported dtypes and ValueError for bad shapes or
    non-finite values."""
    if isinstance(img, torch.Tensor):
        arr = _tensor_to_nhwc(img, name)
    elif isinstance(img, np.ndarray):
        arr = _array_to_nhwc(img, name)
    else:
        raise TypeError(f"{name}: expected a numpy array or a torch tensor, got {type(img).__name__}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {tuple(img.shape)})")
    if arr.dtype == np.uint8:
        return arr
    if not np.isfinite(arr).all():
        bad = "NaN" if np.isnan(arr).any() else "infinite values"
        raise ValueError(f"{name} contains {bad}")
    return np.round(np.clip(arr, 0, 1) * arr.dtype.type(255.0)).astype(np.uint8)


def _tensor_to_nhwc(t: torch.Tensor, name: str) -> np.ndarray:
    if t.dtype in (torch.uint8,):
        raise TypeError(f"{name}: uint8 tensors are ambiguous; pass a float tensor in [0, 1] "
                        "or a numpy uint8 array")
    if not t.is_floating_point():
        raise TypeError(f"{name}: expected a float tensor in [0, 1], got dtype {t.dtype}")
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[1] not in (1, 3):
        raise ValueError(f"{name}: expected a CHW or BCHW tensor with 1 or 3 channels, "
                         f"got shape {tuple(t.shape)}")
    t = t.detach().cpu()
    if t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    return t.permute(0, 2, 3, 1).numpy()


def _array_to_nhwc(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype != np.uint8 and a.dtype not in (np.float16, np.float32, np.float64):
        raise TypeError(f"{name}: expected uint8 or float (in [0, 1]) pixels, got dtype {a.dtype}")
    if a.dtype == np.float16:
        a = a.astype(np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        hint = " (numpy images are HWC, not CHW)" if a.ndim == 3 and a.shape[0] in (1, 3) else ""
        raise ValueError(f"{name}: expected an HW or HWC array with 1 or 3 channels, "
                         f"got shape {a.shape}{hint}")
    return a[None]


def _pair(a: ImageLike, b: ImageLike, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = to_uint8(a, name="first image"), to_uint8(b, name="second image")
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {_shape_str(x)} vs {_shape_str(y)}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border:
        if min(x.shape[1:3]) <= 2 * crop_border:
            raise ValueError(f"crop_border {crop_border} leaves nothing of a {_shape_str(x)} image")
        s = slice(crop_border, -crop_border)
        x, y = x[:, s, s], y[:, s, s]
    return x, y


def _shape_str(x: np.ndarray) -> str:
    n, h, w, c = x.shape
    return f"{h}x{w}x{c}" + (f" (batch {n})" if n > 1 else "")


# ----------------------------------------------------------------------------- colour
def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image on the 0-255 scale (uint8, or float) as float64 on
    the 0-255 scale, unrounded (BasicSR's ``to_y_channel``); ``...HW3`` -> ``...HW1``."""
    return (img.astype(np.float64) / 255.0) @ _Y_WEIGHTS[:, None] + _Y_OFFSET


def rgb_to_y_matlab(img: np.ndarray) -> np.ndarray:
    """MATLAB's ``rgb2ycbcr`` luma on a uint8 image: the same BT.601 formula, but the
    result is uint8, so it is rounded (half away from zero) and saturated
    (as Restormer's ``Deraining/evaluate_PSNR_SSIM.m`` sees it).  Returns uint8 ``...HW1``."""
    y = img.astype(np.float64) @ (_Y_WEIGHTS[:, None] / 255.0) + _Y_OFFSET
    return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)


def _channels(x: np.ndarray, y_channel: bool) -> np.ndarray:
    """float64 ``(N, H, W, C)``; Y only for 3-channel images, as BasicSR."""
    if y_channel and x.shape[-1] == 3:
        return rgb_to_y(x)
    return x.astype(np.float64)


# ----------------------------------------------------------------------------- PSNR
def psnr_uint8(x: np.ndarray, y: np.ndarray, *, peak: float = PEAK) -> float:
    """PSNR of two same-shape arrays already on the 0-``peak`` scale (float64 maths,
    ``inf`` for identical images)."""
    mse = np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else float(10.0 * np.log10(peak * peak / mse))


def psnr(a: ImageLike, b: ImageLike, *, crop_border: int = 0, y_channel: bool = False) -> float:
    """BasicSR's ``calculate_psnr`` (release test YAMLs: crop_border 0, RGB and Y).

    A batch returns the mean of the per-image PSNRs (``inf`` if any pair is identical).
    """
    x, y = _pair(a, b, crop_border)
    x, y = _channels(x, y_channel), _channels(y, y_channel)
    return float(np.mean([psnr_uint8(xi, yi) for xi, yi in zip(x, y)]))


# ----------------------------------------------------------------------------- SSIM
def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian (the separable factor of cv2/MATLAB's 2-D window)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-0.5 * x * x / (sigma * sigma))
    return k / k.sum()


def _ssim_from_moments(mu_x, mu_y, xx, yy, xy, data_range: float) -> np.ndarray:
    c1 = (SSIM_K[0] * data_range) ** 2
    c2 = (SSIM_K[1] * data_range) ** 2
    vx, vy, vxy = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * vxy + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (vx + vy + c2))


def ssim_map_valid(x: np.ndarray, y: np.ndarray, data_range: float = PEAK) -> np.ndarray:
    """SSIM map of two float64 2-D images over the 'valid' windows (Wang et al. 2004;
    BasicSR ``_ssim``; MATLAB ``filter2(..., 'valid')`` in Wang's ``ssim_index``)."""
    k = gaussian_window()
    r = (k.size - 1) // 2

    def filt(img: np.ndarray) -> np.ndarray:
        out = ndimage.correlate1d(img, k, axis=0, mode="constant")
        out = ndimage.correlate1d(out, k, axis=1, mode="constant")
        return out[r:-r, r:-r]

    return _ssim_from_moments(filt(x), filt(y), filt(x * x), filt(y * y), filt(x * y), data_range)


def ssim_uint8(x: np.ndarray, y: np.ndarray) -> float:
    """Mean over channels of the valid-window SSIM of two ``HWC`` arrays on the 0-255
    scale (float or uint8)."""
    if min(x.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, "
                         f"got {x.shape[0]}x{x.shape[1]}")
    x, y = x.astype(np.float64), y.astype(np.float64)
    return float(np.mean([ssim_map_valid(x[..., c], y[..., c]).mean() for c in range(x.shape[2])]))


def ssim(a: ImageLike, b: ImageLike, *, crop_border: int = 0, y_channel: bool = False) -> float:
    """BasicSR's ``calculate_ssim``: Gaussian 11x11 / sigma 1.5, valid windows, mean
    over channels.  A batch returns the mean over its images."""
    x, y = _pair(a, b, crop_border)
    x, y = _channels(x, y_channel), _channels(y, y_channel)
    return float(np.mean([ssim_uint8(xi, yi) for xi, yi in zip(x, y)]))


def ssim_matlab(x: np.ndarray, y: np.ndarray, *, data_range: float = PEAK) -> float:
    """MATLAB ``ssim(A, ref)`` on ``HW`` or ``HWC`` arrays (Restormer's GoPro/HIDE script).

    MATLAB treats every dimension as spatial: an M x N x 3 image is one volume,
    filtered by a separable 11x11x11 Gaussian (sigma 1.5 on every axis,
    ``imgaussfilt3``) with replicate padding, and the SSIM map over the *whole*
    volume (not just the valid part) is averaged.  A 2-D input gets the 2-D filter
    (``imgaussfilt``), also with replicate padding.
    """
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    x, y = x.astype(np.float64), y.astype(np.float64)
    if x.size == 0 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"ssim_matlab needs non-empty, finite images (shape {x.shape})")
    k = gaussian_window()

    def filt(img: np.ndarray) -> np.ndarray:
        for axis in range(img.ndim):
            img = ndimage.correlate1d(img, k, axis=axis, mode="nearest")
        return img

    return float(_ssim_from_moments(filt(x), filt(y), filt(x * x), filt(y * y), filt(x * y),
                                    data_range).mean())
