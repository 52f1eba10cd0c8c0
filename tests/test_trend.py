"""The trend with training length (issue 23.6): points per run length from records, the
change of the gap with its Welch interval, the sentence generated from the intervals,
and the figure."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from irconstyle.experiments.trend import describe_trend, gap_change, gap_trend

IMAGES = [f"img{i}" for i in range(8)]


def records(steps: int, gap: float, seeds=(0, 1, 2, 3, 4), noise=0.05, seed=0) -> list[dict]:
    rng = np.random.default_rng(seed + steps)
    out = []
    for s in seeds:
        base = rng.normal(25, 1, len(IMAGES))
        for arm, values in (("ablated", base), ("constyle", base + gap + rng.normal(0, noise, len(IMAGES)))):
            out.append({"run": {"task": "derain", "arm": arm, "seed": s}, "images": IMAGES,
                        "config": {"total_iters": steps},
                        "metrics": {"ema": {"psnr_rgb": values.tolist()}}})
    return out


def test_points_follow_the_records_and_skip_lengths_without_pairs():
    by_steps = {600: records(600, 0.3), 2400: records(2400, 0.6), 9600: records(9600, 0.9)[:1]}
    points = gap_trend(by_steps, task="derain", arm="constyle", baseline="ablated")
    assert [p.steps for p in points] == [600, 2400]          # 9600 has one arm only
    assert points[0].ci.diff == pytest.approx(0.3, abs=0.05) and points[0].ci.n_seeds == 5
    assert points[0].ci.method == "random_effects"
    with pytest.raises(ValueError, match="trained for"):
        gap_trend({600: records(2400, 0.3)}, task="derain", arm="constyle", baseline="ablated")


def test_gap_change_is_welch():
    points = gap_trend({600: records(600, 0.2, noise=0.3), 9600: records(9600, 0.8, noise=0.3)},
                       task="derain", arm="constyle", baseline="ablated")
    a, b = points[0].ci, points[1].ci
    ch = gap_change(*points)
    var = a.se ** 2 + b.se ** 2
    df = var ** 2 / (a.se ** 4 / a.df + b.se ** 4 / b.df)
    assert ch.diff == pytest.approx(b.diff - a.diff) and ch.df == pytest.approx(df)
    assert ch.hi - ch.diff == pytest.approx(sps.t.ppf(0.975, df) * math.sqrt(var))


@pytest.mark.parametrize("gaps, words", [
    ((0.2, 0.6, 1.2), "grows with training"),
    ((1.2, 0.6, 0.2), "shrinks with training"),
    ((0.01, -0.01, 0.0), "stays inside ±0.1 dB at every length"),
])
def test_the_sentence_follows_the_intervals(gaps, words):
    by_steps = {s: records(s, g, noise=0.02) for s, g in zip((600, 2400, 9600), gaps)}
    points = gap_trend(by_steps, task="derain", arm="constyle", baseline="ablated")
    text = describe_trend(points, label="ConStyle over its ablation")
    assert words in text and text.startswith("ConStyle over its ablation: 600 steps:")
    assert "9,600 steps" in text
    assert "nothing to conclude" in describe_trend([])
    assert "no trend can be read yet" in describe_trend(points[:1])


def test_unresolved_change():
    by_steps = {600: records(600, 0.5, noise=2.0, seeds=(0, 1, 2)),
                9600: records(9600, 0.6, noise=2.0, seeds=(0, 1, 2))}
    points = gap_trend(by_steps, task="derain", arm="constyle", baseline="ablated")
    assert "No change with training is resolved" in describe_trend(points)


def test_trend_panel_draws_every_point():
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from irconstyle.book.plots import trend_panel

    by_steps = {600: records(600, 0.3), 2400: records(2400, 0.5)}
    points = gap_trend(by_steps, task="derain", arm="constyle", baseline="ablated")
    fig, ax = plt.subplots()
    trend_panel(ax, {"ConStyle - ablation": points, "empty": []}, margin=0.1)
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["600", "2,400"]
    diffs = [p.ci.diff for p in points]
    assert any(len(c.get_ydata()) == 2 and np.allclose(c.get_ydata(), diffs) for c in ax.lines)
    with pytest.raises(ValueError, match="no point"):
        trend_panel(ax, {"a": []})
    plt.close(fig)
