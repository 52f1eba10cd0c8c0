"""Provenance of one experiment run: :func:`irconstyle.runtime.environment.provenance` (command,
git commit and dirty flag, environment) plus what decides a trained network's numbers:
a hash of the package's source, the torch / CUDA / cuDNN versions, the device, the
compute dtype, the TF32 switches and the thread count.  No hostname, no user name."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import torch

from ..runtime.environment import provenance as base_provenance

__all__ = ["package_hash", "package_modified", "run_provenance"]

_PACKAGE = Path(__file__).resolve().parents[1]  # .../irconstyle
_SUFFIXES = (".py", ".yml", ".yaml")


def _package_files() -> tuple[list[Path], str]:
    """The package's source files: git's tracked files when git answers (so a stray
    local file does not change the hash), else every source file under the folder."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", "."], cwd=_PACKAGE,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        out = None
    if out is not None and out.returncode == 0 and out.stdout:
        files = [_PACKAGE / p for p in out.stdout.split("\0") if p.endswith(_SUFFIXES)]
        return sorted(f for f in files if f.is_file()), "git ls-files"
    return sorted(p for p in _PACKAGE.rglob("*") if p.suffix in _SUFFIXES and p.is_file()), "folder"


def package_hash() -> dict:
    """SHA-256 over (relative path, content) of the package's tracked .py/.yml files as
    they are on disk now: two runs with the same hash ran the same package code, even
    from an uncommitted tree."""
    files, source = _package_files()
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(_PACKAGE).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return {"package_sha256": h.hexdigest(), "package_files": len(files),
            "package_files_from": source}


def package_modified() -> bool | None:
    """Whether the package's files differ from the checkout's commit: a tracked file
    changed (staged or not) or an untracked, not ignored file under the package.
    ``None`` where git does not answer (an installed wheel).  Unlike the checkout-wide
    ``git_worktree_modified``, records and notes elsewhere in the tree do not count, so
    a record that says ``False`` was trained by exactly the commit it names."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", "."],
                             cwd=_PACKAGE, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return any(line.strip() for line in out.stdout.splitlines())


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    from ..runtime.environment import environment
    return f"cpu ({environment()['processor']})"


def run_provenance(command: str, *, device: torch.device | str = "cpu",
                   amp_dtype: torch.dtype | None = None) -> dict:
    """The provenance block of a run record (see the module docstring)."""
    device = torch.device(device)
    return {
        **base_provenance(command),
        **package_hash(),
        "package_modified": package_modified(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": str(device),
        "device_name": _device_name(device),
        "dtype": "float32",
        "amp_dtype": None if amp_dtype is None else str(amp_dtype).replace("torch.", ""),
        "cuda_available": torch.cuda.is_available(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
    }
