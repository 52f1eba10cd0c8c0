"""Datasets of (degraded, clean) images: training crops and full evaluation images.

Every dataset here follows one contract:

* ``split="train"``: item ``i`` is a random ``patch_size`` crop, at the same place in lq
  and gt, then one of the 8 dihedral transforms; crop, transform and any synthetic noise
  are drawn from a generator seeded by ``(seed, epoch, i)`` (see :mod:`.sampling`), so an
  item is a pure function of those three numbers. ``set_epoch`` moves to the next epoch;
  ``dataset[(epoch, i)]`` names the epoch explicitly (useful with ``persistent_workers``, where ``set_epoch`` does not reach the workers).
  ``repeats`` lists every source image that many times per epoch.
* ``split="val"`` or ``"test"``: item ``i`` is the i-th full image, unpadded: the models
  pad and crop back themselves, and metrics see the true image (fixes D1/D2).
* an item is ``{"lq": (3, H, W) float32, "gt": (3, H, W) float32, "name": str}`` in [0, 1]
  (noisy lq is not clipped).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .augment import DIHEDRAL_COUNT, crop, dihedral, random_crop_box
from .degrade import add_gaussian_noise, stable_seed
from .io import ImageError, list_images, read_image
from .pairs import Pair, dehaze_pairs, derain_pairs, pair_identical
from .sampling import item_generator

__all__ = ["SPLITS", "RestorationDataset", "PairedImages", "NoisyImages",
           "paired_dataset", "dehaze_dataset", "derain_dataset", "denoise_dataset",
           "check_same_size", "parse_sigma"]

SPLITS: tuple[str, ...] = ("train", "val", "test")
Item = dict  # {"lq": Tensor, "gt": Tensor, "name": str}


def check_same_size(lq: Tensor, gt: Tensor, lq_name: object, gt_name: object) -> None:
    if lq.shape != gt.shape:
        raise ImageError(f"{lq_name} and {gt_name}: sizes differ "
                         f"({lq.shape[-2]}x{lq.shape[-1]} vs {gt.shape[-2]}x{gt.shape[-1]})")


def parse_sigma(sigma: float | str) -> float | None:
    """A noise level on the 0-255 scale, or None for ``"random"`` (blind training)."""
    if isinstance(sigma, str):
        if sigma == "random":
            return None
        try:
            sigma = float(sigma)
        except ValueError:
            raise ValueError(f"sigma must be a number or 'random', got {sigma!r}") from None
    if not 0 <= sigma < float("inf"):  # NaN fails this too
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    return float(sigma)


class RestorationDataset(Dataset):
    """Base class: the train/eval contract of the module docstring. Subclasses give
    ``num_sources``, ``load(i) -> (lq, gt, name)`` and may override ``make_lq``."""

    def __init__(self, *, split: str, patch_size: int = 128, seed: int = 0,
                 repeats: int = 1) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if patch_size <= 0 or repeats <= 0:
            raise ValueError(f"patch_size and repeats must be positive, got "
                             f"{patch_size} and {repeats}")
        self.split, self.patch_size, self.seed, self.repeats = split, patch_size, seed, repeats
        self.epoch = 0

    @property
    def training(self) -> bool:
        return self.split == "train"

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def num_sources(self) -> int:
        raise NotImplementedError

    def load(self, i: int) -> tuple[Tensor | None, Tensor, str]:
        """Full-size (lq, gt, name) of source ``i``; lq may be None in training when
        ``make_lq`` synthesises it from the gt crop."""
        raise NotImplementedError

    def make_lq(self, lq: Tensor | None, gt: Tensor, g: torch.Generator, name: str) -> Tensor:
        """Hook for on-the-fly degradations of the training crop (identity by default)."""
        assert lq is not None
        return lq

    def __len__(self) -> int:
        return self.num_sources() * (self.repeats if self.training else 1)

    def __getitem__(self, index: int | tuple[int, int]) -> Item:
        epoch = self.epoch
        if isinstance(index, (tuple, list)):
            epoch, index = index
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if not self.training:
            lq, gt, name = self.load(index)
            return {"lq": lq, "gt": gt, "name": name}
        g = item_generator(self.seed, epoch, index)
        lq, gt, name = self.load(index % self.num_sources())
        top, left = random_crop_box(gt.shape[-2], gt.shape[-1], self.patch_size, g, name=name)
        k = int(torch.randint(0, DIHEDRAL_COUNT, (1,), generator=g))
        gt_patch = dihedral(crop(gt, top, left, self.patch_size), k).contiguous()
        lq_patch = None if lq is None else \
            dihedral(crop(lq, top, left, self.patch_size), k).contiguous()
        return {"lq": self.make_lq(lq_patch, gt_patch, g, name), "gt": gt_patch, "name": name}


class PairedImages(RestorationDataset):
    """(lq, gt) file pairs read from disk. ``gt_border`` crops that many pixels off each
    side of gt first (RESIDE-indoor clean images carry a 10 px frame that the hazy ones
    lack); lq and gt must then have the same size."""

    def __init__(self, pairs: Sequence[Pair], *, split: str, patch_size: int = 128,
                 seed: int = 0, repeats: int = 1, gt_border: int = 0) -> None:
        super().__init__(split=split, patch_size=patch_size, seed=seed, repeats=repeats)
        if not pairs:
            raise ImageError("no image pairs given")
        self.pairs = list(pairs)
        self.gt_border = gt_border

    def num_sources(self) -> int:
        return len(self.pairs)

    def load(self, i: int) -> tuple[Tensor, Tensor, str]:
        p = self.pairs[i]
        lq, gt = read_image(p.lq), read_image(p.gt)
        b = self.gt_border
        if b:
            gt = gt[:, b:-b, b:-b]
        check_same_size(lq, gt, p.lq, p.gt)
        return lq, gt, p.name


class NoisyImages(RestorationDataset):
    """Clean images with Gaussian noise added on the fly (``y = x + N(0, (sigma/255)^2)``,
    unclipped), as in the reference's ``Dataset_GaussianDenoising``.

    Training: noise drawn after the crop, from the item's generator; ``sigma="random"``
    draws sigma ~ U(``sigma_range``) per item (the blind model). Evaluation: noise seeded
    by the image name (same noise for a file wherever it is listed), or, with
    ``reference_noise=True``, NumPy's legacy ``seed(0)`` per image on the HWC array: the
    noisy inputs of Restormer's and IRConStyle's test scripts, bit for bit.
    """

    def __init__(self, paths: Sequence[Path], *, split: str, sigma: float | str = 25,
                 sigma_range: tuple[float, float] = (0.0, 50.0), patch_size: int = 128,
                 seed: int = 0, repeats: int = 1, reference_noise: bool = False) -> None:
        super().__init__(split=split, patch_size=patch_size, seed=seed, repeats=repeats)
        if not paths:
            raise ImageError("no clean images given")
        self.paths = list(paths)
        self.sigma = parse_sigma(sigma)
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))
        if self.sigma is None and not self.training:
            raise ValueError("evaluation needs a fixed sigma (e.g. 15, 25 or 50), "
                             "not 'random'")
        self.reference_noise = reference_noise

    def num_sources(self) -> int:
        return len(self.paths)

    def clean(self, i: int) -> Tensor:
        return read_image(self.paths[i])

    def name(self, i: int) -> str:
        return self.paths[i].stem

    def load(self, i: int) -> tuple[Tensor | None, Tensor, str]:
        gt, name = self.clean(i), self.name(i)
        if self.training:
            return None, gt, name
        assert self.sigma is not None
        if self.reference_noise:
            rng = np.random.RandomState(0)  # the reference: np.random.seed(0) per image
            hwc = gt.permute(1, 2, 0).numpy()
            noisy = (hwc.astype(np.float64) + rng.normal(0, self.sigma / 255.0, hwc.shape))
            lq = torch.from_numpy(noisy.astype(np.float32).transpose(2, 0, 1).copy())
        else:
            lq = add_gaussian_noise(gt, self.sigma, seed=stable_seed("awgn", name))
        return lq, gt, name

    def make_lq(self, lq: Tensor | None, gt: Tensor, g: torch.Generator, name: str) -> Tensor:
        sigma = self.sigma
        if sigma is None:
            lo, hi = self.sigma_range
            sigma = lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))
        return add_gaussian_noise(gt, sigma, generator=g)


# --------------------------------------------------------------------------- factories
# Keyword-only factories: their argument names are the YAML keys of a dataset entry.

def paired_dataset(*, lq_dir: str | os.PathLike, gt_dir: str | os.PathLike, split: str,
                   patch_size: int = 128, seed: int = 0, repeats: int = 1) -> PairedImages:
    """Folders with identical file names (GoPro, HIDE, RealBlur, Rain13K, Test*)."""
    return PairedImages(pair_identical(lq_dir, gt_dir), split=split, patch_size=patch_size,
                        seed=seed, repeats=repeats)


def dehaze_dataset(*, hazy_dir: str | os.PathLike, clean_dir: str | os.PathLike, split: str,
                   patch_size: int = 128, seed: int = 0, repeats: int = 1,
                   gt_border: int = 0) -> PairedImages:
    """RESIDE folders paired by ID (hazy ``0001_0.8_0.2.jpg`` -> clean ``0001.png``; D7)."""
    return PairedImages(dehaze_pairs(hazy_dir, clean_dir), split=split, patch_size=patch_size,
                        seed=seed, repeats=repeats, gt_border=gt_border)


def derain_dataset(*, split: str, root: str | os.PathLike | None = None,
                   lq_dir: str | os.PathLike | None = None,
                   gt_dir: str | os.PathLike | None = None, patch_size: int = 128,
                   seed: int = 0, repeats: int = 1) -> PairedImages:
    """Deraining sets in any published layout (see :func:`.pairs.derain_pairs`)."""
    return PairedImages(derain_pairs(root, lq_dir=lq_dir, gt_dir=gt_dir), split=split,
                        patch_size=patch_size, seed=seed, repeats=repeats)


def denoise_dataset(*, gt_dir: str | os.PathLike, split: str, sigma: float | str = 25,
                    sigma_range: tuple[float, float] = (0.0, 50.0), patch_size: int = 128,
                    seed: int = 0, repeats: int = 1,
                    reference_noise: bool = False) -> NoisyImages:
    """A folder of clean images (DFWB, CBSD68, Kodak, McMaster, Urban100) + AWGN."""
    return NoisyImages(list_images(gt_dir), split=split, sigma=sigma, sigma_range=sigma_range,
                       patch_size=patch_size, seed=seed, repeats=repeats,
                       reference_noise=reference_noise)
