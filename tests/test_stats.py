"""Intervals for paired seeds x images designs: the two-way random-effects interval with
Satterthwaite's df (the default, issue 23.1) against hand computations and, by
simulation with the deraining comparison's variance components, its coverage beside the
seed-level t and the two-way bootstrap (issue 14.2: the resampling against hand
enumeration and scipy.stats.bootstrap); the verdict rule with a margin (TOST) and
Holm's adjustment (issue 23.2); the summary table; the cost conversion (14.8)."""
from __future__ import annotations

import itertools
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats as sps

from irconstyle.experiments.cost import (RECIPE_STEPS, cost_table, device_hours, format_cost_table,
                                         from_record, from_throughput)
from irconstyle.experiments.stats import (bootstrap_means, classify, format_table, holm, paired_bootstrap_ci,
                              paired_ci, random_effects_ci, seed_t_ci, summarize,
                              variance_components)


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


# ------------------------------------------------------- random effects, seed t, coverage
# The deraining comparison's variance components (issue 23): seed SD 0.58, image SD 0.89,
# cell SD 0.36 dB, 12 test photos.
SEED_SD, IMAGE_SD, CELL_SD, N_IMAGES = 0.58, 0.89, 0.36, 12


def simulate(rng, n_seeds: int, n_draws: int, mu: float = 0.0) -> np.ndarray:
    """``n_draws`` grids of differences d[s, i] = mu + a_s + b_i + e_si."""
    return (mu + SEED_SD * rng.standard_normal((n_draws, n_seeds, 1))
            + IMAGE_SD * rng.standard_normal((n_draws, 1, N_IMAGES))
            + CELL_SD * rng.standard_normal((n_draws, n_seeds, N_IMAGES)))


def test_random_effects_matches_a_hand_computation():
    """se^2 = (MS_s + MS_i - MS_e) / (S I) and Satterthwaite's df, written out here from
    sums of squares (a two-way ANOVA without replication)."""
    rng = np.random.default_rng(11)
    d = simulate(rng, 4, 1)[0] + np.array([[1.5], [-1.0], [0.5], [0.0]])  # a clear seed term
    S, I = d.shape
    g = d.mean()
    ss_s = I * ((d.mean(1) - g) ** 2).sum()
    ss_i = S * ((d.mean(0) - g) ** 2).sum()
    ss_e = ((d - g) ** 2).sum() - ss_s - ss_i
    ms = np.array([ss_s / (S - 1), ss_i / (I - 1), ss_e / ((S - 1) * (I - 1))])
    assert ms[0] > ms[2] and ms[1] > ms[2]
    v = ms[0] + ms[1] - ms[2]
    df = v ** 2 / (ms[0] ** 2 / (S - 1) + ms[1] ** 2 / (I - 1) + ms[2] ** 2 / ((S - 1) * (I - 1)))
    se = np.sqrt(v / (S * I))
    ci = random_effects_ci(d, np.zeros_like(d), level=0.9)
    assert (ci.se, ci.df) == pytest.approx((se, df))
    q = sps.t.ppf(0.95, df)
    assert (ci.lo, ci.hi) == pytest.approx((g - q * se, g + q * se))
    assert ci.p_value == pytest.approx(2 * sps.t.sf(abs(g) / se, df))
    vc = variance_components(d)
    assert vc["seed"] == pytest.approx((ms[0] - ms[2]) / I)
    assert vc["image"] == pytest.approx((ms[1] - ms[2]) / S) and vc["cell"] == pytest.approx(ms[2])


def test_t_intervals_match_scipy():
    rng = np.random.default_rng(3)
    d = simulate(rng, 5, 1)[0]
    per_seed = d.mean(1)
    ref = sps.ttest_1samp(per_seed, 0.0)
    ci = seed_t_ci(d, np.zeros_like(d))
    assert (ci.lo, ci.hi) == pytest.approx(tuple(ref.confidence_interval(0.95)))
    assert ci.p_value == pytest.approx(ref.pvalue) and ci.df == 4
    # one seed: both t-based methods are the paired t over images, and say so
    a, b = 30 + rng.normal(0, 1, 12), 30 + rng.normal(0, 1, 12)
    ref = sps.ttest_rel(a, b)
    for method in ("random_effects", "seed_t"):
        one = paired_ci(a, b, method=method)
        assert one.method == "image_t" and one.df == 11
        assert (one.lo, one.hi) == pytest.approx(tuple(ref.confidence_interval(0.95)))
    with pytest.raises(ValueError, match="method"):
        paired_ci(a, b, method="normal")


def test_a_component_estimated_below_zero_drops_out():
    """No seed term (the per-seed means agree): the variance falls back to MS_image / (S I)
    with I - 1 df, never a negative variance."""
    rng = np.random.default_rng(0)
    d = rng.normal(0, 1, (1, 12)).repeat(3, axis=0) + rng.normal(0, 0.01, (3, 12))
    d -= d.mean(axis=1, keepdims=True) - d.mean()                   # equal seed means
    ci = random_effects_ci(d, np.zeros_like(d))
    vc = variance_components(d)
    assert vc["seed"] == 0.0 and ci.df == pytest.approx(11)
    assert ci.se == pytest.approx(np.sqrt(vc["ms_image"] / 36))


@pytest.mark.parametrize("n_seeds", [3, 5])
def test_coverage_of_a_nominal_95_interval(n_seeds, record_property):
    """The default interval covers the true difference in at least 93% of 3,000 simulated
    experiments with the deraining comparison's variance components (Monte Carlo SE about
    0.4 points); the seed-level t and the bootstrap are recorded beside it.  Images vary
    here, so the seed t (which treats the photos as fixed) under-covers too."""
    rng = np.random.default_rng(2023 + n_seeds)
    draws = simulate(rng, n_seeds, 3000, mu=0.4)
    cover = Counter()
    for i, d in enumerate(draws):
        zero = np.zeros_like(d)
        for method in ("random_effects", "seed_t"):
            ci = paired_ci(d, zero, method=method)
            cover[method] += ci.lo <= 0.4 <= ci.hi
        if i < 600:  # the bootstrap is slower: 600 draws (Monte Carlo SE about 1.4 points)
            ci = paired_bootstrap_ci(d, zero, n_boot=2000, seed=i)
            cover["bootstrap"] += ci.lo <= 0.4 <= ci.hi
    rates = {"random_effects": cover["random_effects"] / 3000, "seed_t": cover["seed_t"] / 3000,
             "bootstrap": cover["bootstrap"] / 600}
    for k, v in rates.items():
        record_property(f"coverage_{k}_{n_seeds}_seeds", round(v, 4))
    print(f"{n_seeds} seeds x {N_IMAGES} images, nominal 95%:", rates)
    assert rates["random_effects"] >= 0.93
    assert rates["bootstrap"] < rates["random_effects"]  # why it is not the default


def test_negligible_is_the_tost_and_comes_before_the_sign():
    """The interval inside the margin <=> both one-sided tests reject at (1 - level) / 2;
    a detectable but tiny effect is negligible, a wide one unresolved."""
    rng = np.random.default_rng(7)
    agree = 0
    for _ in range(300):
        d = rng.normal(rng.uniform(-0.15, 0.15), 0.05, (5, 1)) + rng.normal(0, 0.08, (5, 12))
        ci = random_effects_ci(d, np.zeros_like(d))
        assert ci.inside(0.1) == (ci.tost_p(0.1) < 0.025)
        agree += ci.inside(0.1)
    assert 0 < agree < 300  # both outcomes were exercised
    tiny = np.full((5, 12), 0.03) + rng.normal(0, 0.005, (5, 12))
    ci = random_effects_ci(tiny, np.zeros_like(tiny))
    assert ci.lo > 0 and classify(ci, 0.1) == "negligible" and classify(ci, 0.0) == "above"
    wide = rng.normal(0, 1, (3, 12))
    assert classify(random_effects_ci(wide, np.zeros_like(wide)), 0.1) == "unresolved"
    low = wide - 5
    assert classify(random_effects_ci(low, np.zeros_like(low)), 0.1) == "below"
    assert paired_bootstrap_ci(tiny, np.zeros_like(tiny)).tost_p(0.1) is None


def test_holm_adjusted_p_values():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4x, 3x, 2x, 1x, made monotone
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.2, None, 0.9]) == [0.4, None, 0.9]
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert holm([]) == []


# ----------------------------------------------------------------------------- summary
def record(task, arm, seed, values, images=("x", "y", "z")):
    return {"run": {"task": task, "arm": arm, "seed": seed}, "images": list(images),
            "metrics": {"ema": {"psnr_rgb": list(values)}, "raw": {"psnr_rgb": list(values)}}}


def test_summary_rows_pair_seeds_both_arms_have():
    base = {s: [20.0 + s, 21.0, 22.0] for s in (0, 1, 2)}
    records = [record("denoise", "nafnet", s, v) for s, v in base.items()]
    records += [record("denoise", "constyle", s, [x + 1.0 + 0.1 * s for x in base[s]])
                for s in (0, 1)]  # seed 2 of this arm is missing
    rows = summarize(records, "nafnet", method="bootstrap")
    by_arm = {r.arm: r for r in rows}
    assert by_arm["nafnet"].ci is None and by_arm["nafnet"].n_seeds == 3
    assert by_arm["nafnet"].mean == pytest.approx(np.mean([v for vs in base.values() for v in vs]))
    ci = by_arm["constyle"].ci
    assert (ci.n_seeds, ci.n_images) == (2, 3)
    assert ci.diff == pytest.approx(1.05)
    assert 1.0 - 1e-9 <= ci.lo <= ci.hi <= 1.1 + 1e-9
    text = format_table(rows, decimals=3, metric="psnr_rgb")
    assert "+1.050" in text and "(baseline)" in text and "[+1.000, +1.100] 95%" in text
    # the default: the random-effects interval; the differences vary by seed only, so it
    # is the t over the two per-seed means (1.0 and 1.1; 1 df, t = 12.71)
    default = {r.arm: r for r in summarize(records, "nafnet")}["constyle"].ci
    assert default.method == "random_effects" and default.df == pytest.approx(1.0)
    assert (default.lo, default.hi) == pytest.approx((1.05 - 12.7062 * 0.05, 1.05 + 12.7062 * 0.05),
                                                     abs=1e-3)


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
