"""What a paper-scale reproduction costs: device-hours for the release's 703,632
training iterations per model, from a *measured* time per step.

A measurement comes from a run record (its ``timing``: wall time of the trainer's
``fit`` divided by the steps it trained, validation and checkpoints included), from
``benchmarks/throughput.py``'s JSON (``model_only`` or ``end_to_end``) or from
``benchmarks/cost.py``'s JSON (the release presets' training step; a batch smaller than
the release's, timed where the release's does not fit in memory, is scaled to the
release's batch per image, and the row says so).  The hours are only as good as the
match between the measured setting and the release's (batch 16, 128x128 patches, release
widths, one GPU); every row carries the setting and the device it was measured on so a
table can say "CPU-derived" when it is.

Without a GPU measurement, :func:`flops_hours` gives what the model table's
multiply-accumulates imply at a throughput the caller *assumes*: an estimate whose only
measured input is the MAC count, to be labelled as such.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

__all__ = ["RECIPE_STEPS", "Measurement", "CostRow", "device_hours", "from_record",
           "from_throughput", "from_cost_benchmark", "cost_table", "format_cost_table",
           "flops_hours"]

RECIPE_STEPS = 703_632  # the release's iterations per model (every release YAML)


@dataclass(frozen=True)
class Measurement:
    model: str
    seconds_per_step: float
    device_name: str
    batch_size: int | None
    patch_size: int | None
    source: str          # which file or record it came from
    timed_batch_size: int | None = None  # set when the step was timed at another batch and scaled


@dataclass(frozen=True)
class CostRow:
    model: str
    seconds_per_step: float
    hours: float
    device_name: str
    batch_size: int | None
    patch_size: int | None
    source: str
    timed_batch_size: int | None = None


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


def from_cost_benchmark(result: dict, *, source: str = "cost benchmark") -> list[Measurement]:
    """``benchmarks/cost.py``'s JSON: one measurement per model, at the release's batch.
    A model timed at a smaller batch is scaled by ``release batch / timed batch`` (time per
    image held constant, which a CPU saturated at the timed batch approximately satisfies);
    ``timed_batch_size`` records it."""
    out = []
    for name, e in result.get("models", {}).items():
        timed, release = int(e["batch_size"]), int(e["release_batch_size"])
        prov = e.get("provenance", {})
        device = f"cpu ({prov.get('processor') or prov.get('machine') or 'unknown'}, " \
                 f"{prov.get('cpu_threads', '?')} thread(s))"
        out.append(Measurement(model=name, seconds_per_step=float(e["seconds_per_step"]) * release / timed,
                               device_name=device, batch_size=release,
                               patch_size=e.get("patch_size"), source=source,
                               timed_batch_size=timed if timed != release else None))
    return out


def cost_table(measurements: Sequence[Measurement], *, steps: int = RECIPE_STEPS) -> list[CostRow]:
    """One row per measurement: hours for ``steps`` iterations."""
    return [CostRow(m.model, m.seconds_per_step, device_hours(m.seconds_per_step, steps=steps),
                    m.device_name, m.batch_size, m.patch_size, m.source, m.timed_batch_size)
            for m in measurements]


def flops_hours(macs_per_image: float, *, image_pixels: int, batch_size: int, patch_size: int,
                flops_per_second: float, steps: int = RECIPE_STEPS,
                backward_factor: float = 3.0) -> float:
    """Hours for ``steps`` training iterations *if* the device sustained ``flops_per_second``
    (an assumption, not a measurement).  ``macs_per_image``: one inference forward at
    ``image_pixels`` pixels (the model table's); scaled to the patch by pixel count, times
    ``backward_factor`` for forward + backward (the usual 1 + 2), times 2 FLOPs per MAC."""
    for name, v in (("macs_per_image", macs_per_image), ("flops_per_second", flops_per_second),
                    ("image_pixels", image_pixels), ("batch_size", batch_size),
                    ("patch_size", patch_size)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    flops_per_step = 2 * backward_factor * macs_per_image * patch_size ** 2 / image_pixels * batch_size
    return flops_per_step * steps / flops_per_second / 3600.0


def format_cost_table(rows: Sequence[CostRow], *, decimals: int = 1) -> str:
    head = ["model", "s/step", "hours", "batch", "patch", "device", "source"]
    body = [[r.model, f"{r.seconds_per_step:.4f}", f"{r.hours:,.{decimals}f}",
             str(r.batch_size) + (f" (timed at {r.timed_batch_size}, scaled)"
                                  if r.timed_batch_size else ""),
             str(r.patch_size), r.device_name, r.source] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                     for line in [head, *body])
