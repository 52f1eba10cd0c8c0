"""Randomness for training items and their order, as pure functions of (seed, epoch, index).

A training item draws its crop, flip and noise from a generator seeded by
``(seed, epoch, index)``, never from a global RNG. So the same item comes out whatever
the number of DataLoader workers, whichever worker serves it, and after a resume. This
also removes the BasicSR bug D12 (worker seeds fixed across epochs, so crops repeat):
the epoch is part of every item's seed.
"""
from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["item_seed", "item_generator", "seed_worker"]


def item_seed(seed: int, epoch: int, index: int, stream: int = 0) -> int:
    """A 63-bit seed mixing (seed, epoch, index) with NumPy's SeedSequence hash, so nearby
    triples give unrelated streams; ``stream`` separates uses (0: items, 1: the order)."""
    if min(seed, epoch, index, stream) < 0:
        raise ValueError(f"seed, epoch and index must be >= 0, got {(seed, epoch, index)}")
    lo, hi = np.random.SeedSequence([seed, epoch, index, stream]).generate_state(2, np.uint32)
    return (int(hi) << 32 | int(lo)) & (2**63 - 1)


def item_generator(seed: int, epoch: int, index: int, stream: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(item_seed(seed, epoch, index, stream))


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed Python's and NumPy's global RNGs from the
    worker's torch seed, which PyTorch redraws for every epoch's iterator (the fix for
    D12 in code that does use global RNGs; the project's datasets do not need it)."""
    s = torch.initial_seed() % 2**32
    random.seed(s)
    np.random.seed(s)
