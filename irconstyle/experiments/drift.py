"""Drift between code versions, measured: one run re-trained at a later commit against its
committed record (issue 23.7: the arms of a comparison come from one package version, or the
drift between versions is measured and stated).

Training on the CPU is deterministic, so a rerun of the same configuration at a commit whose
changes do not touch the numerics reproduces the record to the last bit; any difference is
drift, and its size is what a cross-version comparison must be read against.

    python -m irconstyle.experiments.drift OLD.json RERUN.json --out results/drift/NAME.json
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from .pairing import config_differences
from .records import read_record

__all__ = ["record_drift", "main"]


def _max_abs(a: list, b: list, where: str) -> float:
    if len(a) != len(b):
        raise ValueError(f"{where}: {len(a)} values in one record, {len(b)} in the other")
    return max((abs(float(x) - float(y)) for x, y in zip(a, b)), default=0.0)


def record_drift(old: dict, new: dict) -> dict:
    """What differs between a committed record ``old`` and its rerun ``new``.

    The two must describe the same run (task, arm, seed, configuration); a configuration that
    differs is refused with the keys, since its differences would not be drift.  Returns, per
    test metric and weights, the largest per-image absolute difference and the difference of
    the means; the same for the last validation metrics and the logged loss curves; and
    ``identical``: whether every number matched exactly."""
    for key in ("task", "arm", "seed"):
        if old["run"][key] != new["run"][key]:
            raise ValueError(f"not the same run: {key} {old['run'][key]!r} against {new['run'][key]!r}")
    differing = config_differences(old.get("config", {}), new.get("config", {}))
    if differing:
        raise ValueError("the configurations differ, so a difference would not be drift: "
                         + "; ".join(differing))
    if old["images"] != new["images"]:
        raise ValueError("the two records score different test photos")
    metrics = {}
    for weights, per_metric in old["metrics"].items():
        for name, values in per_metric.items():
            if not isinstance(values, list):  # the per-metric means: derived from the lists
                continue
            other = new["metrics"][weights][name]
            where = f"metrics.{weights}.{name}"
            metrics[f"{weights}/{name}"] = {
                "max_abs_per_image": _max_abs(values, other, where),
                "mean_old": sum(values) / len(values),
                "mean_new": sum(other) / len(other),
                "mean_diff": sum(other) / len(other) - sum(values) / len(values)}
    val_old = (old.get("validation") or {}).get("metrics") or {}
    val_new = (new.get("validation") or {}).get("metrics") or {}
    validation = {k: float(val_new[k]) - float(val_old[k]) for k in sorted(val_old) if k in val_new}
    curves_old, curves_new = old.get("loss_curves") or {}, new.get("loss_curves") or {}
    curves = {}
    for k in sorted(curves_old):
        if k == "step" or k not in curves_new:
            continue
        pairs = [(x, y) for x, y in zip(curves_old[k], curves_new[k])
                 if isinstance(x, (int, float)) and isinstance(y, (int, float))
                 and math.isfinite(x) and math.isfinite(y)]
        curves[k] = max((abs(x - y) for x, y in pairs), default=0.0)
    identical = (all(m["max_abs_per_image"] == 0.0 for m in metrics.values())
                 and all(v == 0.0 for v in validation.values())
                 and all(v == 0.0 for v in curves.values()))
    commit = lambda r: (r.get("provenance") or {}).get("git_commit")  # noqa: E731
    return {"run": dict(old["run"]), "experiment": (old.get("experiment") or {}).get("name"),
            "old_commit": commit(old), "new_commit": commit(new),
            "identical": identical, "test": metrics, "validation": validation,
            "loss_curves_max_abs": curves}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="the committed record")
    parser.add_argument("new", help="the same run re-trained at another commit")
    parser.add_argument("--out", help="write the measured drift here (JSON)")
    args = parser.parse_args(argv)
    drift = record_drift(read_record(args.old), read_record(args.new))
    drift["record"] = args.old  # the rerun lives outside the repository: its commit says where
    text = json.dumps(drift, indent=1) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    worst = max((m["max_abs_per_image"] for m in drift["test"].values()), default=0.0)
    print(f"{'identical' if drift['identical'] else 'drift'}: {drift['old_commit']} -> "
          f"{drift['new_commit']}, largest per-image test difference {worst:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
