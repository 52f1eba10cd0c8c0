"""Choosing a torch device: ``auto`` (CUDA > MPS > CPU) or a name checked against what
this machine has, so a wrong name fails in one clear line instead of deep in torch."""
from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def resolve_device(name: str | None = "auto", *, local_rank: int = 0) -> torch.device:
    """``auto``/``None``: this process's GPU, else MPS, else the CPU.  Otherwise a device
    name (``cpu``, ``cuda``, ``cuda:N``, ``mps``) that must exist here; ``cuda`` without
    an index means this process's local GPU (``local_rank``)."""
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {name!r}: not a device (auto, cpu, cuda, cuda:N, mps)") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {name}: unsupported device type {dev.type!r} (cpu, cuda, mps)")
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
        if not torch.cuda.is_available() or dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {name}: no such CUDA device here "
                             f"({torch.cuda.device_count()} visible)")
    if dev.type == "mps" and not _mps_available():
        raise ValueError(f"device {name}: MPS is not available here")
    return dev
