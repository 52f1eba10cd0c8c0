"""The golden fill rule (tests/fixtures/golden/README.md), as a test helper."""
from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import torch


def fill_tensor(key: str, shape: list[int]) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    if key.endswith("num_batches_tracked") or key.endswith("queue_ptr"):
        return torch.zeros(shape, dtype=torch.long)
    if key.endswith("running_var"):
        return torch.rand(shape, generator=g) + 0.5
    if key.endswith("running_mean"):
        return torch.randn(shape, generator=g) * 0.1
    if len(shape) >= 2:
        return torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
    return torch.randn(shape, generator=g) * 0.1


def golden_state_dict(golden_dir: Path, model: str) -> dict[str, torch.Tensor]:
    spec = json.loads((golden_dir / f"{model}_keys.json").read_text())
    return {k: fill_tensor(k, s) for k, s in spec["keys"].items()}


def rel_err(ours: torch.Tensor, ref) -> float:
    """Max absolute difference relative to the reference's max magnitude."""
    ref_t = torch.as_tensor(ref)
    return float((ours.detach() - ref_t).abs().max() / ref_t.abs().max())
