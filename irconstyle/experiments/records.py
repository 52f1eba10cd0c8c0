"""One JSON file per finished run, and reading them back.

A record is written once, atomically (a temporary file in the same folder, then
``os.replace``), so its existence means the run finished: the runner skips runs whose
record exists, and a reader never sees half a file.  Layout under ``out_dir``:
``<task>/<arm>/seed<k>.json``.
"""
from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["RECORD_VERSION", "write_record", "read_record", "load_records", "loss_curves"]

RECORD_VERSION = 1


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become the strings "inf" / "-inf" / "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_record(record: dict, path: str | os.PathLike) -> Path:
    """Write ``record`` to ``path`` atomically (never a partial file at ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_clean(record), indent=1, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_record(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a valid run record ({exc})") from None
    for key in ("run", "metrics"):
        if key not in record:
            raise ValueError(f"{path}: not a run record (no '{key}')")
    return record


def load_records(out_dir: str | os.PathLike) -> list[dict]:
    """Every record under ``out_dir`` (``<task>/<arm>/seed<k>.json``), in path order;
    the training folders under ``runs/`` are not records and are not read."""
    root = Path(out_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such results folder")
    return [read_record(p) for p in sorted(root.glob("*/*/seed*.json")) if p.parts[-3] != "runs"]


def loss_curves(train_csv: str | os.PathLike, max_points: int = 200) -> dict[str, list]:
    """The trainer's ``train.csv`` as columns (``step``, ``lr``, ``loss`` and each loss
    term, ``None`` where a term was off), at most ``max_points`` rows evenly spaced
    over the run (first and last kept)."""
    path = Path(train_csv)
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) > max_points:
        idx = sorted({round(i * (len(rows) - 1) / (max_points - 1)) for i in range(max_points)})
        rows = [rows[i] for i in idx]
    keep = [k for k in (rows[0].keys() if rows else []) if k not in ("epoch", "seconds")]

    def num(key: str, v: str) -> float | int | None:
        if v in ("", None):
            return None
        return int(float(v)) if key == "step" else float(v)

    return {k: [num(k, r[k]) for r in rows] for k in keep}
