"""Device choice: auto picks what exists; a wrong name is one clear error."""
from __future__ import annotations

import pytest
import torch

from irconstyle.runtime.devices import resolve_device
from irconstyle.train.distributed import pick_device


def test_auto_and_cpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else None
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")
    if expected:
        assert resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name, message", [
    ("nonsense", "not a device"),
    ("meta", "unsupported device type"),
    ("cuda:99", "no such CUDA device"),
])
def test_bad_names_are_clear_errors(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_device(name)
    with pytest.raises(ValueError, match=message):
        pick_device(name)
