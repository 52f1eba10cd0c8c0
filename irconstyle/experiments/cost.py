"""What a paper-scale reproduction costs: device-hours for the release's 703,632
training iterations per model, from a *measured* time per step.

A measurement comes from a run record (its ``timing``: wall time of the trainer's
``fit`` divided by the steps it trained, validation and checkpoints included) or from
``benchmarks/throughput.py``'s JSON (``model_only`` or ``end_to_end``).  The hours
are only as good as the match between the measured setting and the release's (batch
16, 128x128 patches, release widths, one GPU); every row carries the setting and the
device it was measured on so a table can say "CPU-derived" when it is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

__all__ = ["RECIPE_STEPS", "Measurement", "CostRow", "device_hours", "from_record",
           "from_throughput", "cost_table", "format_cost_table"]

RECIPE_STEPS = 703_632  # the release's iterations per model (every release YAML)


@dataclass(frozen=True)
class Measurement:
    model: str
    seconds_per_step: float
    device_name: str
    batch_size: int | None
    patch_size: int | None
    source: str          # which file or record it came from


@dataclass(frozen=True)
class CostRow:
    model: str
    seconds_per_step: float
    hours: float
    device_name: str
    batch_size: int | None
    patch_size: int | None
    source: str


def device_hours(seconds_per_step: float, *, steps: int = RECIPE_STEPS) -> float:
    """Hours for ``steps`` iterations at ``seconds_per_step``, on the measuring device."""
    if not (isinstance(seconds_per_step, (int, float)) and math.isfinite(seconds_per_step)
            and seconds_per_step > 0):
        raise ValueError(f"seconds_per_step must be a positive number, got {seconds_per_step!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return seconds_per_step * steps / 3600.0


def from_record(record: dict, source: str = "run record") -> Measurement:
    """The time per step a run record measured (``None`` steps, e.g. a run that only
    resumed to be scored, is an error: it measured nothing)."""
    t, cfg = record["timing"], record["config"]
    if not t.get("seconds_per_step"):
        raise ValueError(f"{source}: this record trained no step in its process "
                         f"(resumed at step {t.get('resumed_from_step')}); it measured no speed")
    return Measurement(model=cfg["model"]["name"], seconds_per_step=float(t["seconds_per_step"]),
                       device_name=record["provenance"].get("device_name", "unknown"),
                       batch_size=cfg.get("batch_size"),
                       patch_size=cfg["data"]["train"]["kwargs"].get("patch_size"), source=source)


def from_throughput(result: dict, *, which: str = "model_only",
                    source: str = "throughput benchmark") -> Measurement:
    """A ``benchmarks/throughput.py`` result: ``model_only`` (the training step on a
    batch already on the device) or ``end_to_end`` of its first run (loader included)."""
    settings = result.get("settings", {})
    if which == "model_only":
        timed = result["model_only"]
    elif which == "end_to_end":
        timed = result["runs"][0]["end_to_end"]
    else:
        raise ValueError(f"which must be 'model_only' or 'end_to_end', got {which!r}")
    return Measurement(model=settings.get("model", "unknown"),
                       seconds_per_step=1.0 / float(timed["steps_per_s"]),
                       device_name=result.get("device_name", "unknown"),
                       batch_size=settings.get("batch_size"), patch_size=settings.get("patch"),
                       source=f"{source} ({which})")


def cost_table(measurements: Sequence[Measurement], *, steps: int = RECIPE_STEPS) -> list[CostRow]:
    """One row per measurement: hours for ``steps`` iterations."""
    return [CostRow(m.model, m.seconds_per_step, device_hours(m.seconds_per_step, steps=steps),
                    m.device_name, m.batch_size, m.patch_size, m.source) for m in measurements]


def format_cost_table(rows: Sequence[CostRow], *, decimals: int = 1) -> str:
    head = ["model", "s/step", "hours", "batch", "patch", "device", "source"]
    body = [[r.model, f"{r.seconds_per_step:.4f}", f"{r.hours:,.{decimals}f}", str(r.batch_size),
             str(r.patch_size), r.device_name, r.source] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                     for line in [head, *body])
