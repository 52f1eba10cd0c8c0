"""Intervals for the difference between two arms scored on the same images with the
same seeds, the verdict rule with an equivalence margin, Holm's adjustment, and the
summary table of an experiment's records.

The design is crossed: every seed of an arm is scored on the same test images, and
arm A's seed ``k`` is paired with arm B's seed ``k`` (same seed: same initialisation
stream, data order and training degradations).  The per-cell difference
``d[s, i] = a[s, i] - b[s, i]`` varies with the image (which photos the test set
happens to hold) and with the seed (training randomness); a conclusion should hold for
other images *and* other seeds.  The unit that repeats is the seed: with 3 or 5 of them
the interval must use the small-sample distribution of a seed-level variance, not a
normal approximation.

Three intervals, all for ``mean(d)``:

* ``random_effects`` (the default): the two-way random-effects model
  ``d[s, i] = mu + a_s + b_i + e_si`` with independent normal seed, image and cell terms.
  ``Var(mean d) = s2_seed / S + s2_image / I + s2_cell / (S I)`` is estimated from the
  ANOVA mean squares (negative component estimates truncated at 0), and the interval is
  ``mean d +- t_q(df) * se`` with Satterthwaite's degrees of freedom.  It generalises to
  other seeds *and* other images, and its df fall to ``S - 1`` (t = 4.30 at 3 seeds)
  when the seed term dominates.  Assumes: normal, homoscedastic terms; seeds and images
  exchangeable; the design balanced (every seed on every image).
* ``seed_t``: the t interval over the per-seed mean differences (``S - 1`` df).  It needs
  no assumption about images, but treats the test photos as fixed: it answers "on these
  photos" and under-covers the mean over other photos when images vary (module test).
* ``bootstrap``: the two-way ("pigeonhole", Owen 2007) percentile bootstrap: seeds and
  images resampled independently with replacement.  Kept for comparison with earlier
  results.  With 3 seeds it under-covers: resampling 3 values underestimates their
  variance by a third and its quantiles are normal-like where 2 df call for t = 4.30
  (simulated in tests/test_stats.py: about 87% for a nominal 95% at 3 seeds).

With one seed the seed variance cannot be estimated: ``random_effects`` and ``seed_t``
then fall back to the paired t over images (``I - 1`` df), and the interval says
``method='image_t'``: it covers image-to-image variation only.

The verdict rule (:func:`classify`): with an equivalence margin ``delta`` (the ledger
uses 0.1 dB), an effect is ``negligible`` when the interval lies inside
``(-delta, +delta)``, which is the two one-sided tests (TOST) at the interval's one-sided
level; otherwise ``above`` (interval above 0), ``below`` or ``unresolved``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from scipy import stats as _st

__all__ = ["PairedCI", "BootstrapCI", "METHODS", "bootstrap_means", "paired_bootstrap_ci",
           "random_effects_ci", "seed_t_ci", "paired_ci", "variance_components", "classify", "holm",
           "SummaryRow", "summarize", "format_table"]

METHODS = ("random_effects", "seed_t", "bootstrap")
Method = Literal["random_effects", "seed_t", "bootstrap"]


def _grid(x, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{what}: expected a non-empty (seeds, images) array or a 1-D array of "
                         f"images (one seed), got shape {np.shape(x)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: contains NaN or infinite values (an identical image gives "
                         "PSNR inf: drop it or score another metric)")
    return arr


def _pair(a, b, level: float) -> tuple[np.ndarray, np.ndarray]:
    a, b = _grid(a, "a"), _grid(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a {a.shape} and b {b.shape} must pair cell by cell (seeds, images)")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return a, b


@dataclass(frozen=True)
class PairedCI:
    """Mean of each arm, their difference ``a - b`` and its interval at ``level``.
    ``se``, ``df`` and ``p_value`` (two-sided, no difference) exist for the t-based
    methods; ``n_boot`` for the bootstrap."""

    mean_a: float
    mean_b: float
    diff: float
    lo: float
    hi: float
    n_images: int
    n_seeds: int
    level: float
    method: str = "bootstrap"
    n_boot: int | None = None
    se: float | None = None
    df: float | None = None
    p_value: float | None = None

    def excludes_zero(self) -> int:
        """+1 if the interval lies above 0, -1 if below, 0 if it contains 0."""
        return 1 if self.lo > 0 else -1 if self.hi < 0 else 0

    def inside(self, margin: float) -> bool:
        """Whether the interval lies strictly inside ``(-margin, +margin)``."""
        return -margin < self.lo and self.hi < margin

    def tost_p(self, margin: float) -> float | None:
        """p-value of the two one-sided tests of ``|mu| >= margin`` (the larger of the two
        one-sided p-values; small: the effect is within the margin).  It is below
        ``(1 - level) / 2`` exactly when the interval lies inside the margin."""
        if self.se is None or self.df is None:
            return None
        if self.se == 0:
            return 0.0 if abs(self.diff) < margin else 1.0
        p_low = _st.t.sf((self.diff + margin) / self.se, self.df)    # H0: mu <= -margin
        p_high = _st.t.cdf((self.diff - margin) / self.se, self.df)  # H0: mu >= +margin
        return float(max(p_low, p_high))


BootstrapCI = PairedCI  # the name of earlier releases


def _t_interval(a: np.ndarray, b: np.ndarray, se: float, df: float, level: float,
                method: str) -> PairedCI:
    d = float((a - b).mean())
    if se == 0:
        lo = hi = d
        p = 1.0 if d == 0 else 0.0
    else:
        q = float(_st.t.ppf(0.5 + level / 2, df))
        lo, hi = d - q * se, d + q * se
        p = float(2 * _st.t.sf(abs(d) / se, df))
    return PairedCI(mean_a=float(a.mean()), mean_b=float(b.mean()), diff=d, lo=lo, hi=hi,
                    n_images=a.shape[1], n_seeds=a.shape[0], level=level, method=method,
                    se=se, df=df, p_value=p)


def _image_t(a: np.ndarray, b: np.ndarray, level: float) -> PairedCI:
    """One seed: the paired t over images (seed variance not estimable)."""
    d = (a - b)[0]
    if d.size < 2:
        raise ValueError("one seed and one image: no interval can be formed")
    return _t_interval(a, b, float(d.std(ddof=1) / math.sqrt(d.size)), d.size - 1, level, "image_t")


def variance_components(d) -> dict[str, float]:
    """ANOVA mean squares of a (seeds x images) grid and the variance components they
    estimate (negative estimates truncated at 0): ``seed``, ``image``, ``cell`` (SDs
    squared), with the mean squares ``ms_seed``, ``ms_image``, ``ms_cell``."""
    d = _grid(d, "d")
    n_s, n_i = d.shape
    if n_s < 2 or n_i < 2:
        raise ValueError(f"variance components need >= 2 seeds and >= 2 images, got {d.shape}")
    m, ms, mi = d.mean(), d.mean(axis=1), d.mean(axis=0)
    ms_seed = n_i * float(((ms - m) ** 2).sum()) / (n_s - 1)
    ms_image = n_s * float(((mi - m) ** 2).sum()) / (n_i - 1)
    resid = d - ms[:, None] - mi[None, :] + m
    ms_cell = float((resid ** 2).sum()) / ((n_s - 1) * (n_i - 1))
    return {"ms_seed": ms_seed, "ms_image": ms_image, "ms_cell": ms_cell,
            "seed": max(0.0, (ms_seed - ms_cell) / n_i),
            "image": max(0.0, (ms_image - ms_cell) / n_s), "cell": ms_cell}


def random_effects_ci(a, b, *, level: float = 0.95) -> PairedCI:
    """The two-way random-effects interval of ``mean(a - b)`` with Satterthwaite's degrees
    of freedom (module docstring).  ``Var(mean d) = (MS_seed + MS_image - MS_cell) / (S I)``
    when both components are positive; a component estimated at or below 0 drops out with
    the cell term it would subtract (``MS_image / (S I)``, ``MS_seed / (S I)`` or
    ``MS_cell / (S I)``), so the variance is never negative and the df are those of the
    mean squares kept.  One seed: the paired t over images."""
    a, b = _pair(a, b, level)
    n_s, n_i = a.shape
    if n_s == 1:
        return _image_t(a, b, level)
    if n_i == 1:
        return seed_t_ci(a, b, level=level)
    vc = variance_components(a - b)
    keep_seed, keep_image = vc["ms_seed"] > vc["ms_cell"], vc["ms_image"] > vc["ms_cell"]
    df_s, df_i, df_c = n_s - 1, n_i - 1, (n_s - 1) * (n_i - 1)
    if keep_seed and keep_image:
        terms = [(vc["ms_seed"], df_s), (vc["ms_image"], df_i), (-vc["ms_cell"], df_c)]
    elif keep_seed:
        terms = [(vc["ms_seed"], df_s)]
    elif keep_image:
        terms = [(vc["ms_image"], df_i)]
    else:
        terms = [(vc["ms_cell"], df_c)]
    v = sum(x for x, _ in terms)
    denom = sum(x * x / k for x, k in terms)
    df = v * v / denom if denom > 0 else float(df_c)
    return _t_interval(a, b, math.sqrt(max(v, 0.0) / (n_s * n_i)), df, level, "random_effects")


def seed_t_ci(a, b, *, level: float = 0.95) -> PairedCI:
    """The t interval over the per-seed mean differences (``S - 1`` df): the effect on
    these test photos, over training randomness.  One seed: the paired t over images."""
    a, b = _pair(a, b, level)
    if a.shape[0] == 1:
        return _image_t(a, b, level)
    per_seed = (a - b).mean(axis=1)
    se = float(per_seed.std(ddof=1) / math.sqrt(per_seed.size))
    return _t_interval(a, b, se, per_seed.size - 1, level, "seed_t")


def paired_ci(a, b, *, method: Method = "random_effects", level: float = 0.95,
              n_boot: int = 10_000, seed: int = 0) -> PairedCI:
    """The interval of ``mean(a - b)`` by ``method`` (one of :data:`METHODS`)."""
    if method == "random_effects":
        return random_effects_ci(a, b, level=level)
    if method == "seed_t":
        return seed_t_ci(a, b, level=level)
    if method == "bootstrap":
        return paired_bootstrap_ci(a, b, n_boot=n_boot, level=level, seed=seed)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def classify(ci: PairedCI, margin: float) -> str:
    """``negligible`` (the interval inside ``(-margin, +margin)``: the TOST rejects an
    effect of ``margin`` or more), else ``above`` / ``below`` (the interval excludes 0 on
    that side) or ``unresolved`` (it contains 0 and reaches past the margin).  An effect
    can be detectably non-zero and still negligible: the margin decides what matters."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if margin > 0 and ci.inside(margin):
        return "negligible"
    return {1: "above", -1: "below", 0: "unresolved"}[ci.excludes_zero()]


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (``None`` entries pass through and do not count
    as tests): reject where the adjusted p is below the family's level, and the
    family-wise error rate is at most that level for any dependence between the tests."""
    idx = [i for i, p in enumerate(p_values) if p is not None]
    order = sorted(idx, key=lambda i: p_values[i])
    m = len(order)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[i] = running
    return out


def bootstrap_means(d, *, n_boot: int = 10_000, seed: int = 0) -> np.ndarray:
    """``n_boot`` two-way bootstrap replicates of the mean of ``d`` (seeds x images):
    seeds and images resampled independently, with replacement (module docstring)."""
    d = _grid(d, "d")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    n_s, n_i = d.shape
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    chunk = max(1, 2_000_000 // (n_s * n_i))  # bounded memory
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        s = rng.integers(0, n_s, size=(m, n_s))
        i = rng.integers(0, n_i, size=(m, n_i))
        # mean over the crossed selection d[s][:, i], for m replicates at once
        out[start:start + m] = d[s[:, :, None], i[:, None, :]].mean(axis=(1, 2))
    return out


def paired_bootstrap_ci(a, b, *, n_boot: int = 10_000, level: float = 0.95,
                        seed: int = 0) -> PairedCI:
    """The two-way percentile bootstrap interval of ``mean(a - b)`` (module docstring: it
    under-covers with few seeds; kept for comparison).  Deterministic for a given ``seed``."""
    a, b = _pair(a, b, level)
    d = a - b
    reps = bootstrap_means(d, n_boot=n_boot, seed=seed)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(reps, [alpha, 1 - alpha])
    return PairedCI(mean_a=float(a.mean()), mean_b=float(b.mean()), diff=float(d.mean()),
                    lo=float(lo), hi=float(hi), n_images=a.shape[1], n_seeds=a.shape[0],
                    level=level, method="bootstrap", n_boot=n_boot)


# ----------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class SummaryRow:
    task: str
    arm: str
    mean: float
    n_images: int
    n_seeds: int
    ci: PairedCI | None  # None for the baseline row


def _value(v) -> float:
    return float(v)  # records write non-finite values as "inf"/"nan": float() reads them


def _grid_of(records: list[dict], metric: str, weights: str) -> tuple[dict[int, list[float]], list[str]]:
    """{seed: per-image values} and the image names of one arm's records."""
    by_seed, names = {}, None
    for r in records:
        where = f"{r['run']['task']}/{r['run']['arm']}/seed{r['run']['seed']}"
        if weights not in r["metrics"]:
            raise KeyError(f"{where}: no {weights!r} weights in the record "
                           f"(has {', '.join(r['metrics'])})")
        if metric not in r["metrics"][weights]:
            raise KeyError(f"{where}: no metric {metric!r}")
        if names is not None and r["images"] != names:
            raise ValueError(f"{where}: scored on other images than the arm's other seeds")
        names = r["images"]
        by_seed[r["run"]["seed"]] = [_value(v) for v in r["metrics"][weights][metric]]
    return by_seed, names or []


def summarize(records: Sequence[dict], baseline_arm: str, *, metric: str = "psnr_rgb",
              weights: str = "ema", method: Method = "random_effects", n_boot: int = 10_000,
              level: float = 0.95, seed: int = 0) -> list[SummaryRow]:
    """One row per (task, arm): the arm's mean, and (other arms) its difference from
    ``baseline_arm`` with a paired interval (``method``) over the seeds both arms have."""
    tasks: dict[str, dict[str, list[dict]]] = {}
    for r in records:
        tasks.setdefault(r["run"]["task"], {}).setdefault(r["run"]["arm"], []).append(r)
    rows = []
    for task, arms in tasks.items():
        if baseline_arm not in arms:
            raise KeyError(f"task {task!r}: no records of the baseline arm {baseline_arm!r} "
                           f"(arms: {', '.join(arms)})")
        base, base_names = _grid_of(arms[baseline_arm], metric, weights)
        for arm, recs in arms.items():
            grid, names = _grid_of(recs, metric, weights)
            values = np.array(list(grid.values()))
            ci = None
            if arm != baseline_arm:
                if names != base_names:
                    raise ValueError(f"task {task!r}: arms {arm!r} and {baseline_arm!r} were "
                                     "scored on different images; they cannot be paired")
                seeds = sorted(set(grid) & set(base))
                if not seeds:
                    raise ValueError(f"task {task!r}: arms {arm!r} and {baseline_arm!r} share "
                                     "no seed; they cannot be paired")
                ci = paired_ci([grid[s] for s in seeds], [base[s] for s in seeds], method=method,
                               n_boot=n_boot, level=level, seed=seed)
            rows.append(SummaryRow(task, arm, float(values.mean()), values.shape[1],
                                   values.shape[0], ci))
    return rows


def format_table(rows: Sequence[SummaryRow], *, decimals: int = 2, metric: str = "") -> str:
    """Fixed-width text: task, arm, mean, difference vs the baseline, interval, n."""
    head = ["task", "arm", f"mean {metric}".strip(), "diff", "CI", "images", "seeds"]
    body = []
    for r in rows:
        f = f"{{:.{decimals}f}}"
        if r.ci is None:
            diff, ci = "(baseline)", ""
        else:
            diff = f"{r.ci.diff:+.{decimals}f}"
            ci = f"[{r.ci.lo:+.{decimals}f}, {r.ci.hi:+.{decimals}f}] {round(100 * r.ci.level)}%"
        n_seeds = str(r.n_seeds) if r.ci is None else f"{r.ci.n_seeds}"
        body.append([r.task, r.arm, f.format(r.mean), diff, ci, str(r.n_images), n_seeds])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *body]]
    return "\n".join(lines)
