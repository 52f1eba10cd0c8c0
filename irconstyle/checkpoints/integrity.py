"""File integrity of checkpoint files, shared by our reader (:mod:`.weights`) and the
authors' (:mod:`.release`): zip CRC-32s that ``torch.load`` never checks, and a SHA-256
over a state dict for safetensors exports."""
from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Mapping

import torch
from torch import Tensor

__all__ = ["WeightsError", "check_zip_crc", "tensors_sha256"]


class WeightsError(ValueError):
    """A weights file that cannot be read or does not fit the model; names the file."""


def check_zip_crc(path: str | os.PathLike) -> None:
    """``torch.save`` writes a zip archive whose members carry CRC-32s, which
    ``torch.load`` never checks: a flipped bit in the weights would load silently.
    Verify them (one extra read of the file); not a zip (legacy format): nothing to do."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except Exception as exc:  # noqa: BLE001 - BadZipFile, zlib.error, OSError...
        raise WeightsError(f"{path}: corrupt checkpoint archive ({type(exc).__name__}: "
                           f"{exc})") from exc
    if bad is not None:
        raise WeightsError(f"{path}: corrupt checkpoint: member {bad!r} fails its CRC-32 check "
                           "(a damaged copy; download or copy it again)")


def tensors_sha256(tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of a state dict, in name order.

    Safetensors has no checksum of its own; our exports store this digest in their
    metadata (``sha256``) so a flipped bit in the tensor data is detected on reading."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
