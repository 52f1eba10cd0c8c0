"""Randomness for training items and their order, as pure functions of (seed, epoch, index).

A training item draws its crop, flip and noise from a generator seeded by
``(seed, epoch, index)``, never from a global RNG. So the same item comes out whatever
the number of DataLoader workers, whichever worker serves it, and after a resume. This
also removes the BasicSR bug D12 (worker seeds fixed across epochs, so crops repeat):
the epoch is part of every item's seed.
"""
from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["item_seed", "item_generator", "EpochSampler", "seed_worker"]


def item_seed(seed: int, epoch: int, index: int, stream: int = 0) -> int:
    """A 63-bit seed mixing (seed, epoch, index) with NumPy's SeedSequence hash, so nearby
    triples give unrelated streams; ``stream`` separates uses (0: items, 1: the order)."""
    if min(seed, epoch, index, stream) < 0:
        raise ValueError(f"seed, epoch and index must be >= 0, got {(seed, epoch, index)}")
    lo, hi = np.random.SeedSequence([seed, epoch, index, stream]).generate_state(2, np.uint32)
    return (int(hi) << 32 | int(lo)) & (2**63 - 1)


def item_generator(seed: int, epoch: int, index: int, stream: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(item_seed(seed, epoch, index, stream))


class EpochSampler(Sampler):
    """Shuffled order that is a pure function of (seed, epoch), resumable mid-epoch.

    Yields ``(epoch, index)`` pairs, which the project's datasets accept in
    ``__getitem__``: the epoch then travels with the index, so items stay correct even
    with ``persistent_workers=True`` (where ``dataset.set_epoch`` in the main process
    would not reach the workers). ``start`` skips the first items of the epoch (those a
    resumed run has already seen). ``rank``/``world_size`` split the order for DDP.
    """

    def __init__(self, length: int, *, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1) -> None:
        if length <= 0:
            raise ValueError(f"EpochSampler needs a non-empty dataset, got length {length}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.length, self.seed, self.shuffle = length, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        """This epoch's full order (before the rank split and the ``start`` skip)."""
        if not self.shuffle:
            return list(range(self.length))
        g = item_generator(self.seed, self.epoch, 0, stream=1)
        return torch.randperm(self.length, generator=g).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        mine = self.order()[self.rank::self.world_size]
        return iter([(self.epoch, i) for i in mine[self.start:]])

    def __len__(self) -> int:
        return max(0, len(range(self.rank, self.length, self.world_size)) - self.start)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed Python's and NumPy's global RNGs from the
    worker's torch seed, which PyTorch redraws for every epoch's iterator (the fix for
    D12 in code that does use global RNGs; the project's datasets do not need it)."""
    s = torch.initial_seed() % 2**32
    random.seed(s)
    np.random.seed(s)
