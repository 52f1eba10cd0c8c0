"""The book's figure helpers draw exactly the numbers they are given: the points and
intervals of a paired comparison, every logged value of each loss term on its own axis,
and the very pixels of the box a restoration figure enlarges."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display in tests

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from irconstyle.experiments.summary import ArmComparison  # noqa: E402
from irconstyle.book.plots import loss_panels, paired_differences, restoration_panels  # noqa: E402
from irconstyle.experiments.stats import paired_bootstrap_ci  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def comparison(arm: str, shift: float, seeds: int = 3, images: int = 6, task: str = "denoise25",
               seed: int = 0) -> ArmComparison:
    rng = np.random.default_rng(seed)
    ref = rng.normal(28.0, 1.0, (seeds, images))
    a = ref + shift + rng.normal(0.0, 0.2, (seeds, images))
    ci = paired_bootstrap_ci(a, ref, n_boot=500)
    return ArmComparison(task, arm, "constyle", "psnr_rgb", "ema", tuple(range(seeds)),
                         tuple(f"img{i}" for i in range(images)), a, ref, ci)


# ---------------------------------------------------------------------------- paired_differences
def test_paired_differences_draws_per_image_means_and_the_intervals() -> None:
    comps = [comparison("general", 0.3, seed=1), comparison("nafnet_matched", -0.9, seed=2)]
    fig, ax = plt.subplots()
    paired_differences(ax, comps, labels={"general": "general network"})
    strips = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(strips) == 2
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2
    for y, (c, strip, bar) in enumerate(zip(comps, strips, bars)):
        # each point: the image's difference averaged over seeds, computed here by loops
        expected = [sum(c.arm_values[s, i] - c.reference_values[s, i] for s in range(3)) / 3
                    for i in range(6)]
        xy = strip.get_offsets()
        np.testing.assert_allclose(sorted(xy[:, 0]), sorted(expected), rtol=0, atol=1e-12)
        assert np.all(np.abs(xy[:, 1] - y) < 0.5)  # jittered around its own row
        marker, _, (segments,) = bar.lines
        assert marker.get_xdata()[0] == pytest.approx(np.mean(expected), abs=1e-12)
        assert marker.get_ydata()[0] == y
        (seg,) = segments.get_segments()
        np.testing.assert_allclose(seg[:, 0], [c.ci.lo, c.ci.hi], atol=1e-12)
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == ["general network", "nafnet_matched"]
    notes = [t.get_text() for t in ax.texts]
    assert notes == ["3 seeds x 6 images", "3 seeds x 6 images"]
    assert "psnr_rgb difference, arm - constyle (dB)" == ax.get_xlabel()
    assert ax.get_title() == "denoise25"


def test_paired_differences_refuses_what_it_cannot_draw_honestly() -> None:
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="no comparison"):
        paired_differences(ax, [])
    empty = ArmComparison("denoise25", "late", "constyle", "psnr_rgb", "ema", (), (),
                          np.zeros((0, 0)), np.zeros((0, 0)), None)
    with pytest.raises(ValueError, match="no paired seed.*late"):
        paired_differences(ax, [comparison("general", 0.1), empty])
    with pytest.raises(ValueError, match="one task per axis"):
        paired_differences(ax, [comparison("general", 0.1), comparison("ablated", 0.1, task="derain")])


# ---------------------------------------------------------------------------- loss_panels
def logs() -> dict[str, pd.DataFrame]:
    steps = np.arange(10, 110, 10)
    on = pd.DataFrame({"step": steps, "pixel": np.linspace(0.08, 0.04, 10),
                       "infonce": np.linspace(15.0, 5.0, 10),
                       "style": np.linspace(-0.004, -0.001, 10)})
    on.loc[7:, ["infonce", "style"]] = np.nan  # ConStyle frozen after step 70
    off = pd.DataFrame({"step": steps, "pixel": np.linspace(0.09, 0.05, 10),
                        "infonce": np.nan, "style": np.nan})
    return {"constyle": on, "general": off}


def test_loss_panels_draw_each_term_on_its_own_axis_without_the_missing_rows() -> None:
    runs = logs()
    terms = {"pixel": ("L1", "mean |error| ([0, 1] scale)"), "infonce": ("InfoNCE", "nats"),
             "style": ("style", "minus Gram MSE (<= 0)")}
    fig = loss_panels(runs, terms, log_scale=["infonce"], ncols=2)
    assert len(fig.axes) == 4 and not fig.axes[3].get_visible()  # 2 x 2, the fourth unused
    axes = fig.axes[:3]
    assert [ax.get_title() for ax in axes] == [t for t, _ in terms.values()]
    assert [ax.get_ylabel() for ax in axes] == [y for _, y in terms.values()]
    assert all(ax.get_xlabel() == "training step" for ax in axes)
    assert [ax.get_yscale() for ax in axes] == ["linear", "log", "linear"]
    pixel_lines = axes[0].get_lines()
    assert [ln.get_label() for ln in pixel_lines] == ["constyle", "general"]
    for ln, run in zip(pixel_lines, runs.values()):
        np.testing.assert_array_equal(ln.get_ydata(), run.pixel.to_numpy())
    (style,) = axes[2].get_lines()  # the general run logged no style loss: not drawn
    np.testing.assert_array_equal(style.get_xdata(), [10, 20, 30, 40, 50, 60, 70])
    np.testing.assert_allclose(style.get_ydata(), np.linspace(-0.004, -0.001, 10)[:7])
    lo, hi = axes[2].get_ylim()  # its own scale: the curve spans most of the axis
    assert hi - lo < 2 * (0.004 - 0.001) * (7 / 10) + 1e-3


def test_loss_panels_refuse_a_log_axis_for_nonpositive_values_and_missing_terms() -> None:
    with pytest.raises(ValueError, match="style of constyle has values <= 0"):
        loss_panels(logs(), {"style": ("style", "")}, log_scale=["style"])
    with pytest.raises(ValueError, match="no run logged 'content'"):
        loss_panels(logs(), {"content": ("content", "")})


# ---------------------------------------------------------------------------- restoration_panels
def test_restoration_panels_enlarge_the_pixels_of_the_box() -> None:
    rng = np.random.default_rng(0)
    chw = rng.random((3, 40, 50))
    hwc = rng.random((40, 50, 3)) * 1.2  # out of range: shown clipped, as an image
    fig = restoration_panels([("input, 20.00 dB", chw), ("output", hwc)], box=(5, 12, 16))
    full, crop = fig.axes[0], fig.axes[2]
    assert [ax.get_title() for ax in fig.axes[:2]] == ["input, 20.00 dB", "output"]
    (rect,) = [p for p in full.patches if isinstance(p, Rectangle)]
    assert rect.get_xy() == (11.5, 4.5) and rect.get_width() == 16 and rect.get_height() == 16
    shown = crop.get_images()[0].get_array()
    np.testing.assert_array_equal(shown, np.moveaxis(chw, 0, -1)[5:21, 12:28])
    shown2 = fig.axes[3].get_images()[0].get_array()
    np.testing.assert_array_equal(shown2, np.minimum(hwc[5:21, 12:28], 1.0))


def test_restoration_panels_refuse_a_box_outside_an_image() -> None:
    with pytest.raises(ValueError, match="is not inside 'small' \\(30x30\\)"):
        restoration_panels([("big", np.zeros((3, 64, 64))), ("small", np.zeros((3, 30, 30)))],
                           box=(20, 20, 16))
    with pytest.raises(ValueError, match="CHW or HWC"):
        restoration_panels([("flat", np.zeros((8, 8)))], box=(0, 0, 4))


def test_comparison_figure_one_panel_per_task_in_the_given_order() -> None:
    from irconstyle.book.plots import comparison_figure
    comps = [comparison("b", 0.3, seed=1), comparison("a", -0.2, seed=2),
             comparison("a", 0.1, task="derain", seed=3)]
    fig = comparison_figure(comps, title="t", order=["a", "b"], margin=0.1)
    top, bottom = fig.axes
    assert [t.get_text() for t in top.get_yticklabels()] == ["a", "b"]
    assert top.get_title() == "denoise25" and bottom.get_title() == "derain"
    assert fig.get_figwidth() == pytest.approx(7.0)
    shaded = [p for p in top.patches if isinstance(p, Rectangle)]
    assert any(abs(p.get_x() + 0.1) < 1e-9 and abs(p.get_width() - 0.2) < 1e-9 for p in shaded)
    with pytest.raises(ValueError, match="no comparison"):
        comparison_figure([ArmComparison("t", "x", "r", "psnr_rgb", "ema", (), (), np.zeros((0, 0)),
                                         np.zeros((0, 0)), None)], title="t")
