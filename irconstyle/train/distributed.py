"""Data-parallel training: process-group setup from ``torchrun``'s environment and a
deterministic, resumable sharding of each epoch.

``torchrun --nproc_per_node N -m irconstyle train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; without them training runs in a
single process.  ConStyle's queue stays identical on every rank because
``ConStyle.dequeue_and_enqueue`` all-gathers the embeddings of all ranks before writing
them (the release kept one queue per GPU, bug B19).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from ..data.sampling import item_generator
from ..runtime.devices import resolve_device

__all__ = ["DistInfo", "init_distributed", "pick_device", "barrier", "EpochShardSampler"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this process created the group, so it destroys it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` = CUDA (this process's local GPU) > MPS > CPU; a named device must exist."""
    return resolve_device(name, local_rank=local_rank)


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group described by the environment (NCCL on CUDA, gloo
    otherwise); a single process when ``WORLD_SIZE`` is unset or 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    owns = False
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # Only rank 0 validates; the others wait for it in their next collective, so the
        # timeout must outlast a validation pass.
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(hours=1))
        owns = True
    if dist.get_world_size() != world or dist.get_rank() != rank:
        raise RuntimeError(f"process group (rank {dist.get_rank()} of {dist.get_world_size()}) "
                           f"disagrees with RANK={rank} WORLD_SIZE={world}")
    return DistInfo(rank=rank, world_size=world, local_rank=local, owns_group=owns)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


class EpochShardSampler(Sampler[int]):
    """This rank's sample indices for one epoch, from ``start_batch`` on.

    The permutation depends only on (seed, epoch), so a resumed run skips the batches
    already consumed instead of replaying data.  Each epoch uses the largest multiple of
    ``world_size * batch_size`` samples (drop_last), dealt round-robin to the ranks
    (like ``DistributedSampler``), so every rank gets the same number of full batches
    (unequal counts would leave one rank waiting in a collective forever).  It yields
    plain indices, so any dataset with ``set_epoch`` works.
    """

    def __init__(self, length: int, *, batch_size: int, seed: int, epoch: int, rank: int = 0,
                 world_size: int = 1, start_batch: int = 0) -> None:
        self.length, self.batch_size = length, batch_size
        self.seed, self.epoch = seed, epoch
        self.rank, self.world_size = rank, world_size
        self.start_batch = start_batch

    @staticmethod
    def batches_per_epoch(length: int, batch_size: int, world_size: int = 1) -> int:
        return length // (batch_size * world_size)

    def __iter__(self) -> Iterator[int]:
        # The data layer's order stream for (seed, epoch).
        perm = torch.randperm(self.length, generator=item_generator(self.seed, self.epoch, 0, stream=1))
        usable = self.batches_per_epoch(self.length, self.batch_size, self.world_size)
        usable *= self.batch_size * self.world_size
        mine = perm[:usable][self.rank::self.world_size]
        return iter(mine[self.start_batch * self.batch_size:].tolist())

    def __len__(self) -> int:
        per_rank = self.batches_per_epoch(self.length, self.batch_size, self.world_size)
        return max(per_rank - self.start_batch, 0) * self.batch_size
