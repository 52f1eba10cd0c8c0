"""PSNR/SSIM (BasicSR conventions) against scikit-image and hand-computed values, and
the MATLAB variants against direct numpy re-computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage, signal
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from irconstyle.evaluation.metrics import (gaussian_window, psnr, rgb_to_y, rgb_to_y_matlab, ssim,
                                ssim_matlab, to_uint8)

SK_SSIM = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)


def _photo(name: str, size: int = 160) -> np.ndarray:
    img = getattr(data, name)()
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top:top + size, left:left + size]


def _degrade(gt: np.ndarray, kind: str) -> np.ndarray:
    """A float image in [0, 1] (noise) or slightly outside (unclipped blur+noise)."""
    x = gt / 255.0
    rng = np.random.default_rng(0)
    if kind == "noise":
        return np.clip(x + rng.normal(0, 25 / 255, x.shape), 0, 1)
    if kind == "blur":
        return ndimage.gaussian_filter(x, (1.5, 1.5, 0))
    return ndimage.gaussian_filter(x, (1.0, 1.0, 0)) + rng.normal(0, 10 / 255, x.shape)


PHOTOS = ["astronaut", "chelsea", "coffee"]
DEGRADATIONS = ["noise", "blur", "blur_noise_unclipped"]


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("kind", DEGRADATIONS)
def test_agrees_with_skimage_rgb_and_y(name: str, kind: str) -> None:
    gt = _photo(name)
    pred = _degrade(gt, kind)
    pred_u8 = np.round(np.clip(pred, 0, 1) * 255).astype(np.uint8)
    # RGB: per-channel Gaussian SSIM averaged over channels; skimage's mean over the
    # reflect-padded map cropped by (11 - 1) // 2 = 5 px equals our 'valid' windows.
    assert ssim(pred, gt) == pytest.approx(
        structural_similarity(pred_u8, gt, channel_axis=-1, **SK_SSIM), abs=1e-6)
    assert psnr(pred, gt) == pytest.approx(
        peak_signal_noise_ratio(gt, pred_u8, data_range=255), abs=1e-6)
    # Y: BT.601 on the rounded image, unrounded luma.
    yp, yg = rgb_to_y(pred_u8)[..., 0], rgb_to_y(gt)[..., 0]
    assert ssim(pred, gt, y_channel=True) == pytest.approx(
        structural_similarity(yp, yg, **SK_SSIM), abs=1e-6)
    assert psnr(pred, gt, y_channel=True) == pytest.approx(
        peak_signal_noise_ratio(yg, yp, data_range=255), abs=1e-6)


def test_full_size_photo_agrees_with_skimage() -> None:
    gt = data.astronaut()
    pred = _degrade(gt, "noise")
    pred_u8 = np.round(pred * 255).astype(np.uint8)
    assert ssim(pred_u8, gt) == pytest.approx(
        structural_similarity(pred_u8, gt, channel_axis=-1, **SK_SSIM), abs=1e-6)


def test_window_is_the_skimage_and_cv2_gaussian() -> None:
    k = gaussian_window()
    x = np.arange(-5, 6)
    ref = np.exp(-x ** 2 / (2 * 1.5 ** 2))
    np.testing.assert_allclose(k, ref / ref.sum(), rtol=1e-14)


@pytest.mark.parametrize("offset, expected", [(1, 48.1308036087), (2, 42.1102036), (5, 34.1514035)])
def test_psnr_hand_computed_constant_offset(offset: int, expected: float) -> None:
    a = np.full((16, 16, 3), 100, np.uint8)
    b = a + np.uint8(offset)
    # MSE = offset^2, so PSNR = 10 log10(255^2 / offset^2)
    assert psnr(a, b) == pytest.approx(expected, abs=1e-6)
    assert psnr(a, b) == pytest.approx(20 * math.log10(255 / offset), abs=1e-9)


def test_psnr_hand_computed_partial_error_and_identity() -> None:
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[0, 0] = 4  # MSE = 16 / 16 = 1
    assert psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2), abs=1e-9)
    assert psnr(a, a) == math.inf


def test_y_channel_formula() -> None:
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    np.testing.assert_allclose(rgb_to_y(px)[0, :, 0],
                               [16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966], atol=1e-9)
    # MATLAB rgb2ycbcr on uint8 rounds: 81.481 -> 81, 144.553 -> 145, 40.966 -> 41
    np.testing.assert_array_equal(rgb_to_y_matlab(px)[0, :, 0], [16, 235, 81, 145, 41])


def test_float_inputs_are_rounded_like_tensor2img() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((20, 20, 3)).astype(np.float32) * 1.2 - 0.1  # also outside [0, 1]
    u8 = np.round(np.clip(x, 0, 1) * np.float32(255)).astype(np.uint8)
    np.testing.assert_array_equal(to_uint8(x)[0], u8)
    t = torch.from_numpy(x).permute(2, 0, 1)
    np.testing.assert_array_equal(to_uint8(t)[0], u8)
    gt = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    assert psnr(x, gt) == psnr(u8, gt) == psnr(t, torch.from_numpy(gt / 255.0).permute(2, 0, 1))


def test_batch_is_the_mean_of_images() -> None:
    a = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    b = (a + 0.05 * torch.randn(a.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    for fn in (psnr, ssim):
        per = [fn(a[i], b[i]) for i in range(3)]
        assert fn(a, b) == pytest.approx(float(np.mean(per)), rel=1e-12)


def test_crop_border_is_cropping() -> None:
    gt = _photo("coffee", 64)
    pred = _degrade(gt, "noise")
    assert psnr(pred, gt, crop_border=4) == pytest.approx(psnr(pred[4:-4, 4:-4], gt[4:-4, 4:-4]))
    assert ssim(pred, gt, crop_border=4) == pytest.approx(ssim(pred[4:-4, 4:-4], gt[4:-4, 4:-4]))


def test_ssim_matlab_equals_direct_3d_filtering() -> None:
    """MATLAB ``ssim`` on MxNx3: one 11x11x11 Gaussian over the volume, replicate
    padding, mean of the full map; re-computed here with a dense 3-D kernel."""
    gt = _photo("chelsea", 40).astype(np.float64)
    pred = np.round(np.clip(_degrade(gt.astype(np.uint8), "noise") * 255, 0, 255))
    g = gaussian_window()
    kernel = g[:, None, None] * g[None, :, None] * g[None, None, :]

    def filt(v: np.ndarray) -> np.ndarray:
        padded = np.pad(v, 5, mode="edge")
        return signal.correlate(padded, kernel, mode="valid", method="direct")

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = filt(pred), filt(gt)
    sxx, syy, sxy = filt(pred * pred) - mx ** 2, filt(gt * gt) - my ** 2, filt(pred * gt) - mx * my
    ref = (((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))).mean()
    assert ssim_matlab(pred, gt) == pytest.approx(ref, abs=1e-10)
    # 2-D (a grey image): the 2-D filter, still replicate-padded and full-map
    y1, y2 = pred[..., 0], gt[..., 0]
    k2 = np.outer(g, g)

    def filt2(v: np.ndarray) -> np.ndarray:
        return signal.correlate2d(np.pad(v, 5, mode="edge"), k2, mode="valid")

    mx, my = filt2(y1), filt2(y2)
    sxx, syy, sxy = filt2(y1 * y1) - mx ** 2, filt2(y2 * y2) - my ** 2, filt2(y1 * y2) - mx * my
    ref2 = (((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))).mean()
    assert ssim_matlab(y1, y2) == pytest.approx(ref2, abs=1e-10)
    # and it is not the per-channel mean (BasicSR's SSIM, which differs from MATLAB's)
    assert abs(ssim_matlab(pred, gt) - ssim(pred.astype(np.uint8), gt.astype(np.uint8))) > 1e-4


@pytest.mark.parametrize("a, b, err, match", [
    (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8), ValueError, "differ in shape"),
    (np.zeros((8, 8, 3), np.int32), np.zeros((8, 8, 3), np.int32), TypeError, "dtype int32"),
    (np.zeros((8, 8, 3), bool), np.zeros((8, 8, 3), bool), TypeError, "dtype bool"),
    (np.full((8, 8, 3), np.nan), np.zeros((8, 8, 3)), ValueError, "NaN"),
    (np.full((8, 8, 3), np.inf), np.zeros((8, 8, 3)), ValueError, "infinite"),
    (np.zeros((3, 8, 8)), np.zeros((3, 8, 8)), ValueError, "HWC, not CHW"),
    (torch.zeros(2, 3, 8, 8), torch.zeros(3, 3, 8, 8), ValueError, "batch"),
    (torch.zeros(3, 8, 8, dtype=torch.int64), torch.zeros(3, 8, 8), TypeError, "float tensor"),
    (torch.zeros(5, 8, 8), torch.zeros(5, 8, 8), ValueError, "1 or 3 channels"),
    ([[0]], [[0]], TypeError, "numpy array or a torch tensor"),
])
def test_bad_inputs_raise_clear_errors(a, b, err, match) -> None:
    with pytest.raises(err, match=match):
        psnr(a, b)


def test_ssim_size_and_crop_errors() -> None:
    small = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(small, small)
    with pytest.raises(ValueError, match="crop_border 5 leaves nothing"):
        psnr(small, small, crop_border=5)
    with pytest.raises(ValueError, match=">= 0"):
        psnr(small, small, crop_border=-1)
