"""Physically grounded synthetic degradations: noise, motion blur, rain, haze.

They give every task a clean/degraded pair built from any clean photo, so the pipeline
can be trained and tested offline. All functions take float images in [0, 1] shaped
(C, H, W) or (B, C, H, W), are vectorised over the batch, and draw randomness from an
explicit ``generator`` or ``seed``, so a degraded image is a pure function of its inputs
(only when neither is given do they fall back on torch's global RNG).

Seeding rule shared by all functions: ``seed=int`` gives image ``b`` of a batch the seed
``seed + b``; ``seed=[s0, s1, ...]`` gives one seed per image; ``generator=g`` draws the
whole batch from one stream. Per-image seeds make an image's degradation independent of
the other images in its batch.
"""
from __future__ import annotations

import cmath
import hashlib
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "stable_seed", "add_gaussian_noise",
    "motion_kernel", "convolve2d", "motion_blur", "stack_kernels",
    "line_kernel", "rain_layer", "add_rain", "streak_angle",
    "RESIDE_OTS_AIRLIGHT", "RESIDE_OTS_BETA", "transmission", "add_haze", "depth_proxy",
    "estimate_transmission",
]


# --------------------------------------------------------------------------- seeding
def stable_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (e.g. an image name); unlike ``hash`` it is the same
    in every process and Python run, so eval degradations never change."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _generators(batch: int, generator: torch.Generator | None,
                seed: int | Sequence[int] | None) -> list[torch.Generator | None]:
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed, not both")
    if seed is None:
        return [generator] * batch
    seeds = [seed + b for b in range(batch)] if isinstance(seed, int) else [int(s) for s in seed]
    if len(seeds) != batch:
        raise ValueError(f"got {len(seeds)} seeds for a batch of {batch} images")
    return [torch.Generator().manual_seed(s) for s in seeds]


def _as_batch(img: Tensor) -> tuple[Tensor, bool]:
    if img.ndim == 3:
        return img.unsqueeze(0), True
    if img.ndim == 4:
        return img, False
    raise ValueError(f"expected an image (C,H,W) or a batch (B,C,H,W), got shape "
                     f"{tuple(img.shape)}")


def _per_image(value: float | Sequence[float] | Tensor, like: Tensor) -> Tensor:
    """A scalar or one-value-per-image (B,) parameter as a (B|1, 1, 1, 1) tensor."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.ndim > 1 or (t.ndim == 1 and t.numel() != 1 and like.shape[0] not in (1, t.numel())):
        raise ValueError(f"expected a scalar or {like.shape[0]} values (one per image), "
                         f"got shape {tuple(t.shape)}")
    return t.reshape(-1, 1, 1, 1)


def _airlight(value: float | Sequence[float] | Tensor, like: Tensor) -> Tensor:
    """Airlight as (B|1, C|1, 1, 1): a scalar, an RGB triple (C,), or (B, 1) / (B, C)."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        return t.view(1, 1, 1, 1)
    if t.ndim == 1 and t.numel() == like.shape[1]:
        return t.view(1, -1, 1, 1)
    if t.ndim == 2 and t.shape[0] == like.shape[0] and t.shape[1] in (1, like.shape[1]):
        return t.view(t.shape[0], t.shape[1], 1, 1)
    raise ValueError(f"airlight must be a scalar, {like.shape[1]} channel values or "
                     f"(B, 1)/(B, C) per image; got shape {tuple(t.shape)}")


# --------------------------------------------------------------------------- noise
def add_gaussian_noise(img: Tensor, sigma: float | Sequence[float] | Tensor, *,
                       generator: torch.Generator | None = None,
                       seed: int | Sequence[int] | None = None) -> Tensor:
    """Additive white Gaussian noise: ``y = x + n``, ``n ~ N(0, (sigma/255)^2)`` i.i.d.

    ``sigma`` is on the 0-255 scale (15, 25, 50 in the benchmarks), a scalar or one value
    per image. The result is **not clipped**, as in the reference's training and test
    pipelines; PSNR(y, x) is then 20 log10(255/sigma) (20.17 dB at sigma 25).
    """
    x, squeeze = _as_batch(img)
    gens = _generators(x.shape[0], generator, seed)
    noise = torch.stack([torch.randn(x.shape[1:], generator=g, dtype=x.dtype) for g in gens])
    y = x + noise.to(x.device) * (_per_image(sigma, x) / 255.0)
    return y[0] if squeeze else y


# --------------------------------------------------------------------------- convolution
def _fft_conv_valid(x: Tensor, kernel: Tensor) -> Tensor:
    """True 2-D convolution of x (B, C, Hp, Wp) with kernels (k, k) or (B, k, k), keeping
    only the valid part (B, C, Hp-k+1, Wp-k+1). FFT keeps large rain/blur kernels cheap."""
    hp, wp = x.shape[-2:]
    k = kernel.shape[-1]
    ker = kernel if kernel.ndim == 3 else kernel.unsqueeze(0)
    ker = ker.to(device=x.device, dtype=x.dtype).unsqueeze(1)  # (B|1, 1, k, k)
    spec = torch.fft.rfft2(x, s=(hp, wp)) * torch.fft.rfft2(ker, s=(hp, wp))
    full = torch.fft.irfft2(spec, s=(hp, wp))
    return full[..., k - 1:, k - 1:]


def convolve2d(img: Tensor, kernel: Tensor, *, pad_mode: str = "reflect") -> Tensor:
    """Per-channel true convolution ``y = k * x`` with the same size as ``x``.

    ``kernel`` is one odd-sized (k, k) kernel or one per image (B, k, k). Borders are
    extended by ``pad_mode`` (reflect; replicate where the image is smaller than the pad).
    """
    x, squeeze = _as_batch(img)
    k = kernel.shape[-1]
    if k % 2 == 0 or kernel.shape[-2] != k:
        raise ValueError(f"kernel must be square with an odd side, got {tuple(kernel.shape)}")
    r = k // 2
    mode = pad_mode if (pad_mode != "reflect" or r < min(x.shape[-2:])) else "replicate"
    xp = F.pad(x, (r, r, r, r), mode=mode) if r else x
    y = _fft_conv_valid(xp, kernel)
    return y[0] if squeeze else y


def _splat(points: Tensor, size: int) -> Tensor:
    """Bilinear splat of (N, 2) points (x, y in pixels) onto a (size, size) grid."""
    x, y = points[:, 0], points[:, 1]
    x0, y0 = x.floor(), y.floor()
    fx, fy = x - x0, y - y0
    grid = torch.zeros(size * size, dtype=torch.float64)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                      (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = (x0 + dx).long(), (y0 + dy).long()
        ok = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size)
        grid.index_put_((yi[ok] * size + xi[ok],), w[ok], accumulate=True)
    return grid.view(size, size)


# --------------------------------------------------------------------------- motion blur
def motion_kernel(length: float, *, generator: torch.Generator | None = None,
                  seed: int | None = None, iters: int = 2000, exposure: float = 1.0,
                  anxiety: float = 0.005) -> Tensor:
    """A random camera-shake kernel (Boracchi & Foi 2012, as used by DeblurGAN).

    A 2-D camera trajectory of ``iters`` steps follows
    ``v <- normalise(v + dv)``, ``dv = jump + anxiety * (g * (N + iN) - c * x_t) * s``
    (rare big jumps reverse the velocity; ``g`` ~ U(0, 10) shake, ``c`` ~ U(0, 0.7) pull
    back to the start, ``s`` the step). It is drawn at the reference scale (path length 60
    px) and then scaled so that its **path length is ``length`` pixels**: the same seed
    gives the same shape at every length, so blur grows monotonically with ``length``.
    The first ``exposure`` fraction of the path is splatted bilinearly, centred on its
    centroid (no image shift), and normalised to **sum 1** (not DeblurGAN's min-max).
    Returns a float32 (k, k) kernel with odd k.
    """
    if length < 0:
        raise ValueError(f"kernel length must be >= 0, got {length}")
    if not 0 < exposure <= 1:
        raise ValueError(f"exposure must be in (0, 1], got {exposure}")
    g = generator if seed is None else torch.Generator().manual_seed(seed)
    u = torch.rand(4, generator=g, dtype=torch.float64).tolist()
    n = iters - 1
    jumps = torch.rand(n, generator=g, dtype=torch.float64).tolist()
    turns = torch.rand(n, generator=g, dtype=torch.float64).tolist()
    shakes = torch.randn(n, 2, generator=g, dtype=torch.float64).tolist()
    centripetal, prob_big, gauss_shake = 0.7 * u[0], 0.2 * u[1], 10.0 * u[2]
    ref_len = 60.0
    step = ref_len / n
    v = step * cmath.exp(2j * math.pi * u[3])
    x = 0j
    path = [x]
    for t in range(n):
        jump = 0j
        if jumps[t] < prob_big * anxiety:
            jump = 2 * v * cmath.exp(1j * (math.pi + turns[t] - 0.5))
        dv = jump + anxiety * (gauss_shake * complex(*shakes[t]) - centripetal * x) * step
        v = v + dv
        v = v / abs(v) * step
        x = x + v
        path.append(x)
    pts = torch.tensor([[p.real, p.imag] for p in path[: max(2, round(exposure * iters))]],
                       dtype=torch.float64) * (length / ref_len)
    pts = pts - pts.mean(0)
    r = int(math.ceil(pts.abs().max().item())) + 1
    kernel = _splat(pts + r, 2 * r + 1)
    return (kernel / kernel.sum()).float()


def stack_kernels(kernels: Sequence[Tensor]) -> Tensor:
    """Kernels of different odd sizes as one (B, k, k) tensor, zero-padded about their centres."""
    k = max(int(t.shape[-1]) for t in kernels)
    return torch.stack([F.pad(t, [(k - t.shape[-1]) // 2] * 4) for t in kernels])


def motion_blur(img: Tensor, kernel: Tensor | Sequence[Tensor]) -> Tensor:
    """Blur ``y = k * x`` per channel (reflect borders); ``kernel`` (k, k), or one per
    image as (B, k, k) or a list of kernels of any odd sizes.

    Kernels summing to 1 keep the mean brightness; nothing is clipped (a convex
    combination of values in [0, 1] stays in [0, 1]).
    """
    if not isinstance(kernel, Tensor):
        kernel = stack_kernels(kernel)
    return convolve2d(img, kernel, pad_mode="reflect")


# --------------------------------------------------------------------------- rain
def _direction(angle: float) -> tuple[float, float]:
    """Unit streak direction (dx, dy) in image axes (x right, y down) for ``angle`` in
    degrees from vertical, positive when the top of the streak leans right."""
    a = math.radians(angle)
    return math.sin(a), -math.cos(a)


def line_kernel(length: float, angle: float, *, width: float = 1.0) -> Tensor:
    """An anti-aliased straight streak of ``length`` px at ``angle`` degrees from vertical
    (see :func:`_direction`), of unit brightness along its centre line (its values sum to
    about ``length``); ``width`` > 1 thickens it with a Gaussian of sigma ``width / 2``."""
    dx, dy = _direction(angle)
    s = torch.linspace(-length / 2, length / 2, max(2, int(math.ceil(length * 4))),
                       dtype=torch.float64)
    pad = int(math.ceil(width)) + 1
    r = int(math.ceil(length / 2)) + pad
    pts = torch.stack([s * dx, s * dy], dim=1) + r
    kernel = _splat(pts, 2 * r + 1)
    kernel = kernel / kernel.sum() * max(length, 1.0)
    if width > 1:
        g1 = _gaussian_1d(width / 2)
        kernel = F.conv2d(kernel[None, None], (g1[:, None] * g1[None, :])[None, None],
                          padding=len(g1) // 2)[0, 0] * width
    return kernel.float()


def rain_layer(shape: Sequence[int], *, density: float, length: float, angle: float,
               width: float = 1.0, generator: torch.Generator | None = None,
               seed: int | Sequence[int] | None = None) -> Tensor:
    """A rain-streak layer S in [0, 1], shape (B, 1, H, W) for ``shape`` = (B, H, W).

    Sparse streak seeds (probability ``density`` per pixel, brightness U(0.5, 1)) are
    smeared by a :func:`line_kernel` of ``length`` and ``angle``: the Photoshop-style
    "noise + motion blur" recipe behind Rain100L/H (Yang et al. 2017; Li et al. 2019).
    Seeds are drawn on a canvas larger than the image so streaks also enter from outside.
    """
    b, h, w = shape
    kernel = line_kernel(length, angle, width=width)
    k = kernel.shape[-1]
    gens = _generators(b, generator, seed)
    seeds = []
    for g in gens:
        hit = torch.rand(h + k - 1, w + k - 1, generator=g) < density
        bright = 0.5 + 0.5 * torch.rand(h + k - 1, w + k - 1, generator=g)
        seeds.append(hit * bright)
    layer = _fft_conv_valid(torch.stack(seeds).unsqueeze(1), kernel)
    return layer.clamp(0, 1)


def add_rain(img: Tensor, *, density: float = 0.004, length: float = 20.0,
             angle: float = 0.0, intensity: float = 0.8, width: float = 1.0,
             layers: int = 1, angle_spread: float = 0.0, accumulation: float = 0.0,
             airlight: float = 0.9, generator: torch.Generator | None = None,
             seed: int | Sequence[int] | None = None) -> Tensor:
    """Rainy image by the Rain100 model (Yang et al. 2017, JORDER):

    ``O = clip(alpha * (B + intensity * sum_t S_t) + (1 - alpha) * A, 0, 1)``

    with ``S_t`` the :func:`rain_layer` streak layers (``layers`` of them, angles spread
    evenly over ``angle +- angle_spread``: one direction for Rain100L, several for
    Rain100H) and ``alpha = 1 - accumulation`` the veiling of heavy rain by airlight
    ``A``. Light rain is ``layers=1, accumulation=0``: ``O = clip(B + S)``. The clip to
    [0, 1] is that of the rendered benchmark images.
    """
    x, squeeze = _as_batch(img)
    b, _, h, w = x.shape
    gens = _generators(b, generator, seed)
    angles = [angle] if layers == 1 else torch.linspace(
        angle - angle_spread, angle + angle_spread, layers).tolist()
    rain = torch.zeros(b, 1, h, w, dtype=x.dtype)
    for a in angles:
        rain = rain + torch.cat([rain_layer((1, h, w), density=density, length=length,
                                            angle=a, width=width, generator=g) for g in gens])
    alpha = 1.0 - accumulation
    y = alpha * (x + intensity * rain.to(x.device)) + (1 - alpha) * airlight
    y = y.clamp(0, 1)
    return y[0] if squeeze else y


def _gaussian_1d(sigma: float) -> Tensor:
    t = torch.arange(-math.ceil(3 * sigma), math.ceil(3 * sigma) + 1, dtype=torch.float64)
    g = torch.exp(-t**2 / (2 * sigma**2))
    return g / g.sum()


def streak_angle(layer: Tensor, *, sigma: float = 2.0) -> float:
    """Dominant streak angle (degrees from vertical, as in :func:`line_kernel`) of a
    layer (H, W), measured with the structure tensor ``J = sum grad(s) grad(s)^T`` of
    the layer smoothed by a Gaussian of ``sigma`` px (thin lines need the smoothing: raw
    pixel differences bias the angle towards the diagonals). The mean gradient
    orientation ``phi = atan2(2 Jxy, Jxx - Jyy) / 2`` is across the streaks; a streak at
    angle ``a`` has direction (sin a, -cos a), perpendicular to (cos a, sin a), so a = phi.
    """
    s = layer.double().squeeze()[None, None]
    g = _gaussian_1d(sigma)
    r = len(g) // 2
    s = F.conv2d(F.pad(s, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    s = F.conv2d(F.pad(s, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1))[0, 0]
    gx = (s[1:-1, 2:] - s[1:-1, :-2]) / 2
    gy = (s[2:, 1:-1] - s[:-2, 1:-1]) / 2
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    phi = math.degrees(0.5 * math.atan2(2 * jxy.item(), (jxx - jyy).item()))
    return (phi + 90.0) % 180.0 - 90.0


# --------------------------------------------------------------------------- haze
#: RESIDE OTS renders every clean image with each of these (A, beta): 35 hazy versions.
RESIDE_OTS_AIRLIGHT: tuple[float, ...] = (0.8, 0.85, 0.9, 0.95, 1.0)
RESIDE_OTS_BETA: tuple[float, ...] = (0.04, 0.06, 0.08, 0.1, 0.12, 0.16, 0.2)


def transmission(depth: Tensor, beta: float | Sequence[float] | Tensor) -> Tensor:
    """``t = exp(-beta * d)`` (Beer-Lambert); depth (H, W), (B, H, W) or (B, 1, H, W)."""
    d = depth
    while d.ndim < 4:
        d = d.unsqueeze(0) if d.ndim < 3 else d.unsqueeze(1)
    return torch.exp(-_per_image(beta, d) * d)


def add_haze(img: Tensor, depth: Tensor, *, airlight: float | Sequence[float] | Tensor,
             beta: float | Sequence[float] | Tensor) -> Tensor:
    """Hazy image by the atmospheric scattering model (Koschmieder; RESIDE):

    ``I = J * t + A * (1 - t)``,  ``t = exp(-beta * d)``

    ``J`` the clean image, ``d`` the depth (same H, W; metres for the motorcycle scene),
    ``A`` the airlight (scalar, RGB triple, or (B, 1)/(B, 3) per image), ``beta`` the scattering
    coefficient (scalar or one per image). RESIDE OTS draws A from
    :data:`RESIDE_OTS_AIRLIGHT` and beta from :data:`RESIDE_OTS_BETA`. No clipping is
    needed: ``I`` is a convex combination of values in [0, 1].
    """
    x, squeeze = _as_batch(img)
    t = transmission(depth.to(x), beta).to(x)
    a = _airlight(airlight, x)
    y = x * t + a * (1 - t)
    return y[0] if squeeze else y


def estimate_transmission(hazy: Tensor, clean: Tensor, airlight: float | Tensor,
                          eps: float = 0.05) -> Tensor:
    """Invert the scattering model: ``t = (A - I) / (A - J)`` per pixel, averaged over
    the channels where ``|A - J| > eps`` (NaN where no channel qualifies)."""
    x = hazy if hazy.ndim == 4 else hazy.unsqueeze(0)
    a = _airlight(airlight, x)
    a = a[0] if hazy.ndim == 3 else a
    num, den = a - hazy, a - clean
    ok = den.abs() > eps
    t = torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den))
    count = ok.sum(-3, keepdim=True)
    return torch.where(count > 0, t.sum(-3, keepdim=True) / count.clamp(min=1),
                       torch.full_like(count, float("nan"), dtype=t.dtype))


def depth_proxy(height: int, width: int, *, near: float = 1.0, far: float = 10.0) -> Tensor:
    """A stand-in depth map (H, W) for photos without measured depth: a ground plane
    seen from eye level, ``far`` metres at the top row falling linearly to ``near`` at
    the bottom row. It is a proxy, not the scene's depth; with RESIDE's beta (0.04-0.2)
    it gives transmissions of about 0.14-0.96."""
    rows = torch.linspace(far, near, height).view(height, 1)
    return rows.expand(height, width).contiguous()
