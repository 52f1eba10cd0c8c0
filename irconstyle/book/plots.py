"""Three figures the book draws from training runs and campaign records, written once so
that every chapter shows a paired comparison, a loss log and a restoration the same way.

* :func:`paired_differences`: per arm, the per-image differences against the reference
  (points), their mean and its paired 95% interval (marker and bar), one task per axis;
* :func:`loss_panels`: one small panel per loss term, each on its own y scale, because the
  terms differ by orders of magnitude and in sign (the style loss is negative and about
  1e-3 when InfoNCE is about 10: on one shared axis it reads as 0);
* :func:`restoration_panels`: full images with a marked box above, the box enlarged below.

Needs the ``book`` extra (matplotlib, pandas, seaborn); nothing else in the package
imports this module.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

try:
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
except ImportError as exc:  # the core package does not depend on them
    raise ImportError("irconstyle.book.plots draws with matplotlib, pandas and seaborn: install "
                      "them with `pip install 'irconstyle[book]'`") from exc

from ..experiments.sensitivity import RateVerdict
from ..experiments.summary import ArmComparison
from ..experiments.trend import TrendPoint

__all__ = ["paired_differences", "comparison_figure", "loss_panels", "restoration_panels",
           "trend_panel", "rate_pilot_figure", "rate_verdict_figure"]


def paired_differences(ax: Axes, comparisons: Sequence[ArmComparison], *,
                       labels: Mapping[str, str] | None = None, unit: str = "dB") -> Axes:
    """Draw each arm of one task as a row, in the given order from the top: grey points
    are the per-image differences (arm minus reference, or reference minus arm for
    comparisons made with ``reference_first``; averaged over the paired seeds),
    the black marker their mean and its bar the comparison's interval; a vertical line
    marks no difference and the right margin says how many seeds and images each row
    rests on.  Comparisons without a paired seed (``ci is None``) are refused, so a row
    can never show an interval that was not computed."""
    if not comparisons:
        raise ValueError("paired_differences: no comparison to draw")
    missing = [c.arm for c in comparisons if c.ci is None]
    if missing:
        raise ValueError(f"paired_differences: no paired seed (no interval) for {', '.join(missing)}")
    tasks = {c.task for c in comparisons}
    if len(tasks) != 1:
        raise ValueError(f"paired_differences: one task per axis, got {sorted(tasks)}")
    names = [(labels or {}).get(c.arm, c.arm) for c in comparisons]
    points = pd.DataFrame([{"row": name, "diff": d} for name, c in zip(names, comparisons)
                           for d in c.diffs.mean(axis=0)])
    sns.stripplot(data=points, x="diff", y="row", order=names, ax=ax, color="0.6", size=4,
                  jitter=0.15, zorder=1)
    for y, c in enumerate(comparisons):
        ax.errorbar(c.ci.diff, y, xerr=[[c.ci.diff - c.ci.lo], [c.ci.hi - c.ci.diff]], fmt="o",
                    color="black", capsize=4, zorder=3)
        ax.annotate(f"{c.ci.n_seeds} seed{'s' if c.ci.n_seeds != 1 else ''} x {c.ci.n_images} images",
                    (1.0, y), xycoords=("axes fraction", "data"), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=7)
    ax.axvline(0, color="tab:red", lw=1)
    ref = comparisons[0].reference
    first = comparisons[0]
    ax.set_xlabel(f"{first.metric} difference, "
                  + (f"{ref} - arm" if first.reference_first else f"arm - {ref}") + f" ({unit})")
    ax.set_ylabel("")
    ax.set_title(comparisons[0].task)
    return ax


def comparison_figure(comparisons: Sequence[ArmComparison], *, title: str,
                      order: Sequence[str] | None = None, labels: Mapping[str, str] | None = None,
                      margin: float | None = None, width: float = 7.0) -> Figure:
    """:func:`paired_differences` for every task of ``comparisons`` (one panel each, stacked,
    rows in ``order``), sized for the book's column (``width`` inches), with the equivalence
    margin shaded when given.  Comparisons without a paired seed are left out."""
    comps = [c for c in comparisons if c.ci is not None]
    if not comps:
        raise ValueError("comparison_figure: no comparison with a paired seed")
    tasks = list(dict.fromkeys(c.task for c in comps))
    rows = [[c for c in comps if c.task == t] for t in tasks]
    if order:
        rows = [sorted(r, key=lambda c: list(order).index(c.arm)) for r in rows]
    heights = [0.45 * len(r) + 1.1 for r in rows]
    fig, axes = plt.subplots(len(tasks), 1, figsize=(width, sum(heights) + 0.5), squeeze=False,
                             sharex=True, gridspec_kw={"height_ratios": heights})
    for ax, row in zip(axes[:, 0], rows):
        paired_differences(ax, row, labels=labels)
        if margin:
            ax.axvspan(-margin, margin, color="0.92", zorder=0)
    for ax in axes[:-1, 0]:
        ax.set_xlabel("")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def loss_panels(logs: Mapping[str, pd.DataFrame], terms: Mapping[str, tuple[str, str]], *,
                log_scale: Sequence[str] = (), step: str = "step", ncols: int = 4,
                size: tuple[float, float] = (3.3, 2.6)) -> Figure:
    """One panel per column of ``terms`` (column -> (title, y-axis label with its unit)),
    ``ncols`` panels a row, each with every run of ``logs`` (name -> training log) that
    has finite values in it; rows where the term was not computed (NaN, e.g. after
    ConStyle froze) are left out, not drawn as 0.  Columns in ``log_scale`` get a
    logarithmic axis, which needs positive values (a clear error otherwise)."""
    if not terms:
        raise ValueError("loss_panels: no loss term to draw")
    ncols = max(1, min(ncols, len(terms)))
    nrows = -(-len(terms) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    for ax in axes.flat[len(terms):]:
        ax.set_visible(False)
    for ax, (col, (title, ylabel)) in zip(axes.flat, terms.items()):
        drawn = 0
        for name, log in logs.items():
            if col not in log.columns:
                continue
            rows = log[np.isfinite(log[col].astype(float))]
            if rows.empty:
                continue
            if col in log_scale and (rows[col] <= 0).any():
                raise ValueError(f"loss_panels: {col} of {name} has values <= 0 and cannot be "
                                 "drawn on a log scale (draw it on a linear axis)")
            ax.plot(rows[step], rows[col], label=name)
            drawn += 1
        if drawn == 0:
            raise ValueError(f"loss_panels: no run logged {col!r}")
        if col in log_scale:
            ax.set_yscale("log")
        if drawn > 1:
            ax.legend(fontsize=8)
        ax.set_title(title)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def _hwc(image) -> np.ndarray:
    """An image as an HWC float array: a CHW tensor or array (3 or 1 channels), or HWC."""
    arr = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3):
        raise ValueError(f"restoration_panels: expected a CHW or HWC image, got shape {arr.shape}")
    return arr


def restoration_panels(panels: Sequence[tuple[str, object]], box: tuple[int, int, int], *,
                       size: float | None = None, color: str = "yellow") -> Figure:
    """Two rows: each image of ``panels`` (title, CHW or HWC image in [0, 1]) with the box
    ``(top, left, side)`` outlined, and below it that box enlarged (nearest neighbour, so
    the pixels the metric scores are the pixels shown).  ``size`` is a panel's side in
    inches: by default 3, or less so that the figure is at most 10 in wide (1,000 px at
    100 dpi), which the book's column still shows at a readable scale
    (.ci/browser_test.py, MIN_FIGURE_SCALE)."""
    if not panels:
        raise ValueError("restoration_panels: no image to draw")
    if size is None:
        size = min(3.0, 10.0 / len(panels))
    top, left, side = box
    images = [(title, np.clip(_hwc(img), 0.0, 1.0)) for title, img in panels]
    for title, img in images:
        h, w = img.shape[:2]
        if side < 1 or top < 0 or left < 0 or top + side > h or left + side > w:
            raise ValueError(f"restoration_panels: box (top {top}, left {left}, side {side}) "
                             f"is not inside {title!r} ({h}x{w})")
    fig, axes = plt.subplots(2, len(images), figsize=(size * len(images), 2 * size), squeeze=False)
    for (title, img), full, crop in zip(images, axes[0], axes[1]):
        cmap = "gray" if img.shape[-1] == 1 else None
        full.imshow(img.squeeze(-1) if cmap else img, cmap=cmap, vmin=0, vmax=1,
                    interpolation="nearest")
        full.add_patch(Rectangle((left - 0.5, top - 0.5), side, side, fill=False,
                                 edgecolor=color, lw=1.5))
        full.set_title(title, fontsize=9)
        patch = img[top:top + side, left:left + side]
        crop.imshow(patch.squeeze(-1) if cmap else patch, cmap=cmap, vmin=0, vmax=1,
                    interpolation="nearest")
        crop.set_title(f"the box, enlarged ({side}x{side} pixels)", fontsize=8)
        full.axis("off")
        crop.set_xticks([])
        crop.set_yticks([])
        for spine in crop.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(1.5)
    fig.tight_layout()
    return fig


def trend_panel(ax: Axes, series: Mapping[str, Sequence[TrendPoint]], *, margin: float = 0.1,
                unit: str = "dB") -> Axes:
    """One gap per series (label -> points) against training steps on a log axis: the
    estimate and its interval at each run length, a line at no difference and the band
    of the equivalence margin, the seeds of each point written beside it.  Series are
    offset slightly along x so their bars do not hide each other."""
    if not any(series.values()):
        raise ValueError("trend_panel: no point to draw")
    ax.axhspan(-margin, margin, color="0.9", zorder=0, label=f"±{margin:g} {unit} (negligible)")
    ax.axhline(0.0, color="0.4", linewidth=0.8, zorder=1)
    n = len(series)
    for k, (label, points) in enumerate(series.items()):
        if not points:
            continue
        shift = 1.08 ** (k - (n - 1) / 2)
        x = np.array([p.steps for p in points], dtype=float) * shift
        y = np.array([p.ci.diff for p in points])
        err = np.array([[p.ci.diff - p.ci.lo for p in points], [p.ci.hi - p.ci.diff for p in points]])
        bars = ax.errorbar(x, y, yerr=err, fmt="o-", capsize=4, label=label, zorder=3)
        for xi, p in zip(x, points):
            ax.annotate(f"{p.ci.n_seeds}", (xi, p.ci.hi), textcoords="offset points", xytext=(0, 3),
                        ha="center", fontsize=8, color=bars[0].get_color())
    steps = sorted({p.steps for points in series.values() for p in points})
    ax.set_xscale("log")
    ax.set_xticks(steps, [f"{s:,}" for s in steps])
    ax.minorticks_off()
    ax.set_xlabel("training steps (log scale; numbers above the bars: seeds)")
    ax.set_ylabel(f"PSNR difference ({unit})")
    ax.legend(fontsize=8, loc="best")
    return ax


def rate_pilot_figure(choice: Mapping, *, labels: Mapping[str, str] | None = None,
                      width: float = 9.0) -> Figure:
    """The learning-rate pilot (a ``choice.json``): one panel per task, validation PSNR of
    the EMA weights at the last step against the rate (log axis), a line per arm, the
    chosen rate ringed.  Each arm's curve is its own: the panels compare rates within an
    arm, not arms (the validation photos are few and seed 0 only)."""
    rows = choice.get("choices") or []
    if not rows:
        raise ValueError("rate_pilot_figure: the choice holds no arm")
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(width, 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for r in (r for r in rows if r["task"] == task):
            rates = sorted(float(k) for k in r["values"])
            psnr = [r["values"][f"{k:g}"] for k in rates]
            line, = ax.plot(rates, psnr, "o-", label=(labels or {}).get(r["arm"], r["arm"]))
            ax.plot([r["chosen"]], [r["values"][f"{r['chosen']:g}"]], "o", ms=12, mfc="none",
                    color=line.get_color())
        ax.set_xscale("log")
        ticks = sorted({float(k) for r in rows for k in r["values"]})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_title(task)
        ax.set_xlabel("learning rate (log scale)")
    axes[0, 0].set_ylabel("validation PSNR, EMA weights (dB)")
    axes[0, -1].legend(fontsize=7, loc="lower right")
    fig.suptitle("The pilot: each arm's validation PSNR at three rates (ringed: chosen), seed 0",
                 fontsize=10)
    fig.tight_layout()
    return fig


def rate_verdict_figure(verdicts: Sequence[RateVerdict], *, labels: Mapping[str, str] | None = None,
                        margin: float = 0.1, unit: str = "dB", width: float = 8.0) -> Figure:
    """Each gap twice, one panel per task: its interval with every arm at the release's
    rate (grey) and with each arm at its chosen rate (black), the margin shaded.  A gap
    not measured on one side shows only the other; one measured on neither is left out."""
    shown = [v for v in verdicts if v.release is not None or v.chosen is not None]
    if not shown:
        raise ValueError("rate_verdict_figure: no gap measured at either rate")
    names = labels or {}
    tasks = list(dict.fromkeys(v.task for v in shown))
    rows = [[v for v in shown if v.task == t] for t in tasks]
    heights = [0.55 * len(r) + 1.0 for r in rows]
    fig, axes = plt.subplots(len(tasks), 1, figsize=(width, sum(heights) + 0.6), squeeze=False,
                             sharex=True, gridspec_kw={"height_ratios": heights})
    for ax, row, task in zip(axes[:, 0], rows, tasks):
        ax.axvspan(-margin, margin, color="0.92", zorder=0)
        ax.axvline(0, color="tab:red", lw=1)
        for y, v in enumerate(row):
            release = f"release's rate, {v.release_rate:g}" if v.release_rate else "release's rate"
            for ci, dy, color, what in ((v.release, -0.15, "0.55", release),
                                        (v.chosen, 0.15, "black", "chosen rates")):
                if ci is None:
                    continue
                ax.errorbar(ci.diff, y + dy, xerr=[[ci.diff - ci.lo], [ci.hi - ci.diff]], fmt="o",
                            color=color, capsize=3, label=what if y == 0 else None)
        ax.set_yticks(range(len(row)), [f"{names.get(v.arm, v.arm)} - {names.get(v.baseline, v.baseline)}"
                                        for v in row], fontsize=8)
        ax.set_ylim(len(row) - 0.5, -0.5)
        ax.set_title(task, fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="best")
    axes[-1, 0].set_xlabel(f"PSNR difference, arm - baseline ({unit}; shaded: ±{margin:g}, negligible)")
    fig.tight_layout()
    return fig
