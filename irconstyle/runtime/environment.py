"""Where and from what a number was measured: the machine and library versions
(:func:`environment`), and the command and git commit of the checkout (:func:`provenance`),
recorded next to every benchmark result and run record."""
from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path

import torch

__all__ = ["environment", "load_average", "provenance"]


def load_average() -> float | None:
    """The 1-minute load average (None where the system has none): above the number of
    threads a measurement uses, other processes shared its CPU."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def environment() -> dict:
    """Where the numbers were measured (recorded next to them in the JSON); the load
    average says whether other processes shared the CPU."""
    return {"torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "load_average_1m": load_average(),
            "python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def provenance(command: str) -> dict:
    """What a result file records about its origin: the command, the git commit of the
    checkout the package runs from (and whether its files differ from that commit), and
    :func:`environment`.  Git is asked read-only, with fixed arguments and no shell."""
    import subprocess  # noqa: PLC0415 - only result files need it

    root = Path(__file__).resolve().parents[2]  # the checkout (irconstyle/runtime/..)

    def git(*args: str) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None

    head = git("rev-parse", "HEAD")
    commit = head.stdout.strip() if head is not None and head.returncode == 0 else None
    dirty = git("diff-index", "--quiet", "HEAD", "--") if commit else None
    return {"command": command, "git_commit": commit,
            "git_worktree_modified": None if dirty is None else dirty.returncode == 1,
            **environment(), "platform": platform.platform()}
