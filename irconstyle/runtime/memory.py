"""Resident memory of this process, as the benchmarks measure it: the kernel's
``/proc/self/status`` fields on Linux (``VmHWM``, the peak, can be reset, and starts afresh
at exec), ``getrusage``'s ``ru_maxrss`` elsewhere (which a child inherits from its parent
across exec, so it may hold a peak that is not the child's)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["status_bytes", "reset_peak", "maxrss_bytes", "peak_rss_bytes"]


def status_bytes(field: str) -> int | None:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``, ...) in bytes; None off
    Linux or when the field is absent."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Start the peak resident set afresh (Linux: ``5`` into ``/proc/self/clear_refs``
    resets ``VmHWM``); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def maxrss_bytes() -> int:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in bytes (the kernel reports kB on Linux)."""
    import resource  # noqa: PLC0415 - POSIX only

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_bytes() -> int:
    """This process's peak resident set: ``VmHWM`` where /proc has it, else ``ru_maxrss``."""
    peak = status_bytes("VmHWM")
    return peak if peak is not None else maxrss_bytes()
