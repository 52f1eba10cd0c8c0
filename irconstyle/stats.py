"""Paired bootstrap confidence intervals for the difference between two arms, and the
summary table of an experiment's records.

The design is crossed: every seed of an arm is scored on the same test images, and
arm A's seed ``k`` is paired with arm B's seed ``k`` (same seed: same initialisation
stream, data order and training degradations).  The per-cell difference
``d[s, i] = a[s, i] - b[s, i]`` varies with the image (which photos the test set
happens to hold) and with the seed (training randomness); a conclusion should hold for
other images *and* other seeds.

Resampling: the two-way ("pigeonhole", Owen 2007) bootstrap.  Each replicate draws
``n_seeds`` seeds and, independently, ``n_images`` images with replacement and takes
the mean of ``d`` over the crossed selection.  Resampling the (seed, image) cells
jointly instead would treat 3 seeds x 12 images as 36 independent units, when cells
sharing an image (or a seed) are correlated: it would give intervals too narrow.
Resampling images only would ignore seed-to-seed variation (with one seed the two
coincide: the ordinary paired bootstrap of :func:`scipy.stats.bootstrap`).  The
two-way bootstrap is mildly conservative (it counts the cell noise twice); we prefer
that to optimism.  The interval is the percentile interval of the replicates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["BootstrapCI", "bootstrap_means", "paired_bootstrap_ci", "SummaryRow", "summarize",
           "format_table"]


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


@dataclass(frozen=True)
class BootstrapCI:
    """Mean of each arm, their difference ``a - b`` and its percentile interval."""

    mean_a: float
    mean_b: float
    diff: float
    lo: float
    hi: float
    n_images: int
    n_seeds: int
    level: float
    n_boot: int

    def excludes_zero(self) -> int:
        """+1 if the interval lies above 0, -1 if below, 0 if it contains 0."""
        return 1 if self.lo > 0 else -1 if self.hi < 0 else 0


def paired_bootstrap_ci(a, b, *, n_boot: int = 10_000, level: float = 0.95,
                        seed: int = 0) -> BootstrapCI:
    """Confidence interval of ``mean(a - b)``; ``a`` and ``b`` are (seeds, images) arrays
    paired cell by cell (1-D = one seed).  Deterministic for a given ``seed``."""
    a, b = _grid(a, "a"), _grid(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a {a.shape} and b {b.shape} must pair cell by cell (seeds, images)")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    d = a - b
    reps = bootstrap_means(d, n_boot=n_boot, seed=seed)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(reps, [alpha, 1 - alpha])
    return BootstrapCI(mean_a=float(a.mean()), mean_b=float(b.mean()), diff=float(d.mean()),
                       lo=float(lo), hi=float(hi), n_images=a.shape[1], n_seeds=a.shape[0],
                       level=level, n_boot=n_boot)


# ----------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class SummaryRow:
    task: str
    arm: str
    mean: float
    n_images: int
    n_seeds: int
    ci: BootstrapCI | None  # None for the baseline row


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
              weights: str = "ema", n_boot: int = 10_000, level: float = 0.95,
              seed: int = 0) -> list[SummaryRow]:
    """One row per (task, arm): the arm's mean, and (other arms) its difference from
    ``baseline_arm`` with a paired bootstrap interval over the seeds both arms have."""
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
                ci = paired_bootstrap_ci([grid[s] for s in seeds], [base[s] for s in seeds],
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
