"""Run profiles for the notebooks: ``smoke`` (a 2-core CPU, minutes) and ``full``
(the real scale, meant for a GPU).

The profile is what the reader asks for, never guessed from the hardware: an explicit
argument, else the environment variable ``IRCONSTYLE_PROFILE``, else ``smoke``.  A GPU
workstation that runs ``pytest --nbval`` therefore computes the committed (smoke) outputs
unless ``IRCONSTYLE_PROFILE=full`` is set (``jupyter-book build`` executes nothing: it shows
the committed outputs).

``IRCONSTYLE_MAX_STEPS`` and ``IRCONSTYLE_MAX_BATCH`` cap the training length and the
batch size a notebook asks for (:func:`cap_steps`, :func:`cap_batch`), in either
profile: ``IRCONSTYLE_PROFILE=full IRCONSTYLE_MAX_STEPS=3 IRCONSTYLE_MAX_BATCH=2`` runs
the full profile's code (release widths, its configuration, every cell) on a CPU in
minutes and about a gigabyte, where batch 16 would take ten (the test suite does this).
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["PROFILES", "active_profile", "max_steps", "cap_steps", "cap_batch", "seed_everything"]

PROFILES = ("smoke", "full")
PROFILE_VARIABLE = "IRCONSTYLE_PROFILE"
MAX_STEPS_VARIABLE = "IRCONSTYLE_MAX_STEPS"
MAX_BATCH_VARIABLE = "IRCONSTYLE_MAX_BATCH"


def active_profile(name: str | None = None) -> str:
    """``name`` if given, else ``$IRCONSTYLE_PROFILE``, else ``smoke``; anything other
    than ``smoke`` or ``full`` is an error naming where it came from."""
    source = "profile" if name is not None else PROFILE_VARIABLE
    if name is None:
        name = os.environ.get(PROFILE_VARIABLE) or "smoke"
    if name not in PROFILES:
        raise ValueError(f"{source}={name!r}: expected one of {', '.join(PROFILES)}")
    return name


def _positive_int(variable: str) -> int | None:
    """The positive integer in ``$variable``, or None when it is unset or empty."""
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{variable}={raw!r}: expected a positive integer")
    return value


def max_steps() -> int | None:
    """``$IRCONSTYLE_MAX_STEPS`` (a positive integer), or None when unset."""
    return _positive_int(MAX_STEPS_VARIABLE)


def cap_steps(steps: int) -> int:
    """``steps``, or fewer when ``$IRCONSTYLE_MAX_STEPS`` says so."""
    cap = max_steps()
    return steps if cap is None else min(steps, cap)


def cap_batch(batch_size: int) -> int:
    """``batch_size``, or smaller when ``$IRCONSTYLE_MAX_BATCH`` says so."""
    cap = _positive_int(MAX_BATCH_VARIABLE)
    return batch_size if cap is None else min(batch_size, cap)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices); the CPU path is then deterministic."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
