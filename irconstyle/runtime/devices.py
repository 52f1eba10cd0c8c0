"""Choosing a torch device: ``auto`` (CUDA > MPS > CPU) or a name checked against what
this machine has, so a wrong name fails in one clear line instead of deep in torch; the
one way a tensor reaches a model's device (:func:`to_model_device`), so code written
on a CPU keeps working when the model lives on a GPU; and the memory layout and optimizer
kernel that are fastest there (:func:`fast_layout`, :func:`fused_optimizer_supported`)."""
from __future__ import annotations

import itertools

import torch

__all__ = ["resolve_device", "model_device", "to_model_device", "channels_last_pays", "fast_layout",
           "fused_optimizer_supported", "synchronize"]


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


def channels_last_pays(device: torch.device) -> bool:
    """Whether convolutions run faster on NHWC (``channels_last``) tensors here: on
    CUDA (tensor cores) and on a CPU (oneDNN's kernels).  Measured on this project's
    x86 CPU (AVX-512) by ``benchmarks/sidebyside.py``'s ``plain`` comparison, not on
    other CPUs: where it does not pay, set the trainer's ``channels_last: false``.
    MPS is left as is."""
    return torch.device(device).type in ("cuda", "cpu")


def fast_layout(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with its 4-D weights in ``channels_last`` where that pays (in place,
    as ``Module.to``).  The outputs equal the contiguous model's up to floating-point
    rounding; inputs need no conversion (a convolution with NHWC weights returns NHWC)."""
    if channels_last_pays(model_device(model)):
        model.to(memory_format=torch.channels_last)
    return model


def fused_optimizer_supported(device: torch.device) -> bool:
    """Whether AdamW's fused kernel (one kernel for all parameters instead of a loop of
    small ones) exists for ``device``: CUDA, and CPUs from torch 2.4."""
    kind = torch.device(device).type
    if kind == "cuda":
        return True
    if kind != "cpu":
        return False
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 4)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA runs it asynchronously), so that a
    clock read next measures the work and not its launch; on a CPU there is nothing to wait for."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
