"""Choosing a torch device: ``auto`` (CUDA > MPS > CPU) or a name checked against what
this machine has, so a wrong name fails in one clear line instead of deep in torch; and
the one way a tensor reaches a model's device (:func:`to_model_device`), so code written
on a CPU keeps working when the model lives on a GPU."""
from __future__ import annotations

import itertools

import torch

__all__ = ["resolve_device", "model_device", "to_model_device"]


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


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model`` computes: the device of its first parameter (else buffer); the CPU
    for a module that holds no tensors."""
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return torch.device("cpu") if tensor is None else tensor.device


def to_model_device(x: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """``x`` on ``model``'s device (the same tensor when it is already there)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"to_model_device: expected a tensor, got {type(x).__name__}")
    return x.to(model_device(model))
