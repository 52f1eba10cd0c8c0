"""Synthetic degradations: each checked against its physical model on real photos."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from irconstyle.data import degrade as D
from irconstyle.data.images import load_photo, motorcycle_depth


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / ((a.double() - b.double()) ** 2).mean().item())


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    return load_photo("astronaut")  # full 512x512


# ----------------------------------------------------------------------------- noise
def test_awgn_psnr_on_a_real_photo(astronaut):
    """Sigma 25, float, unclipped: 20 log10(255 / 25) = 20.17 dB analytic (20.18 measured
    once on astronaut, seed 0)."""
    noisy = D.add_gaussian_noise(astronaut, 25, seed=0)
    assert abs(psnr(noisy, astronaut) - 20 * math.log10(255 / 25)) < 0.05
    assert noisy.min() < 0 and noisy.max() > 1, "noise must not be clipped"


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_awgn_residual_statistics(astronaut, sigma):
    residual = D.add_gaussian_noise(astronaut, sigma, seed=3) - astronaut
    assert abs(residual.std().item() - sigma / 255) < 0.01 * sigma / 255
    assert abs(residual.mean().item()) < 0.05 * sigma / 255
    # i.i.d.: neighbouring pixels are uncorrelated
    r = residual[0]
    corr = torch.corrcoef(torch.stack([r[:, 1:].flatten(), r[:, :-1].flatten()]))[0, 1]
    assert abs(corr.item()) < 0.02


def test_awgn_seed_per_image_is_independent_of_the_batch():
    x = torch.rand(3, 3, 16, 16)
    batch = D.add_gaussian_noise(x, 25, seed=[11, 12, 13])
    alone = D.add_gaussian_noise(x[1], 25, seed=12)
    assert torch.equal(batch[1], alone)
    assert torch.equal(D.add_gaussian_noise(x, 25, seed=11)[0], batch[0])  # int seed: seed + b
    assert not torch.equal(batch[0] - x[0], batch[1] - x[1])
    per_image = D.add_gaussian_noise(x, torch.tensor([0.0, 10.0, 50.0]), seed=1) - x
    assert per_image[0].abs().max() == 0 and per_image[2].std() > 3 * per_image[1].std()
    with pytest.raises(ValueError):
        D.add_gaussian_noise(x, 25, seed=[1, 2])


# ----------------------------------------------------------------------------- blur
def test_convolve2d_is_a_true_convolution():
    """Same as scipy.ndimage.convolve with mirror (= torch reflect) borders."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 20, 23, generator=g, dtype=torch.float64)
    k = torch.rand(5, 5, generator=g, dtype=torch.float64)
    y = D.convolve2d(x, k)
    ref = np.stack([ndimage.convolve(c.numpy(), k.numpy(), mode="mirror") for c in x])
    assert np.allclose(y.numpy(), ref, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_motion_kernel_is_a_normalised_psf(seed):
    k = D.motion_kernel(15, seed=seed)
    assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert (k >= 0).all() and abs(k.sum().item() - 1) < 1e-6
    assert torch.equal(k, D.motion_kernel(15, seed=seed))
    # centred on its centroid: the blur does not shift the image
    r = k.shape[0] // 2
    idx = torch.arange(k.shape[0], dtype=torch.float64) - r
    assert abs((k.double().sum(0) * idx).sum().item()) < 0.5
    assert abs((k.double().sum(1) * idx).sum().item()) < 0.5


def test_blur_psnr_falls_monotonically_with_kernel_length(astronaut):
    x = astronaut[:, 128:384, 128:384]
    lengths = [1, 3, 6, 12, 24, 48]
    values = [psnr(D.motion_blur(x, D.motion_kernel(n, seed=7)), x) for n in lengths]
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert values[-1] < values[0] - 10


def test_motion_blur_batch_with_one_kernel_per_image():
    x = torch.rand(2, 3, 24, 24)
    kernels = [D.motion_kernel(4, seed=1), D.motion_kernel(16, seed=2)]
    assert kernels[0].shape != kernels[1].shape
    y = D.motion_blur(x, kernels)  # different sizes: zero-padded about the centre
    for b in range(2):
        assert torch.allclose(y[b], D.motion_blur(x[b], kernels[b]), atol=1e-6)


# ----------------------------------------------------------------------------- rain
@pytest.mark.parametrize("angle", [-40.0, -10.0, 0.0, 25.0, 60.0])
def test_rain_streak_angle_matches_request(angle):
    layer = D.rain_layer((1, 128, 128), density=0.004, length=20, angle=angle, seed=5)[0, 0]
    measured = D.streak_angle(layer)
    diff = (measured - angle + 90) % 180 - 90
    assert abs(diff) < 2.0, (angle, measured)


def test_rain_layer_density_and_length_control_coverage():
    def cover(**kw):
        return D.rain_layer((1, 96, 96), angle=10, seed=0, **kw).gt(0.05).float().mean().item()
    assert cover(density=0.006, length=20) > 1.5 * cover(density=0.002, length=20)
    assert cover(density=0.003, length=30) > 1.5 * cover(density=0.003, length=8)


def test_add_rain_follows_the_rain100_model():
    b = torch.rand(3, 32, 32) * 0.5
    kw = dict(density=0.01, length=12, angle=15.0, intensity=0.6)
    layer = D.rain_layer((1, 32, 32), seed=9, **{k: v for k, v in kw.items() if k != "intensity"})
    light = D.add_rain(b, seed=9, **kw)
    assert torch.allclose(light, (b + 0.6 * layer[0]).clamp(0, 1), atol=1e-6)
    assert (light >= b - 1e-6).all() and light.max() <= 1
    heavy = D.add_rain(b, seed=9, accumulation=0.3, airlight=0.9, **kw)
    assert torch.allclose(heavy, (0.7 * (b + 0.6 * layer[0]) + 0.3 * 0.9).clamp(0, 1), atol=1e-6)


# ----------------------------------------------------------------------------- haze
def test_recovered_transmission_matches_the_model():
    j = load_photo("motorcycle_left", max_side=128)
    d = motorcycle_depth(max_side=128)
    assert d.shape == j.shape[-2:] and 2.0 < d.min() < d.max() < 5.1
    for airlight in (0.9, torch.tensor([0.85, 0.9, 1.0])):
        beta = 0.3
        hazy = D.add_haze(j, d, airlight=airlight, beta=beta)
        t_hat = D.estimate_transmission(hazy, j, airlight)[0]
        ok = torch.isfinite(t_hat)
        assert ok.float().mean() > 0.95
        t = torch.exp(-beta * d)
        assert (t_hat[ok] - t[ok]).abs().max() < 1e-4
        # beta back from the slope of -log t against depth
        slope = np.polyfit(d[ok].numpy(), -np.log(t_hat[ok].numpy()), 1)[0]
        assert abs(slope - beta) < 0.01 * beta


def test_haze_psnr_on_motorcycle_matches_recorded_values():
    """A = 0.9 -> 11.48 dB at beta 0.2, 8.10 dB at beta 0.4 (full size): values computed
    outside this package from the scattering model and the photo's stereo depth."""
    j, d = load_photo("motorcycle_left"), motorcycle_depth()
    assert abs(psnr(D.add_haze(j, d, airlight=0.9, beta=0.2), j) - 11.48) < 0.05
    assert abs(psnr(D.add_haze(j, d, airlight=0.9, beta=0.4), j) - 8.10) < 0.05


def test_haze_batch_parameters_and_proxy_depth():
    j = torch.rand(2, 3, 20, 30)
    d = D.depth_proxy(20, 30)
    assert d[0, 0] == 10 and d[-1, 0] == 1
    hazy = D.add_haze(j, d, airlight=torch.tensor([[0.8], [1.0]]), beta=torch.tensor([0.04, 0.2]))
    for b, (a, beta) in enumerate([(0.8, 0.04), (1.0, 0.2)]):
        assert torch.allclose(hazy[b], D.add_haze(j[b], d, airlight=a, beta=beta), atol=1e-6)
    assert 0 <= hazy.min() and hazy.max() <= 1
    assert set(D.RESIDE_OTS_AIRLIGHT) == {0.8, 0.85, 0.9, 0.95, 1.0}
    assert len(D.RESIDE_OTS_AIRLIGHT) * len(D.RESIDE_OTS_BETA) == 35


def test_stable_seed_is_reproducible():
    assert D.stable_seed("awgn", "0001") == D.stable_seed("awgn", "0001")
    assert D.stable_seed("awgn", "0001") != D.stable_seed("awgn", "0002")
    assert 0 <= D.stable_seed("x") < 2**63
