"""Shared test setup: one thread (CI has 2 cores, tests run deterministically)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference" / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The release's golden outputs (../shared/reference/golden beside the checkout)."""
    if not GOLDEN_DIR.is_dir():
        pytest.fail(f"golden data not found at {GOLDEN_DIR}: the checkout needs ../shared beside it")
    return GOLDEN_DIR
