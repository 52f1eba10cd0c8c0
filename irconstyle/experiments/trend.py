"""The trend with training length (issue 23.6): one gap (arm minus baseline) measured at
several run lengths, and whether it grows, shrinks or stays inside the margin.

Each length is its own experiment (``trend_derain_2400.yml``, ...; the 600-step point is
the CPU campaign's), trained from scratch with the recipe sized for that length, so the
points are independent estimates: the change of the gap from the shortest to the longest
run has the variance of the two points added, with Welch-Satterthwaite's degrees of
freedom.  The words come from the intervals (:func:`describe_trend`), never typed.

    points = gap_trend({600: r600, 2400: r2400, 9600: r9600}, task="derain",
                       arm="constyle", baseline="ablated")
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from scipy import stats as _st

from .report import fmt, interval
from .stats import PairedCI, classify
from .summary import compare_to_reference

__all__ = ["TrendPoint", "GapChange", "gap_trend", "gap_change", "describe_trend"]


@dataclass(frozen=True)
class TrendPoint:
    """The gap ``arm - baseline`` after ``steps`` training steps, with its interval."""

    steps: int
    arm: str
    baseline: str
    ci: PairedCI


@dataclass(frozen=True)
class GapChange:
    """The gap at the longest run minus the gap at the shortest, with its interval."""

    first: int
    last: int
    diff: float
    lo: float
    hi: float
    df: float
    level: float


def gap_trend(records_by_steps: Mapping[int, Sequence[dict]], *, task: str, arm: str,
              baseline: str, test: str | None = None, weights: str = "ema",
              metric: str = "psnr_rgb", level: float = 0.95) -> list[TrendPoint]:
    """One point per run length that has paired seeds of both arms (lengths without are
    left out, so a campaign still running draws what it has), in increasing steps."""
    out = []
    for steps in sorted(records_by_steps):
        recs = [r for r in records_by_steps[steps]
                if r["run"]["task"] == task and r["run"]["arm"] in (arm, baseline)]
        found = {r["config"]["total_iters"] for r in recs}
        if found - {steps}:
            raise ValueError(f"the records given for {steps} steps trained for {sorted(found)}")
        comps = [c for c in compare_to_reference(recs, baseline, arms=[arm], metric=metric,
                                                 weights=weights, level=level, test=test)
                 if c.ci is not None]
        if comps:
            out.append(TrendPoint(steps, arm, baseline, comps[0].ci))
    return out


def gap_change(first: TrendPoint, last: TrendPoint, *, level: float = 0.95) -> GapChange:
    """The change of the gap between two run lengths (independent runs): the difference of
    the two estimates, ``se = sqrt(se1^2 + se2^2)``, Welch-Satterthwaite df."""
    a, b = first.ci, last.ci
    if a.se is None or b.se is None:
        raise ValueError("gap_change needs t-based intervals (se and df), not the bootstrap")
    var = a.se ** 2 + b.se ** 2
    denom = (a.se ** 4 / a.df if a.se else 0.0) + (b.se ** 4 / b.df if b.se else 0.0)
    df = var ** 2 / denom if denom > 0 else float(a.df + b.df)
    d = b.diff - a.diff
    q = float(_st.t.ppf(0.5 + level / 2, df)) * math.sqrt(var)
    return GapChange(first.steps, last.steps, d, d - q, d + q, df, level)


def describe_trend(points: Sequence[TrendPoint], *, margin: float = 0.1, unit: str = "dB",
                   label: str | None = None) -> str:
    """A sentence per finding, generated from the intervals: each length's outcome by the
    ledger's rule, then whether the gap changed from the shortest run to the longest (the
    interval of the change above 0, below 0, or across it)."""
    if not points:
        return "No run length has paired seeds of both arms yet: nothing to conclude."
    name = label or f"{points[0].arm} - {points[0].baseline}"
    outcome = {p.steps: classify(p.ci, margin) for p in points}
    parts = [f"{p.steps:,} steps: {interval(p.ci.diff, p.ci.lo, p.ci.hi)} {unit} "
             f"({outcome[p.steps]}, {p.ci.n_seeds} seeds)" for p in points]
    text = f"{name}: " + "; ".join(parts) + "."
    if len(points) < 2:
        return text + " One run length only: no trend can be read yet."
    if all(v == "negligible" for v in outcome.values()):
        text += f" The gap stays inside ±{margin:g} {unit} at every length measured."
    change = gap_change(points[0], points[-1])
    pct = round(100 * change.level)
    span = (f"from {change.first:,} to {change.last:,} steps the gap changed by "
            f"{fmt(change.diff, 2, signed=True)} {unit} ({pct}% interval "
            f"[{fmt(change.lo, 2, signed=True)}, {fmt(change.hi, 2, signed=True)}])")
    if change.lo > 0:
        text += f" It grows with training: {span}."
    elif change.hi < 0:
        text += f" It shrinks with training: {span}."
    else:
        text += f" No change with training is resolved: {span}, an interval across 0."
    return text
