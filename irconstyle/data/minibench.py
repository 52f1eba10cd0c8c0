"""The embedded mini-benchmark: scikit-image's bundled photos with synthetic degradations.

It lets every task train and evaluate offline on a CPU in minutes. It is a smoke test of
the pipeline and a teaching aid, not a substitute for the real benchmarks: numbers on it
are not comparable with the paper's.

Split, by image (val and test share no image, unlike the reference's ``*_part`` sets,
which are subsets of the test sets: bug B18):

* train: astronaut, rocket, hubble_deep_field, immunohistochemistry, retina
* val:   coffee
* test:  chelsea, motorcycle_left (the one scene with measured depth, for dehazing)

``motorcycle_right`` is in no split: it is a second view of a test scene. Photos are
downscaled to ``max_side`` (256 by default) so that CPU training is quick.

Degradations (:mod:`.degrade`), per task:

* denoise: AWGN, sigma 25 by default; ``sigma="random"``: U[0, 50] per training item
  (the released blind model). Training noise is drawn per item; evaluation noise is
  seeded by the image name.
* deblur: a random camera-shake kernel of path length U(``blur_length``) px;
* derain: 1-3 streak layers (angle U[-30, 30] deg, spread 10 deg), density U[0.0015, 0.004],
  length U[10, 30] px, width U[1, 2.5] px, intensity U[0.4, 0.8];
* dehaze: A and beta drawn from RESIDE OTS's values, depth in metres from the Middlebury
  disparity for the motorcycle, :func:`.degrade.depth_proxy` (1-10 m ground plane) for
  the other photos.

Evaluation images are degraded with seeds derived from the task and image name only, so
every run sees the same val/test set whatever its ``seed``. Training images get
``variants`` fixed degraded versions each (like RESIDE's 35 hazy images per clean one),
seeded by ``seed``; denoising draws fresh noise for every item instead.

The photos come from a :class:`PhotoSet` (split lists, loader, seed salt); the default is
the scikit-image set above, :mod:`.medium` passes its 43 prepared photos.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import Tensor

from . import degrade as D
from .images import load_photo, motorcycle_depth
from .paired import RestorationDataset, parse_sigma

__all__ = ["TASKS", "MINIBENCH_SPLITS", "PhotoSet", "SKIMAGE_PHOTOS", "MiniBench",
           "degrade_for_task"]

TASKS: tuple[str, ...] = ("denoise", "deblur", "derain", "dehaze")

MINIBENCH_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina"),
    "val": ("coffee",),
    "test": ("chelsea", "motorcycle_left"),
}


@dataclass(frozen=True)
class PhotoSet:
    """Where a benchmark's clean photos come from, so one :class:`MiniBench` serves every
    photo collection: the photo names of each split, a loader ``load(name, max_side)``
    returning (3, H, W) in [0, 1], and ``tag``, the salt of every degradation seed (two
    collections never share a degraded image by accident)."""

    tag: str
    splits: Mapping[str, tuple[str, ...]]
    load: Callable[[str, int | None], Tensor]

    def names(self, split: str) -> tuple[str, ...]:
        if split not in self.splits:
            raise KeyError(f"photo set {self.tag!r} has no split {split!r}; "
                           f"choose from {', '.join(self.splits)}")
        return tuple(self.splits[split])


def _load_skimage_photo(name: str, max_side: int | None) -> Tensor:
    return load_photo(name, max_side=max_side)


#: The mini-benchmark's photos: scikit-image's bundled files, split as above.
SKIMAGE_PHOTOS = PhotoSet(tag="minibench", splits=MINIBENCH_SPLITS, load=_load_skimage_photo)


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _choice(g: torch.Generator, values: tuple) -> float:
    return values[int(torch.randint(0, len(values), (1,), generator=g))]


def _depth_for(name: str, height: int, width: int) -> Tensor:
    if name == "motorcycle_left":
        d = motorcycle_depth(max_side=max(height, width))
        if tuple(d.shape) == (height, width):
            return d
        d = torch.nn.functional.interpolate(d[None, None], size=(height, width), mode="area")
        return d[0, 0]
    return D.depth_proxy(height, width)


def degrade_for_task(task: str, clean: Tensor, *, name: str, seed: int, sigma: float = 25.0,
                     blur_length: tuple[float, float] = (6.0, 20.0)) -> Tensor:
    """One degraded version of ``clean`` (3, H, W) for ``task``: a pure function of its
    arguments (see the module docstring for the parameter ranges)."""
    g = torch.Generator().manual_seed(seed)
    if task == "denoise":
        return D.add_gaussian_noise(clean, sigma, generator=g)
    if task == "deblur":
        return D.motion_blur(clean, D.motion_kernel(_uniform(g, *blur_length), generator=g))
    if task == "derain":
        layers = int(torch.randint(1, 4, (1,), generator=g))
        return D.add_rain(clean, density=_uniform(g, 0.0015, 0.004), length=_uniform(g, 10, 30),
                          angle=_uniform(g, -30, 30), width=_uniform(g, 1.0, 2.5),
                          intensity=_uniform(g, 0.4, 0.8), layers=layers, angle_spread=10.0,
                          generator=g)
    if task == "dehaze":
        depth = _depth_for(name, clean.shape[-2], clean.shape[-1])
        return D.add_haze(clean, depth, airlight=_choice(g, D.RESIDE_OTS_AIRLIGHT),
                          beta=_choice(g, D.RESIDE_OTS_BETA))
    raise ValueError(f"unknown task {task!r}; choose from {TASKS}")


class MiniBench(RestorationDataset):
    """One split of a photo collection (the mini-benchmark's by default) for one task, held
    in memory (a few MB)."""

    def __init__(self, *, task: str, split: str, patch_size: int = 64, sigma: float | str = 25,
                 sigma_range: tuple[float, float] = (0.0, 50.0), seed: int = 0,
                 repeats: int = 16, variants: int = 4, max_side: int | None = 256,
                 blur_length: tuple[float, float] = (6.0, 20.0),
                 photos: PhotoSet = SKIMAGE_PHOTOS) -> None:
        super().__init__(split=split, patch_size=patch_size, seed=seed, repeats=repeats)
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose from {TASKS}")
        self.task = task
        self.sigma = parse_sigma(sigma)
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))
        if task == "denoise" and self.sigma is None and not self.training:
            raise ValueError("evaluation needs a fixed sigma (e.g. 25), not 'random'")
        self.photos = photos
        self.names = photos.names(split)
        self.clean = [photos.load(n, max_side) for n in self.names]
        # (image index, degraded version or None) for every source of this split.
        self.sources: list[tuple[int, Tensor | None]] = []
        if task == "denoise" and self.training:
            self.sources = [(i, None) for i in range(len(self.names))]
        else:
            n_versions = variants if self.training else 1
            for i, (n, x) in enumerate(zip(self.names, self.clean)):
                for v in range(n_versions):
                    s = D.stable_seed(photos.tag, task, n, "train", v, seed) if self.training \
                        else D.stable_seed(photos.tag, task, n, "eval")
                    lq = degrade_for_task(task, x, name=n, seed=s,
                                          sigma=self.sigma if self.sigma is not None else 25.0,
                                          blur_length=blur_length)
                    self.sources.append((i, lq))

    def num_sources(self) -> int:
        return len(self.sources)

    def load(self, i: int) -> tuple[Tensor | None, Tensor, str]:
        img, lq = self.sources[i]
        return lq, self.clean[img], self.names[img]

    def make_lq(self, lq: Tensor | None, gt: Tensor, g: torch.Generator, name: str) -> Tensor:
        if lq is not None:
            return lq
        sigma = self.sigma
        if sigma is None:
            sigma = _uniform(g, *self.sigma_range)
        return D.add_gaussian_noise(gt, sigma, generator=g)

