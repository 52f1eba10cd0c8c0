"""Run profiles for the notebooks: ``smoke`` (a 2-core CPU, minutes) and ``full``
(a GPU, the real scale).

Selected by the environment variable ``IRCONSTYLE_PROFILE``; without it a machine
with CUDA gets ``full`` and anything else ``smoke``.  The tests set ``smoke``
explicitly so notebook outputs are comparable.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["active_profile", "seed_everything"]

PROFILES = ("smoke", "full")


def active_profile() -> str:
    name = os.environ.get("IRCONSTYLE_PROFILE")
    if name is None:
        return "full" if torch.cuda.is_available() else "smoke"
    if name not in PROFILES:
        raise ValueError(f"IRCONSTYLE_PROFILE={name!r}: expected one of {', '.join(PROFILES)}")
    return name


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices); the CPU path is then deterministic."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
