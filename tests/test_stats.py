"""Paired bootstrap intervals (issue 14.2): the resampling against hand enumeration and
scipy.stats.bootstrap, the summary table, and the cost conversion (14.8)."""
from __future__ import annotations

import itertools
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats as sps

from irconstyle.experiments.cost import (RECIPE_STEPS, cost_table, device_hours, format_cost_table,
                                         from_record, from_throughput)
from irconstyle.stats import bootstrap_means, format_table, paired_bootstrap_ci, summarize


def exact_distribution(d: list[list[float]]) -> dict[Fraction, Fraction]:
    """Every equally likely two-way resample (seeds and images drawn independently with
    replacement), enumerated in exact arithmetic."""
    n_s, n_i = len(d), len(d[0])
    dist: Counter = Counter()
    for seeds in itertools.product(range(n_s), repeat=n_s):
        for images in itertools.product(range(n_i), repeat=n_i):
            total = sum(Fraction(d[s][i]) for s in seeds for i in images)
            dist[total / (n_s * n_i)] += 1
    n = n_s ** n_s * n_i ** n_i
    return {k: Fraction(v, n) for k, v in dist.items()}


@pytest.mark.parametrize("d", [[[0, 1]], [[0, 1], [2, 4]], [[0, 3, 1], [1, 1, 5]]])
def test_replicates_follow_the_enumerated_distribution(d):
    reps = bootstrap_means(d, n_boot=60_000, seed=1)
    exact = exact_distribution(d)
    seen = Counter(Fraction(x).limit_denominator(1000) for x in reps)
    assert set(seen) <= set(exact)
    for value, p in exact.items():
        assert seen[value] / len(reps) == pytest.approx(float(p), abs=0.01), value


def test_percentile_interval_of_a_known_distribution():
    # one seed, differences 0 and 1: the bootstrap mean is 0, 0.5, 1 with p 1/4, 1/2, 1/4
    a, b = np.array([1.0, 3.0]), np.array([1.0, 2.0])
    ci = paired_bootstrap_ci(a, b, level=0.9)          # quantiles 5% and 95%
    assert (ci.lo, ci.hi) == (0.0, 1.0)
    ci = paired_bootstrap_ci(a, b, level=0.4)          # quantiles 30% and 70%
    assert (ci.lo, ci.hi) == (0.5, 0.5)
    assert (ci.mean_a, ci.mean_b, ci.diff) == (2.0, 1.5, 0.5)
    assert (ci.n_images, ci.n_seeds) == (2, 1)


def test_matches_scipy_paired_percentile_bootstrap_with_one_seed():
    rng = np.random.default_rng(5)
    a = rng.normal(30, 2, size=12)
    b = a - rng.normal(0.3, 0.5, size=12)
    ours = paired_bootstrap_ci(a, b, n_boot=40_000, seed=2)
    ref = sps.bootstrap((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), paired=True,
                        vectorized=True, method="percentile", n_resamples=40_000,
                        confidence_level=0.95, random_state=np.random.default_rng(3))
    se = (a - b).std(ddof=1) / np.sqrt(12)
    assert ours.lo == pytest.approx(ref.confidence_interval.low, abs=0.05 * se)
    assert ours.hi == pytest.approx(ref.confidence_interval.high, abs=0.05 * se)


def test_seeds_widen_the_interval():
    """Seed-to-seed variation counts: the same cells, arranged as 4 seeds x 6 images with
    a seed effect, give a wider interval than the images-only bootstrap of their mean."""
    rng = np.random.default_rng(0)
    d = rng.normal(0, 0.1, size=(4, 6)) + np.array([[-1.0], [1.0], [-0.5], [0.5]])
    two_way = paired_bootstrap_ci(d, np.zeros_like(d))
    images_only = paired_bootstrap_ci(d.mean(0), np.zeros(6))
    assert two_way.hi - two_way.lo > 3 * (images_only.hi - images_only.lo)
    assert two_way.diff == pytest.approx(d.mean()) and two_way.excludes_zero() == 0


def test_interval_is_deterministic_and_checks_input():
    a, b = np.arange(6.0).reshape(2, 3), np.zeros((2, 3))
    assert paired_bootstrap_ci(a, b, seed=4) == paired_bootstrap_ci(a, b, seed=4)
    assert paired_bootstrap_ci(a + 3, a).lo == paired_bootstrap_ci(a + 3, a).hi == 3.0
    with pytest.raises(ValueError, match="pair cell by cell"):
        paired_bootstrap_ci(a, b[:, :2])
    with pytest.raises(ValueError, match="NaN or infinite"):
        paired_bootstrap_ci([1.0, np.inf], [0.0, 0.0])
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap_ci(a, b, level=95)


# ----------------------------------------------------------------------------- summary
def record(task, arm, seed, values, images=("x", "y", "z")):
    return {"run": {"task": task, "arm": arm, "seed": seed}, "images": list(images),
            "metrics": {"ema": {"psnr_rgb": list(values)}, "raw": {"psnr_rgb": list(values)}}}


def test_summary_rows_pair_seeds_both_arms_have():
    base = {s: [20.0 + s, 21.0, 22.0] for s in (0, 1, 2)}
    records = [record("denoise", "nafnet", s, v) for s, v in base.items()]
    records += [record("denoise", "constyle", s, [x + 1.0 + 0.1 * s for x in base[s]])
                for s in (0, 1)]  # seed 2 of this arm is missing
    rows = summarize(records, "nafnet")
    by_arm = {r.arm: r for r in rows}
    assert by_arm["nafnet"].ci is None and by_arm["nafnet"].n_seeds == 3
    assert by_arm["nafnet"].mean == pytest.approx(np.mean([v for vs in base.values() for v in vs]))
    ci = by_arm["constyle"].ci
    assert (ci.n_seeds, ci.n_images) == (2, 3)
    assert ci.diff == pytest.approx(1.05)
    assert 1.0 - 1e-9 <= ci.lo <= ci.hi <= 1.1 + 1e-9
    text = format_table(rows, decimals=3, metric="psnr_rgb")
    assert "+1.050" in text and "(baseline)" in text and "[+1.000, +1.100] 95%" in text


def test_summary_refuses_unpairable_records():
    records = [record("t", "a", 0, [1.0, 2.0, 3.0]),
               record("t", "b", 0, [1.0, 2.0, 3.0], images=("x", "y", "w"))]
    with pytest.raises(ValueError, match="different images"):
        summarize(records, "a")
    with pytest.raises(KeyError, match="baseline arm 'c'"):
        summarize(records, "c")
    with pytest.raises(KeyError, match="no 'swa' weights"):
        summarize(records, "a", weights="swa")


# ----------------------------------------------------------------------------- cost
def test_cost_from_record_and_throughput():
    assert device_hours(0.5) == pytest.approx(0.5 * 703_632 / 3600) and RECIPE_STEPS == 703_632
    rec = {"timing": {"seconds_per_step": 0.25, "resumed_from_step": 0},
           "config": {"model": {"name": "nafnet"}, "batch_size": 16,
                      "data": {"train": {"kwargs": {"patch_size": 128}}}},
           "provenance": {"device_name": "NVIDIA H200"}}
    thr = {"device_name": "cpu", "settings": {"model": "constyle_nafnet", "batch_size": 4, "patch": 64},
           "model_only": {"steps_per_s": 2.0}, "runs": [{"end_to_end": {"steps_per_s": 1.0}}]}
    rows = cost_table([from_record(rec), from_throughput(thr),
                       from_throughput(thr, which="end_to_end")])
    assert [r.hours for r in rows] == pytest.approx([0.25 * 703_632 / 3600, 0.5 * 703_632 / 3600,
                                                     703_632 / 3600])
    assert rows[0].device_name == "NVIDIA H200" and rows[1].batch_size == 4
    assert "48.9" in format_cost_table(rows)  # 0.25 s x 703,632 / 3600 = 48.86 h
    with pytest.raises(ValueError, match="measured no speed"):
        from_record({**rec, "timing": {"seconds_per_step": None, "resumed_from_step": 3}})
    with pytest.raises(ValueError, match="positive"):
        device_hours(0.0)
