"""Result files of the benchmarks (model table, reliability campaign, ...), package data.
May import: nothing.

Shipped as package data so that a notebook finds them wherever the package is installed
(Colab has no ``benchmarks/`` folder).  The benchmark scripts write here (:func:`results_dir`) and
the book reads through :func:`load_result`: one copy of each file."""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["results_dir", "load_result"]


def _check_name(name: str) -> str:
    if not name.endswith(".json") or Path(name).name != name:
        raise ValueError(f"result {name!r}: expected a file name ending in .json, without folders")
    return name


def results_dir() -> Path:
    """The folder the benchmark scripts write to: this package's folder (in a clone with
    an editable install, ``irconstyle/results/`` of the source tree)."""
    return Path(__file__).resolve().parent


def load_result(name: str) -> dict[str, Any] | None:
    """The parsed JSON result ``name`` shipped with the package, or None when this
    installation has no such file (the caller then says so and computes what it can)."""
    entry = resources.files(__name__).joinpath(_check_name(name))
    if not entry.is_file():
        return None
    text = entry.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"result file {name} of the irconstyle package is not valid JSON: "
                         f"{exc}") from None
