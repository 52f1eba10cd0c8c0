"""Scoring protocols: one table of per-benchmark conventions, and the function that
scores a restored image under them.

Three protocols (issue 9.2), each reporting PSNR and SSIM on RGB **and** on Y:

``release``
    What the authors' code does (the release's test YAMLs and datasets; fidelity row D2):
    lq **and** gt reflect-padded (bottom/right) to a multiple of 8 (64 for MAXIM),
    the output is never cropped back, and BasicSR's metrics (crop 0) are computed on
    the padded images.  Use it to compare with the paper's numbers.
``basicsr``
    The same BasicSR metrics on the true image size: only lq is padded (inside the
    model) and the output is cropped back (the fix of D2).
``canonical``
    The community's script for each benchmark (Restormer's and MAXIM's evaluation
    scripts; the book's fidelity page, "Evaluation protocols"): RGB for
    denoising, dehazing and deblurring (MATLAB's volumetric SSIM on GoPro/HIDE,
    ECC-aligned and masked on RealBlur), Y from MATLAB's rounded ``rgb2ycbcr`` with
    Wang's ``SSIM_index`` for deraining.  ``primary`` names the pair those tables
    publish; the other pair is computed in the same spirit (documented per scorer).

``minibench_*`` (our offline synthetic sets) have no community script: all three
protocols score them with BasicSR's metrics (``canonical`` = ``basicsr``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .ecc import realblur_align, realblur_scores
from .metrics import (psnr_uint8, rgb_to_y, rgb_to_y_matlab, ssim_map_valid, ssim_matlab,
                      ssim_uint8)

__all__ = ["PROTOCOLS", "Convention", "Benchmark", "BENCHMARKS", "ALIASES", "convention",
           "canonical_name", "score", "benchmark_names"]

PROTOCOLS = ("release", "basicsr", "canonical")
Scorer = Literal["basicsr", "matlab", "matlab_y", "realblur"]


@dataclass(frozen=True)
class Convention:
    """How one benchmark is scored under one protocol.

    ``pad_gt``: pad gt like lq and score the uncropped output (the release's D2).
    ``scorer``: ``basicsr`` (``metrics.psnr/ssim``), ``matlab`` (MATLAB ``psnr`` and
    volumetric ``ssim``), ``matlab_y`` (MATLAB ``rgb2ycbcr`` + Wang's ``SSIM_index``),
    ``realblur`` (ECC alignment, valid mask, masked metrics).
    ``primary``: the pair ("rgb" or "y") the protocol's published tables use.
    ``source``: where the convention is documented.
    """

    protocol: str
    scorer: Scorer
    primary: Literal["rgb", "y"]
    source: str
    pad_gt: bool = False


RELEASE = Convention(
    "release", "basicsr", "rgb", pad_gt=True,
    source="release options/test/*.yml + data/image_datasets.py "
           "(github.com/Dongqi-Fan/IRConStyle), book/fidelity.md D2: BasicSR "
           "calculate_psnr/ssim, crop 0, RGB and Y, on lq/gt reflect-padded to the size "
           "factor; which pair the paper's tables report is not known here, RGB is listed "
           "first")
BASICSR = Convention(
    "basicsr", "basicsr", "rgb",
    source="book/fidelity.md D2, fixed: pad lq only, crop the output back, "
           "BasicSR metrics with crop 0")

_DENOISE = Convention(
    "canonical", "basicsr", "rgb",
    source="Restormer Denoising/evaluate_gaussian_color_denoising.py "
           "(github.com/swz30/Restormer): RGB uint8 PSNR, border 0; SSIM not reported "
           "there (per-channel Gaussian 11/1.5 valid is the one available)")
_GOPRO_HIDE = Convention(
    "canonical", "matlab", "rgb",
    source="Restormer Motion_Deblurring/evaluate_gopro_hide.m (github.com/swz30/Restormer): "
           "MATLAB psnr/ssim on uint8 RGB, no crop; MATLAB ssim treats MxNx3 as a volume "
           "(3-D Gaussian filter)")
_REALBLUR = Convention(
    "canonical", "realblur", "rgb",
    source="Restormer Motion_Deblurring/evaluate_realblur.py (github.com/swz30/Restormer; "
           "the RealBlur protocol): intensity matching, ECC homography (100 iterations), "
           "valid mask, masked PSNR and skimage Gaussian SSIM with a 5 px border, RGB in [0, 1]")
_DERAIN = Convention(
    "canonical", "matlab_y", "y",
    source="Restormer Deraining/evaluate_PSNR_SSIM.m (github.com/swz30/Restormer): "
           "Y of MATLAB rgb2ycbcr (uint8, rounded), PSNR 20 log10(255/RMSE), Wang 2003 "
           "SSIM_index (Gaussian 11/1.5, filter2 'valid'), no crop")
_DEHAZE = Convention(
    "canonical", "basicsr", "rgb",
    source="MAXIM maxim/run_eval.py (github.com/google-research/maxim): RGB PSNR with "
           "crop_border 0 (SSIM: BasicSR's per-channel Gaussian SSIM)")


@dataclass(frozen=True)
class Benchmark:
    """A benchmark's task and its convention under each protocol."""

    task: Literal["denoise", "deblur", "derain", "dehaze", "synthetic"]
    canonical: Convention
    release: Convention = field(default=RELEASE)
    basicsr: Convention = field(default=BASICSR)


# The table (issue 9.2): every benchmark the project scores, and how.
BENCHMARKS: dict[str, Benchmark] = {
    "CBSD68": Benchmark("denoise", _DENOISE),
    "Kodak24": Benchmark("denoise", _DENOISE),
    "McMaster": Benchmark("denoise", _DENOISE),
    "Urban100": Benchmark("denoise", _DENOISE),
    "GoPro": Benchmark("deblur", _GOPRO_HIDE),
    "HIDE": Benchmark("deblur", _GOPRO_HIDE),
    "RealBlur_J": Benchmark("deblur", _REALBLUR),
    "RealBlur_R": Benchmark("deblur", _REALBLUR),
    "Rain100H": Benchmark("derain", _DERAIN),
    "Rain100L": Benchmark("derain", _DERAIN),
    "Test100": Benchmark("derain", _DERAIN),
    "Test1200": Benchmark("derain", _DERAIN),
    "Test2800": Benchmark("derain", _DERAIN),
    "SOTS": Benchmark("dehaze", _DEHAZE),
}
_MINIBENCH = Benchmark("synthetic", Convention(
    "canonical", "basicsr", "rgb",
    source="our offline synthetic sets have no community script: BasicSR metrics"))


# Other spellings of the same sets (irconstyle.data.benchmarks names them this way).
ALIASES: dict[str, str] = {"RealBlur-J": "RealBlur_J", "RealBlur-R": "RealBlur_R",
                           "SOTS-outdoor": "SOTS", "SOTS_outdoor": "SOTS", "Kodak": "Kodak24"}


def benchmark_names() -> list[str]:
    return [*BENCHMARKS, "minibench_*"]


def canonical_name(benchmark: str) -> str:
    """The table's name for ``benchmark`` (aliases resolved); raises for unknown names."""
    name = ALIASES.get(benchmark, benchmark)
    if name in BENCHMARKS or name.startswith("minibench_"):
        return name
    raise ValueError(f"unknown benchmark {benchmark!r}; known: {', '.join(benchmark_names())}")


def convention(benchmark: str, protocol: str) -> Convention:
    """The convention for ``benchmark`` (a name of :data:`BENCHMARKS`, an alias, or
    ``minibench_<anything>``) under ``protocol``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    name = canonical_name(benchmark)
    entry = _MINIBENCH if name.startswith("minibench_") else BENCHMARKS[name]
    return getattr(entry, protocol)


# ----------------------------------------------------------------------------- scoring
def score(output: np.ndarray, gt: np.ndarray, conv: Convention) -> dict[str, float]:
    """PSNR/SSIM on RGB and Y of two uint8 ``HxWx3`` images under ``conv``.

    Geometry (the release's padding) is the caller's job (see ``evaluate``); this
    function only scores.  Returns ``psnr_rgb, ssim_rgb, psnr_y, ssim_y`` (and
    ``ecc_rho`` for the RealBlur protocol).
    """
    if output.dtype != np.uint8 or gt.dtype != np.uint8:
        raise TypeError(f"score expects uint8 images, got {output.dtype} and {gt.dtype}")
    if output.shape != gt.shape or output.ndim != 3 or output.shape[2] != 3:
        raise ValueError(f"score expects two HxWx3 images of one shape, got {output.shape} "
                         f"and {gt.shape}")
    return _SCORERS[conv.scorer](output, gt)


def _score_basicsr(out: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    yo, yg = rgb_to_y(out), rgb_to_y(gt)
    return dict(psnr_rgb=psnr_uint8(out, gt), ssim_rgb=ssim_uint8(out, gt),
                psnr_y=psnr_uint8(yo, yg), ssim_y=ssim_uint8(yo, yg))


def _score_matlab(out: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """MATLAB ``psnr``/``ssim`` on uint8 RGB (volumetric SSIM); Y: MATLAB's rounded
    ``rgb2ycbcr`` luma with the 2-D MATLAB ``ssim`` (what the same functions give on
    a grey image)."""
    yo, yg = rgb_to_y_matlab(out)[..., 0], rgb_to_y_matlab(gt)[..., 0]
    return dict(psnr_rgb=psnr_uint8(out, gt), ssim_rgb=ssim_matlab(out, gt),
                psnr_y=psnr_uint8(yo, yg), ssim_y=ssim_matlab(yo, yg))


def _score_matlab_y(out: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Deraining: Y of MATLAB's rounded ``rgb2ycbcr``, ``20 log10(255 / RMSE)`` and
    Wang's ``SSIM_index`` (valid windows, mean of the map).  RGB: the same PSNR and
    SSIM per channel, averaged."""
    yo = rgb_to_y_matlab(out)[..., 0].astype(np.float64)
    yg = rgb_to_y_matlab(gt)[..., 0].astype(np.float64)
    return dict(psnr_rgb=psnr_uint8(out, gt), ssim_rgb=ssim_uint8(out, gt),
                psnr_y=psnr_uint8(yo, yg), ssim_y=float(ssim_map_valid(yo, yg).mean()))


def _score_realblur(out: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """RealBlur: align the prediction (float [0, 1]) to gt, then masked metrics.
    Y: BT.601 luma (on [0, 1]) of the aligned images, masked the same way."""
    zr, xr, mask, ecc = realblur_align(out / 255.0, gt / 255.0)
    p_rgb, s_rgb = realblur_scores(zr, xr, mask)
    m1 = mask[..., :1]
    yz, yx = rgb_to_y(zr * 255.0) / 255.0 * m1, rgb_to_y(xr * 255.0) / 255.0 * m1
    p_y, s_y = realblur_scores(yz[..., 0], yx[..., 0], m1[..., 0])
    return dict(psnr_rgb=p_rgb, ssim_rgb=s_rgb, psnr_y=p_y, ssim_y=s_y, ecc_rho=ecc.rho)


_SCORERS = {"basicsr": _score_basicsr, "matlab": _score_matlab, "matlab_y": _score_matlab_y,
            "realblur": _score_realblur}
