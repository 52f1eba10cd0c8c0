"""The claims ledger (``results/claims.yaml``): each claim of the paper, the comparisons
that test it, what they measured, and a verdict decided by one written rule.

A comparison names a folder of run records (relative to the ledger file), a task and
two arms (the baseline's records may live in another folder, ``baseline_results``: then
the two runs must have trained in the same setting apart from their arms' overrides,
:func:`irconstyle.experiments.pairing.check_pairable`); or, for a parameter claim, a
result file of the package (the model table) and two model names.  What it measured
(difference, interval, seeds, images, scale) is recomputed from those files, never typed
by hand: :func:`refresh` writes it, :func:`check` recomputes every verdict and reports
where the file disagrees (the test does this).  Records not there yet (a campaign still
running, a fresh clone without them) leave a comparison ``untested`` with ``measured:
null``, never an error: the ledger says what has been tested, whatever has been run.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from .. import results as package_results
from .stats import classify, holm, paired_bootstrap_ci, random_effects_ci, seed_t_ci
from ..train.config import ConfigError, _from_dict
from .cost import RECIPE_STEPS
from .pairing import check_pairable
from .records import load_records

__all__ = ["RULE", "VERDICTS", "Comparison", "Claim", "Ledger", "load_ledger", "measure",
           "verdict", "holm_verdicts", "evaluate_ledger", "refresh", "check"]

VERDICTS = ("untested", "consistent", "inconsistent", "inconclusive", "negligible")
KINDS = ("difference", "params_reduction", "params_table")

RULE = """\
Each comparison is arm minus baseline, on one task, one metric (default PSNR on RGB) of
one set of weights (default EMA), over the test images and the seeds both arms have.
kind 'difference': the two-way (seeds x images) random-effects interval at 'level' with
Satterthwaite's degrees of freedom (irconstyle.experiments.stats.random_effects_ci; the seeds are the
unit that repeats, so with 5 seeds the interval uses t with about 4 df).  The seed-level t
interval and the two-way bootstrap (n_boot and seed below) are shown beside it, not used.
With 'margin' (in the metric's unit) the comparison is
  negligible    if the interval lies inside (-margin, +margin) (two one-sided tests, each
                at (1 - level) / 2: an effect of margin or more is rejected either way),
  else consistent    if the interval excludes 0 on the side the claim states (direction),
       inconsistent  if it excludes 0 on the other side,
       inconclusive  if it contains 0.
'consistent' is about the sign only: the paper's size of effect (claimed) is reported
beside the measurement, not tested, since our scale is far from the paper's.
verdict_holm: the same rule with Holm's adjustment over the ledger's measured difference
comparisons (n_comparisons): the test of no difference (p_value) and the equivalence test
(tost_p) are each adjusted over that family, and a comparison is negligible if its adjusted
tost_p < (1 - level) / 2, else consistent or inconsistent if its adjusted p_value < 1 - level.
kind 'params_reduction': 1 - params(arm) / params(baseline) (inference parameters, from the
records); kind 'params_table': the same from a result file of the package (the model table,
inference builds at the release's defaults); consistent if it is >= claimed - tolerance,
inconsistent otherwise (verdict_holm: the same, no test is involved).
A comparison is untested (measured: null) while the records (or the file) of either side
are missing or the two arms share no seed.  A comparison with role 'context' is measured and
judged by the same rule for the reader but enters neither the claim's verdict nor Holm's
family.  A claim is untested when none of its test comparisons was measured; inconsistent
if any is; consistent if all are; negligible if all are negligible; inconclusive otherwise
(an untested comparison beside measured ones leaves it at most inconclusive); verdict_holm
combines the adjusted ones."""


@dataclass
class Comparison:
    # folder of the arm's run records, relative to the ledger file; for kind params_table
    # the name of a result file of the package (irconstyle.results.load_result)
    results: str
    arm: str
    baseline: str
    task: str | None = None       # required unless kind is params_table
    kind: Literal["difference", "params_reduction", "params_table"] = "difference"
    baseline_results: str | None = None  # the baseline's folder when not `results`
    metric: str = "psnr_rgb"
    weights: str = "ema"
    claimed: float | None = None  # the paper's number, for the reader (dB, or a fraction)
    tolerance: float = 0.0        # params kinds only
    # "test": decides the claim's verdict and is one of Holm's family; "context": measured
    # and judged by the same rule for the reader (e.g. what the U-Net template without
    # ConStyle gains over the same NAFNet), but never part of the claim's verdict
    role: Literal["test", "context"] = "test"
    measured: dict | None = None  # written by refresh(); checked by check()
    verdict: str = "untested"     # written by refresh(); checked by check()
    verdict_holm: str = "untested"  # the same rule, Holm-adjusted over the ledger

    def folders(self) -> list[str]:
        """The record folders this comparison reads (none for params_table)."""
        if self.kind == "params_table":
            return []
        return [self.results, self.baseline_results or self.results]


@dataclass
class Claim:
    id: str
    claim: str
    source: str
    direction: Literal["greater", "less"] = "greater"  # the claimed sign of arm - baseline
    comparisons: list[Comparison] = field(default_factory=list)
    verdict: str = "untested"
    verdict_holm: str = "untested"
    notes: str = ""


@dataclass
class Ledger:
    rule: str
    level: float = 0.95
    margin: float = 0.1           # the equivalence margin, in the metric's unit (dB)
    margin_why: str = ""          # why that margin, for the reader
    n_boot: int = 10_000          # the bootstrap shown beside the interval
    seed: int = 0
    n_comparisons: int = 0        # measured difference comparisons: Holm's family (refresh)
    claims: list[Claim] = field(default_factory=list)


def load_ledger(path: str | Path) -> Ledger:
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    raw_claims = data.pop("claims", []) or []
    ledger = _from_dict(Ledger, data, str(path))
    claims = []
    for i, c in enumerate(raw_claims):
        comps = [_from_dict(Comparison, x, str(path), prefix=f"claims[{i}].comparisons[{j}].")
                 for j, x in enumerate(c.pop("comparisons", None) or [])]
        for j, comp in enumerate(comps):
            where = f"{path}: claims[{i}].comparisons[{j}]"
            if comp.kind not in KINDS:
                raise ConfigError(f"{where}: kind {comp.kind!r} is not one of {KINDS}")
            if comp.kind == "params_table":
                if not comp.results.endswith(".json") or "/" in comp.results:
                    raise ConfigError(f"{where}: kind params_table reads a result file of the "
                                      f"package (e.g. model_table.json), got {comp.results!r}")
            elif not comp.task:
                raise ConfigError(f"{where}: kind {comp.kind} needs a task")
        claim = _from_dict(Claim, c, str(path), prefix=f"claims[{i}].")
        claim.comparisons = comps
        for v in [claim.verdict, claim.verdict_holm, *(x.verdict for x in comps),
                  *(x.verdict_holm for x in comps)]:
            if v not in VERDICTS:
                raise ConfigError(f"{path}: claim {claim.id!r}: verdict {v!r} is not one of {VERDICTS}")
        claims.append(claim)
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: claim ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
    ledger.claims = claims
    return ledger


def _select(records: list[dict], task: str, arm: str) -> dict[int, dict]:
    return {r["run"]["seed"]: r for r in records
            if r["run"]["task"] == task and r["run"]["arm"] == arm}


def _scale(record: dict) -> dict:
    """The setting of a run, as a fraction of the release's where it has one."""
    cfg = record["config"]
    train = cfg["data"]["train"]
    return {"model": cfg["model"], "total_iters": cfg["total_iters"],
            "recipe_fraction": round(cfg["total_iters"] / RECIPE_STEPS, 6),
            "batch_size": cfg["batch_size"], "patch_size": train["kwargs"].get("patch_size"),
            "train": {"kind": train["kind"], "split": train["split"],
                      "task": train["kwargs"].get("task")},
            "test": record["experiment"]["test"]}


def _measure_table(comp: Comparison) -> tuple[dict | None, str]:
    table = package_results.load_result(comp.results)
    if table is None:
        return None, "untested"
    rows = {r["name"]: r for r in table["rows"]}
    missing = [m for m in (comp.arm, comp.baseline) if m not in rows]
    if missing:
        raise ValueError(f"{comp.results}: no row for {missing} (rows: {', '.join(rows)})")
    a, b = rows[comp.arm], rows[comp.baseline]
    value = 1.0 - a["params"] / b["params"]
    ok = value >= (comp.claimed or 0.0) - comp.tolerance
    env = table.get("environment", {})
    return {"value": round(value, 4), "params_arm": a["params"], "params_baseline": b["params"],
            "macs_arm": a.get("macs"), "macs_baseline": b.get("macs"),
            "input_size": a.get("input_size"), "source": f"irconstyle/results/{comp.results}",
            "measured_on": env.get("date"), "git_commit": env.get("git_commit")}, \
        "consistent" if ok else "inconsistent"


def measure(comp: Comparison, records: dict[str, list[dict]], *, direction: str = "greater",
            level: float = 0.95, margin: float = 0.0, n_boot: int = 10_000,
            seed: int = 0) -> tuple[dict | None, str]:
    """(what the comparison measured, its verdict) (see :data:`RULE`); ``records`` maps
    each record folder to its records.  ``(None, "untested")`` while either side has no
    records (or the arms share no seed)."""
    if comp.kind == "params_table":
        return _measure_table(comp)
    base_folder = comp.baseline_results or comp.results
    where = f"{comp.results}: {comp.task}/{comp.arm} vs {base_folder}: {comp.task}/{comp.baseline}"
    a = _select(records.get(comp.results, []), comp.task, comp.arm)
    b = _select(records.get(base_folder, []), comp.task, comp.baseline)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None, "untested"
    for s in seeds:
        if comp.baseline_results not in (None, comp.results):
            check_pairable(a[s], b[s])  # another experiment: the same setting or an error
        elif a[s]["images"] != b[s]["images"]:
            raise ValueError(f"{where}: the arms were scored on different images")
    scale = {**_scale(a[seeds[0]]), "seeds": seeds,
             "git_commits": sorted({r[s]["provenance"].get("git_commit") or "unknown"
                                    for r in (a, b) for s in seeds})}
    if comp.kind == "params_reduction":
        value = 1.0 - a[seeds[0]]["params"] / b[seeds[0]]["params"]
        ok = value >= (comp.claimed or 0.0) - comp.tolerance
        return {"value": round(value, 4), **scale}, "consistent" if ok else "inconsistent"
    grid = [[[float(v) for v in r[s]["metrics"][comp.weights][comp.metric]] for s in seeds]
            for r in (a, b)]
    ci = random_effects_ci(grid[0], grid[1], level=level)
    beside = {"seed_t": seed_t_ci(grid[0], grid[1], level=level),
              "bootstrap": paired_bootstrap_ci(grid[0], grid[1], n_boot=n_boot, level=level,
                                               seed=seed)}
    tost = ci.tost_p(margin) if margin > 0 else None
    # Four decimals: a reader sees two, and a value stored at three would be rounded twice
    # (0.1752 -> 0.175 -> "+0.17" where the chapters, from the records, print "+0.18").
    return {"diff": round(ci.diff, 4), "lo": round(ci.lo, 4), "hi": round(ci.hi, 4),
            "method": ci.method, "se": round(ci.se, 4), "df": round(ci.df, 2),
            "p_value": _p(ci.p_value), "tost_p": _p(tost),
            **{f"{k}_interval": [round(v.lo, 3), round(v.hi, 3)] for k, v in beside.items()},
            "mean_arm": round(ci.mean_a, 3), "mean_baseline": round(ci.mean_b, 3),
            "level": level, "n_images": ci.n_images, "n_seeds": ci.n_seeds, **scale}, \
        _direction_verdict(classify(ci, margin), direction)


def _p(p: float | None) -> float | None:
    """p-values at 4 significant digits (a ledger a person reads, and compares)."""
    return None if p is None else float(f"{p:.4g}")


def _direction_verdict(outcome: str, direction: str) -> str:
    """classify()'s outcome in the claim's terms (its stated direction)."""
    if outcome in ("negligible",):
        return "negligible"
    if outcome == "unresolved":
        return "inconclusive"
    claimed = "above" if direction == "greater" else "below"
    return "consistent" if outcome == claimed else "inconsistent"


def holm_verdicts(measured: list[tuple[dict | None, str, str]], *, level: float) -> list[str]:
    """The Holm-adjusted verdict of each comparison, given ``(measured, verdict,
    direction)`` for every comparison of the ledger in order (:data:`RULE`): the measured
    difference comparisons form the family; others keep their verdict."""
    tests = [m is not None and "p_value" in m for m, _, _ in measured]
    p_adj = holm([m["p_value"] if t else None for (m, _, _), t in zip(measured, tests)])
    t_adj = holm([m["tost_p"] if t and m.get("tost_p") is not None else None
                  for (m, _, _), t in zip(measured, tests)])
    out = []
    for (m, v, direction), t, p, q in zip(measured, tests, p_adj, t_adj):
        if not t:
            out.append(v)
        elif q is not None and q < (1 - level) / 2:
            out.append("negligible")
        elif p < 1 - level:
            out.append(_direction_verdict("above" if m["diff"] > 0 else "below", direction))
        else:
            out.append("inconclusive")
    return out


def _combine(verdicts: list[str]) -> str:
    if all(v == "untested" for v in verdicts):  # also: no comparisons
        return "untested"
    if "inconsistent" in verdicts:
        return "inconsistent"
    for same in ("consistent", "negligible"):
        if all(v == same for v in verdicts):
            return same
    return "inconclusive"


def verdict(claim: Claim, records: dict[str, list[dict]], *, level: float = 0.95,
            margin: float = 0.0, n_boot: int = 10_000,
            seed: int = 0) -> tuple[str, list[tuple[dict | None, str]]]:
    """A claim's (unadjusted) verdict and each comparison's (measured, verdict);
    ``records`` maps each record folder the comparisons name to its records."""
    per = [measure(c, records, direction=claim.direction, level=level, margin=margin,
                   n_boot=n_boot, seed=seed) for c in claim.comparisons]
    return _combine([v for c, (_, v) in zip(claim.comparisons, per) if c.role == "test"]), per


def evaluate_ledger(ledger: Ledger, records: dict[str, list[dict]]) -> dict:
    """Every verdict of the ledger, unadjusted and Holm-adjusted: ``{"claims": [(verdict,
    verdict_holm, [(measured, verdict, verdict_holm), ...]), ...], "n_comparisons": m}``."""
    kw = dict(level=ledger.level, margin=ledger.margin, n_boot=ledger.n_boot, seed=ledger.seed)
    per_claim = [verdict(c, records, **kw) for c in ledger.claims]
    # Holm's family: the measured test comparisons; a context comparison is adjusted alone
    # (its Holm verdict is its own), since it decides nothing
    tests = [(m, v, c.direction) for c, (_, per) in zip(ledger.claims, per_claim)
             for comp, (m, v) in zip(c.comparisons, per) if comp.role == "test"]
    adjusted = iter(holm_verdicts(tests, level=ledger.level))
    out = []
    for claim, (v, per) in zip(ledger.claims, per_claim):
        comps = [(m, cv, next(adjusted) if comp.role == "test" else cv)
                 for comp, (m, cv) in zip(claim.comparisons, per)]
        out.append((v, _combine([h for comp, (_, _, h) in zip(claim.comparisons, comps)
                                 if comp.role == "test"]), comps))
    n = sum(m is not None and "p_value" in m for m, _, _ in tests)
    return {"claims": out, "n_comparisons": n}


def _records_of(ledger: Ledger, root: Path) -> dict[str, list[dict]]:
    """Each record folder the ledger names -> its records; a folder not there yet (a
    campaign not run, a clone without results) has none."""
    folders = {f for claim in ledger.claims for c in claim.comparisons for f in c.folders()}
    return {f: load_records(root / f) if (root / f).is_dir() else [] for f in sorted(folders)}


def refresh(path: str | Path) -> Ledger:
    """Recompute every comparison and verdict from the records and rewrite the file."""
    path = Path(path)
    ledger = load_ledger(path)
    result = evaluate_ledger(ledger, _records_of(ledger, path.parent))
    ledger.n_comparisons = result["n_comparisons"]
    for claim, (v, vh, comps) in zip(ledger.claims, result["claims"]):
        claim.verdict, claim.verdict_holm = v, vh
        for comp, (measured, cv, ch) in zip(claim.comparisons, comps):
            comp.measured, comp.verdict, comp.verdict_holm = measured, cv, ch
    path.write_text(_HEADER + yaml.dump(asdict(ledger), Dumper=_Dumper, sort_keys=False,
                                         allow_unicode=True, width=100))
    return ledger


_HEADER = ("# The claims ledger (issue 14.7).  Edit claims and comparisons by hand; 'measured'\n"
           "# and the verdicts are written by irconstyle.experiments.claims.refresh(this file)\n"
           "# and checked by tests/test_claims.py.\n")


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the rule) as readable ``|`` blocks."""


_Dumper.add_representer(str, lambda d, s: d.represent_scalar(
    "tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


def _differs(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() != b.keys() or any(_differs(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) != len(b) or any(_differs(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return not (isinstance(a, (int, float)) and isinstance(b, (int, float))
                    and math.isclose(a, b, abs_tol=1e-9))
    return a != b


def check(path: str | Path) -> list[str]:
    """Where the ledger disagrees with its records and its rule (empty: it agrees):
    every verdict, unadjusted and Holm-adjusted, and the count of comparisons."""
    path = Path(path)
    ledger = load_ledger(path)
    if ledger.rule.strip() != RULE.strip():
        return [f"{path}: the rule in the file is not the rule the code applies "
                "(irconstyle.experiments.claims.RULE)"]
    result = evaluate_ledger(ledger, _records_of(ledger, path.parent))
    problems = []
    if result["n_comparisons"] != ledger.n_comparisons:
        problems.append(f"n_comparisons: {ledger.n_comparisons} in the file, "
                        f"{result['n_comparisons']} measured")
    for claim, (v, vh, comps) in zip(ledger.claims, result["claims"]):
        if (v, vh) != (claim.verdict, claim.verdict_holm):
            problems.append(f"{claim.id}: verdicts {claim.verdict!r}/{claim.verdict_holm!r} (Holm) "
                            f"in the file, {v!r}/{vh!r} by the rule")
        for j, (comp, (measured, cv, ch)) in enumerate(zip(claim.comparisons, comps)):
            if (cv, ch) != (comp.verdict, comp.verdict_holm) or _differs(measured, comp.measured):
                problems.append(f"{claim.id}: comparison {j} ({comp.arm} vs {comp.baseline}) "
                                f"records {comp.verdict!r}/{comp.verdict_holm!r} {comp.measured}, "
                                f"recomputed {cv!r}/{ch!r} {measured}")
    return problems
