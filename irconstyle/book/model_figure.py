"""The models chapter's figure: every backbone's networks side by side, one bar each.

The model table has one row per network; plotted as one point per network, a
ConStyle network and its general twin differ by a few percent and hide each other.
Here the table is regrouped by backbone (:func:`backbone_variants`: the release's
original network, the general network without ConStyle, the ConStyle network) and
drawn as grouped bars with each value written on its bar (:func:`variant_bars`), so a
difference of 5% is read as a number, not guessed from overlapping markers.

Needs the ``book`` extra (matplotlib, pandas); nothing else in the package imports it.
"""
from __future__ import annotations

import math
from typing import Mapping

try:
    import pandas as pd
    from matplotlib.axes import Axes
except ImportError as exc:  # the core package does not depend on them
    raise ImportError("irconstyle.book.model_figure draws with matplotlib and pandas: install "
                      "them with `pip install 'irconstyle[book]'`") from exc

from ..experiments.report import fmt

__all__ = ["BACKBONES", "VARIANTS", "VARIANT_COLOURS", "backbone_variants", "variant_bars"]

VARIANTS = ("original", "general", "ConStyle")
# backbone -> variant -> zoo name (None: the release has no such network)
BACKBONES: dict[str, dict[str, str | None]] = {
    "NAFNet": {"original": "nafnet", "general": "general_nafnet", "ConStyle": "constyle_nafnet"},
    "Restormer": {"original": "restormer", "general": "general_restormer",
                  "ConStyle": "constyle_restormer"},
    "MAXIM": {"original": "maxim", "general": "general_maxim", "ConStyle": "constyle_maxim"},
    "plain CNN": {"original": None, "general": "plain", "ConStyle": "constyle_plain"},
}
VARIANT_COLOURS = {"original": "0.55", "general": "tab:blue", "ConStyle": "tab:red"}


def backbone_variants(table: pd.DataFrame, column: str,
                      backbones: Mapping[str, Mapping[str, str | None]] = BACKBONES) -> pd.DataFrame:
    """``table[column]`` (a model table indexed by zoo name) regrouped: one row per
    backbone, one column per variant of :data:`VARIANTS`, NaN where the backbone has no
    such network.  A name or column missing from ``table`` is a clear error."""
    if column not in table.columns:
        raise ValueError(f"backbone_variants: the model table has no column {column!r} "
                         f"(columns: {', '.join(map(str, table.columns))})")
    missing = sorted(name for names in backbones.values() for name in names.values()
                     if name is not None and name not in table.index)
    if missing:
        raise ValueError(f"backbone_variants: the model table has no row for {', '.join(missing)}")
    unknown = sorted({v for names in backbones.values() for v in names} - set(VARIANTS))
    if unknown:
        raise ValueError(f"backbone_variants: unknown variant(s) {', '.join(unknown)}; "
                         f"expected some of {', '.join(VARIANTS)}")
    rows = {backbone: {v: (float(table.loc[names[v], column]) if names.get(v) is not None
                           else math.nan) for v in VARIANTS}
            for backbone, names in backbones.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(VARIANTS))


def variant_bars(ax: Axes, values: pd.DataFrame, *, ylabel: str, decimals: int,
                 colours: Mapping[str, str] = VARIANT_COLOURS, width: float = 0.8) -> Axes:
    """Grouped bars on ``ax``: one group per row of ``values`` (left to right), one bar
    per column (in order, coloured by ``colours``), each bar labelled with its value at
    ``decimals`` decimals (:func:`irconstyle.experiments.report.fmt`).  A NaN draws no bar and its
    slot is labelled "none", so a missing network is never read as a zero."""
    if values.empty:
        raise ValueError("variant_bars: nothing to draw")
    n = len(values.columns)
    bar = width / n
    for j, variant in enumerate(values.columns):
        offset = (j - (n - 1) / 2) * bar
        labelled = False  # one legend entry per variant
        for i, v in enumerate(values[variant]):
            x = i + offset
            if math.isnan(v):
                ax.annotate("none", (x, 0), xytext=(0, 2), textcoords="offset points",
                            ha="center", va="bottom", fontsize=7, rotation=90, color="0.4")
                continue
            ax.bar(x, v, bar, color=colours.get(variant, "0.3"),
                   label=None if labelled else str(variant))
            labelled = True
            ax.annotate(fmt(v, decimals), (x, v), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(range(len(values.index)), [str(i) for i in values.index])
    ax.set_ylabel(ylabel)
    top = max(float(values.max(skipna=True).max()), 0.0)
    ax.set_ylim(0, top * 1.3 if top > 0 else 1.0)  # room for the labels above the bars
    return ax
