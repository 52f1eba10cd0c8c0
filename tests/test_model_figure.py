"""The models chapter's figure regroups the model table by backbone without moving a
number, and draws exactly those numbers: one bar per network at its value, written on
it, and no bar (never a zero) where a backbone has no such network."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # no display in tests

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from irconstyle.book.model_figure import BACKBONES, VARIANTS, backbone_variants, variant_bars  # noqa: E402
from irconstyle.results import load_result  # noqa: E402
from irconstyle.nets.zoo import model_names  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _table() -> pd.DataFrame:
    names = [n for variants in BACKBONES.values() for n in variants.values() if n is not None]
    # distinct values per name and column, so a misplaced value shows
    return pd.DataFrame({"params": [1000.0 + 7 * i for i in range(len(names))],
                         "macs": [3.5 * (i + 1) for i in range(len(names))]}, index=names)


def test_backbone_variants_places_each_value_under_its_backbone_and_variant() -> None:
    table = _table()
    grid = backbone_variants(table, "macs")
    assert list(grid.index) == list(BACKBONES) and list(grid.columns) == list(VARIANTS)
    for backbone, variants in BACKBONES.items():
        for variant in VARIANTS:
            name = variants.get(variant)
            if name is None:
                assert math.isnan(grid.loc[backbone, variant])
            else:
                assert grid.loc[backbone, variant] == table.at[name, "macs"]
    assert math.isnan(grid.loc["plain CNN", "original"])  # the release has no plain original


def test_backbone_variants_names_what_is_missing() -> None:
    table = _table().drop(index="general_maxim")
    with pytest.raises(ValueError, match="general_maxim"):
        backbone_variants(table, "params")
    with pytest.raises(ValueError, match="cpu_ms"):
        backbone_variants(_table(), "cpu_ms")
    with pytest.raises(ValueError, match="twin"):
        backbone_variants(_table(), "params", {"NAFNet": {"twin": "nafnet"}})


def test_every_backbone_network_is_a_zoo_model_and_in_the_shipped_table() -> None:
    names = {n for variants in BACKBONES.values() for n in variants.values() if n is not None}
    assert names <= set(model_names())
    record = load_result("model_table.json")
    assert record is not None, "the package ships irconstyle/results/model_table.json"
    table = pd.DataFrame(record["rows"]).set_index("name")
    grid = backbone_variants(table, "params")
    row = next(r for r in record["rows"] if r["name"] == "constyle_nafnet")
    assert grid.loc["NAFNet", "ConStyle"] == row["params"]


def test_variant_bars_draws_each_value_once_labelled_and_nan_as_no_bar() -> None:
    grid = backbone_variants(_table(), "params")
    fig, ax = plt.subplots()
    variant_bars(ax, grid, ylabel="parameters (M)", decimals=1)
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    finite = [(b, v, grid.loc[b, v]) for b in grid.index for v in grid.columns
              if not math.isnan(grid.loc[b, v])]
    assert len(bars) == len(finite)
    heights = sorted(p.get_height() for p in bars)
    assert heights == sorted(x for _, _, x in finite)
    # every bar sits within its backbone's slot: x centre within 0.5 of the group index
    for p in bars:
        centre = p.get_x() + p.get_width() / 2
        (backbone, variant, _), = [(b, v, x) for b, v, x in finite if x == p.get_height()]
        assert abs(centre - list(grid.index).index(backbone)) < 0.5
    texts = sorted(t.get_text() for t in ax.texts)
    expected = sorted([f"{x:.1f}" for _, _, x in finite] + ["none"])
    assert texts == expected
    assert [t.get_text() for t in ax.get_xticklabels()] == list(BACKBONES)
    assert ax.get_ylabel() == "parameters (M)"
    assert ax.get_ylim()[1] > max(x for _, _, x in finite)  # room for the labels
    handles, labels = ax.get_legend_handles_labels()
    assert labels == list(VARIANTS)


def test_variant_bars_refuses_an_empty_table() -> None:
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="nothing to draw"):
        variant_bars(ax, pd.DataFrame(columns=list(VARIANTS)), ylabel="x", decimals=0)
