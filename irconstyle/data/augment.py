"""Paired random crops and the 8 dihedral augmentations (identical for lq and gt)."""
from __future__ import annotations

import torch
from torch import Tensor

from .io import ImageError

__all__ = ["dihedral", "dihedral_inverse", "random_crop_box", "crop", "DIHEDRAL_COUNT"]

#: hflip/vflip/transpose at p=0.5 each (the reference's ``augment``) reach these 8 variants.
DIHEDRAL_COUNT = 8


def dihedral(x: Tensor, k: int) -> Tensor:
    """The k-th element (0..7) of the dihedral group on the last two axes:
    ``k % 4`` quarter turns, after a transpose when ``k >= 4``. k = 0 is the identity."""
    if not 0 <= k < DIHEDRAL_COUNT:
        raise ValueError(f"dihedral index must be in 0..7, got {k}")
    if k >= 4:
        x = x.transpose(-2, -1)
    return torch.rot90(x, k % 4, dims=(-2, -1)) if k % 4 else x


def dihedral_inverse(x: Tensor, k: int) -> Tensor:
    """Undo :func:`dihedral` (used to average the x8 self-ensemble)."""
    if not 0 <= k < DIHEDRAL_COUNT:
        raise ValueError(f"dihedral index must be in 0..7, got {k}")
    x = torch.rot90(x, -(k % 4), dims=(-2, -1)) if k % 4 else x
    return x.transpose(-2, -1) if k >= 4 else x


def random_crop_box(height: int, width: int, patch: int, generator: torch.Generator,
                    *, name: str = "image") -> tuple[int, int]:
    """Top-left corner of a uniform random ``patch`` x ``patch`` crop."""
    if height < patch or width < patch:
        raise ImageError(f"{name}: image {height}x{width} is smaller than the training "
                         f"patch {patch}x{patch}")
    top = int(torch.randint(0, height - patch + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - patch + 1, (1,), generator=generator))
    return top, left


def crop(x: Tensor, top: int, left: int, patch: int) -> Tensor:
    return x[..., top:top + patch, left:left + patch]
