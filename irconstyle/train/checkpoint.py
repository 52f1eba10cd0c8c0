"""Checkpoints that survive a kill and load with ``torch.load(weights_only=True)``.

* Written atomically: a temporary file in the same directory, flushed and fsynced, then
  ``os.replace``; a crash or exception mid-write leaves the previous checkpoint intact.
* Only tensors, numbers, strings, lists and dicts inside: RNG states are stored as
  tensors and the config as YAML text, so loading never needs pickle's arbitrary code
  execution (``weights_only=True``, the default since PyTorch 2.6).
* Model weights alone go to ``.safetensors`` (:func:`save_weights` / :func:`load_weights`).
"""
from __future__ import annotations

import os
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..checkpoints.weights import read_weights, tensors_sha256

__all__ = ["save_checkpoint", "load_checkpoint", "remove_stale_temporaries", "rng_state",
           "set_rng_state", "save_weights", "load_weights", "SLOW_WRITE_ENV"]

# Test hook: seconds to sleep after the data is written and before the rename, so a
# test can kill the process in the middle of a checkpoint write.
SLOW_WRITE_ENV = "IRCONSTYLE_CKPT_SLOW_WRITE"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms (Windows) cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
            delay = float(os.environ.get(SLOW_WRITE_ENV, "0") or 0)
            if delay > 0:
                time.sleep(delay)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: a
    file that needs arbitrary code to unpickle is refused, naming the file)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name and the reason
        raise ValueError(f"{path}: not a loadable training checkpoint "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc


def remove_stale_temporaries(directory: str | os.PathLike) -> None:
    """Delete temporaries left by a write that was killed (never the real files)."""
    for tmp in Path(directory).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- RNG states
def rng_state() -> dict[str, Tensor | list[Tensor]]:
    """Python, NumPy, torch (and CUDA) generator states, all as tensors."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": torch.tensor([version, *mt], dtype=torch.int64),
        "python_gauss": torch.tensor([gauss is not None, gauss or 0.0], dtype=torch.float64),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_pos": torch.tensor([pos, has_gauss], dtype=torch.int64),
        "numpy_gauss": torch.tensor([cached], dtype=torch.float64),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`; CUDA states are restored when the device count matches."""
    py = [int(x) for x in state["python"].tolist()]
    has_gauss_py, gauss = state["python_gauss"].tolist()
    random.setstate((py[0], tuple(py[1:]), gauss if has_gauss_py else None))
    pos, has_gauss = (int(x) for x in state["numpy_pos"].tolist())
    np.random.set_state(("MT19937", state["numpy_keys"].cpu().numpy().astype(np.uint32), pos,
                         has_gauss, float(state["numpy_gauss"][0])))
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


# ---------------------------------------------------------------------------- safetensors
def save_weights(model: nn.Module, path: str | os.PathLike,
                 metadata: dict[str, str] | None = None, *, drop: re.Pattern | None = None) -> Path:
    """Model weights (parameters and buffers) as ``.safetensors``, written atomically,
    with a SHA-256 of the tensors in the metadata; keys matching ``drop`` are left out."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
               if drop is None or not drop.match(k)}
    metadata = {**(metadata or {}), "sha256": tensors_sha256(tensors)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_weights(model: nn.Module, path: str | os.PathLike, *, strict: bool = True) -> nn.Module:
    """Load ``.safetensors`` weights into ``model`` (read and checked against their
    recorded SHA-256 by :func:`irconstyle.checkpoints.weights.read_weights`)."""
    weights = read_weights(path)
    if weights.format != "safetensors":
        raise ValueError(f"{path}: expected a .safetensors file, found a {weights.format} file")
    state = next(iter(weights.variants.values()))
    result = model.load_state_dict(state, strict=strict)
    if strict and (result.missing_keys or result.unexpected_keys):  # pragma: no cover
        raise RuntimeError(f"{path}: weights do not match the model: {result}")
    return model
