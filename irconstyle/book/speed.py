"""Reading ``benchmarks/sidebyside.py``'s result file: ours against the authors' release,
one row per (model, mode, size, comparison), for the book's models chapter.

The speedup is the release's median step time over ours (above 1: ours is faster).
Its range pairs each side's quartiles the unfavourable and the favourable way round
(``release q1 / ours q3`` to ``release q3 / ours q1``): how far the ratio moves with the
step-to-step spread, not a confidence interval."""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

__all__ = ["side_by_side_table", "profile_table", "errors"]


def side_by_side_table(result: Mapping[str, Any]) -> pd.DataFrame:
    """One row per timed comparison, with both medians (s), the speedup and its range."""
    rows = []
    for r in result["rows"]:
        if "error" in r:  # a comparison one side could not run: reported by errors()
            continue
        o, rel = r["ours"], r["release"]
        row = {"model": r["model"], "mode": r["mode"], "size": r["size"], "batch": r["batch"],
               "comparison": r["comparison"], "ours_s": o["median_s"], "release_s": rel["median_s"],
               "speedup": rel["median_s"] / o["median_s"],
               "speedup_low": rel["q1_s"] / o["q3_s"], "speedup_high": rel["q3_s"] / o["q1_s"],
               "steps": min(o["n"], rel["n"])}
        for who, side in (("ours", o), ("release", rel)):
            mem = side.get("child_memory") or {}
            if "peak_bytes" in mem and "baseline_bytes" in mem:
                row[f"{who}_step_memory_bytes"] = mem["peak_bytes"] - mem["baseline_bytes"]
            elif "peak_bytes" in side:  # CUDA: max_memory_allocated
                row[f"{who}_step_memory_bytes"] = side["peak_bytes"]
        rows.append(row)
    return pd.DataFrame(rows)


def profile_table(result: Mapping[str, Any], key: str, top: int = 8) -> pd.DataFrame:
    """The ``top`` operators by self time of each side for one profiled case
    (``model/mode/size/bB``), as milliseconds per step, side by side."""
    prof = result.get("profiles", {}).get(key)
    if prof is None:
        known = ", ".join(sorted(result.get("profiles", {}))) or "none"
        raise KeyError(f"no profile {key!r} in the side-by-side result (profiled: {known})")
    per_step = {}
    for who in ("ours", "release"):
        steps = prof[who]["steps"]
        per_step[who] = {e["op"]: e["self_cpu_ms"] / steps for e in prof[who]["top"]}
    ops = sorted(set(per_step["ours"]) | set(per_step["release"]),
                 key=lambda op: -max(per_step["ours"].get(op, 0.0), per_step["release"].get(op, 0.0)))
    table = pd.DataFrame({"ours ms/step": [per_step["ours"].get(op) for op in ops],
                          "release ms/step": [per_step["release"].get(op) for op in ops]}, index=ops)
    table.index.name = "operator"
    totals = {who: prof[who]["self_cpu_total_ms"] / prof[who]["steps"] for who in ("ours", "release")}
    table.attrs["total_ms_per_step"] = totals
    return table.head(top)


def errors(result: Mapping[str, Any]) -> list[str]:
    """The comparisons that did not run, each with the error the run recorded."""
    return [f"{r['model']} {r['mode']} {r['size']} b{r['batch']} {r['comparison']}: {r['error']}"
            for r in result["rows"] if "error" in r]
