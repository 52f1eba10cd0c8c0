"""A validation split carved out of a training folder, so that no model is selected on a
test set (issue 13.1; the release validated on parts of its test sets, B18).

The rule is deterministic and applied by both sides: the sources of a folder dataset are
grouped by a key read from their names (``group``, a regular expression whose first
group is the key; by default the whole name), the distinct keys are sorted, and every
``every``-th key (the 1st, the ``every+1``-th, ...) is *held out*: a ``train`` split
skips its sources, a ``val`` split reads only them.  Grouping keeps images of one scene
together: Rain14000's 14 rain variants of a background (``{id}_{k}``), RESIDE OTS's 35
hazy versions of a clear image (``{id}_{A}_{beta}``), a GoPro sequence's frames
(``{sequence}_{frame}``) or a DFWB photo's 512 px sub-images (``{photo}_s{k}``).
"""
from __future__ import annotations

import re

from torch import Tensor

from .paired import NoisyImages, PairedImages, RestorationDataset

__all__ = ["HeldOut", "held_out_keys", "source_names"]


def source_names(dataset: RestorationDataset) -> list[str]:
    """The name of every source of a folder dataset, in its order (no image is read)."""
    if isinstance(dataset, PairedImages):
        return [p.name for p in dataset.pairs]
    if isinstance(dataset, NoisyImages):
        return [dataset.name(i) for i in range(dataset.num_sources())]
    raise TypeError(f"hold_out needs a folder dataset (kinds paired, denoise, dehaze, derain), "
                    f"got {type(dataset).__name__}")


def _key(name: str, pattern: re.Pattern) -> str:
    match = pattern.fullmatch(name)
    if match is None:
        raise ValueError(f"hold_out.group {pattern.pattern!r} does not match the source name "
                         f"{name!r}; give a pattern that matches every name in the folder")
    return match.group(1) if pattern.groups else match.group(0)


def held_out_keys(names: list[str], *, every: int, group: str = "(.*)") -> set[str]:
    """The group keys held out of ``names``: every ``every``-th of the sorted keys."""
    pattern = re.compile(group)
    keys = sorted({_key(n, pattern) for n in names})
    return set(keys[::every])


class HeldOut(RestorationDataset):
    """``base`` restricted by the hold-out rule: without the held-out sources for a
    ``train`` split, only them for a ``val`` split.  Items follow the dataset contract of
    :mod:`.paired` (crops and transforms drawn from ``(seed, epoch, index)``)."""

    def __init__(self, base: RestorationDataset, *, every: int, group: str = "(.*)") -> None:
        if base.split == "test":
            raise ValueError("hold_out carves a validation split out of a training folder; "
                             "a test split has no use for it")
        if every < 2:
            raise ValueError(f"hold_out.every must be >= 2 (1 would hold out everything), got {every}")
        super().__init__(split=base.split, patch_size=base.patch_size, seed=base.seed,
                         repeats=base.repeats)
        self.base = base
        names = source_names(base)
        pattern = re.compile(group)
        held = held_out_keys(names, every=every, group=group)
        keep_held = base.split == "val"
        self.sources = [i for i, n in enumerate(names) if (_key(n, pattern) in held) == keep_held]
        if not self.sources:
            raise ValueError(f"hold_out (every {every}, group {group!r}) leaves no source for the "
                             f"{base.split} split of {len(names)} sources")

    def num_sources(self) -> int:
        return len(self.sources)

    def load(self, i: int) -> tuple[Tensor | None, Tensor, str]:
        return self.base.load(self.sources[i])

    def make_lq(self, lq, gt, g, name):  # noqa: ANN001 - the base class's signature
        return self.base.make_lq(lq, gt, g, name)
