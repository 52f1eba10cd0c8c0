"""Shared test setup: one thread (CI has 2 cores, tests run deterministically)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

# Vendored from the project's shared reference (tests/fixtures/golden/README.md): the tests own
# their data, so a bare `git clone` runs them.
GOLDEN_DIR = Path(__file__).resolve().parent / "fixtures" / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The release's golden outputs, vendored in tests/fixtures/golden."""
    if not GOLDEN_DIR.is_dir():
        pytest.fail(f"golden data not found at {GOLDEN_DIR}: tests/fixtures/golden is part of the repository")
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def golden(golden_dir: Path) -> dict[str, np.ndarray]:
    """The arrays of golden.npz (inputs, outputs, codes, training-forward checks)."""
    with np.load(golden_dir / "golden.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def release_sd(golden_dir: Path):
    """``release_sd(name)``: the fill-rule state dict in the release's key names, cached."""
    from golden import golden_state_dict

    cache: dict[str, dict[str, torch.Tensor]] = {}

    def get(name: str) -> dict[str, torch.Tensor]:
        if name not in cache:
            cache[name] = golden_state_dict(golden_dir, name)
        return cache[name]

    return get
