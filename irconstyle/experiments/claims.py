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
from ..stats import paired_bootstrap_ci
from ..train.config import ConfigError, _from_dict
from .cost import RECIPE_STEPS
from .pairing import check_pairable
from .records import load_records

__all__ = ["RULE", "VERDICTS", "Comparison", "Claim", "Ledger", "load_ledger", "measure",
           "verdict", "refresh", "check"]

VERDICTS = ("untested", "consistent", "inconsistent", "inconclusive")
KINDS = ("difference", "params_reduction", "params_table")

RULE = """\
Each comparison is arm minus baseline, on one task, one metric (default PSNR on RGB) of
one set of weights (default EMA), over the test images and the seeds both arms have.
kind 'difference': a two-way (seeds x images) paired percentile bootstrap interval at
'level' (irconstyle.stats.paired_bootstrap_ci, n_boot and seed below).  The comparison is
  consistent    if the interval excludes 0 on the side the claim states (direction),
  inconsistent  if it excludes 0 on the other side,
  inconclusive  if it contains 0.
'consistent' is about the sign only: the paper's size of effect (claimed) is reported
beside the measurement, not tested, since our scale is far from the paper's.
kind 'params_reduction': 1 - params(arm) / params(baseline) (inference parameters, from the
records); kind 'params_table': the same from a result file of the package (the model table,
inference builds at the release's defaults); consistent if it is >= claimed - tolerance,
inconsistent otherwise.
A comparison is untested (measured: null) while the records (or the file) of either side
are missing or the two arms share no seed.  A claim is untested when none of its
comparisons was measured; inconsistent if any comparison is; consistent if all are;
inconclusive otherwise (an untested comparison beside measured ones leaves it at most
inconclusive)."""


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
    measured: dict | None = None  # written by refresh(); checked by check()
    verdict: str = "untested"     # written by refresh(); checked by check()

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
    notes: str = ""


@dataclass
class Ledger:
    rule: str
    level: float = 0.95
    n_boot: int = 10_000
    seed: int = 0
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
        for v in [claim.verdict, *(x.verdict for x in comps)]:
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
            level: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> tuple[dict | None, str]:
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
    ci = paired_bootstrap_ci(grid[0], grid[1], n_boot=n_boot, level=level, seed=seed)
    side = ci.excludes_zero() * (1 if direction == "greater" else -1)
    result = {1: "consistent", -1: "inconsistent", 0: "inconclusive"}[side]
    return {"diff": round(ci.diff, 3), "lo": round(ci.lo, 3), "hi": round(ci.hi, 3),
            "mean_arm": round(ci.mean_a, 3), "mean_baseline": round(ci.mean_b, 3),
            "level": level, "n_images": ci.n_images, "n_seeds": ci.n_seeds, **scale}, result


def _combine(verdicts: list[str]) -> str:
    if all(v == "untested" for v in verdicts):  # also: no comparisons
        return "untested"
    if "inconsistent" in verdicts:
        return "inconsistent"
    return "consistent" if all(v == "consistent" for v in verdicts) else "inconclusive"


def verdict(claim: Claim, records: dict[str, list[dict]], *, level: float = 0.95,
            n_boot: int = 10_000, seed: int = 0) -> tuple[str, list[tuple[dict | None, str]]]:
    """A claim's verdict and each comparison's (measured, verdict); ``records`` maps
    each record folder the comparisons name to its records (missing folder: none)."""
    per = [measure(c, records, direction=claim.direction, level=level,
                   n_boot=n_boot, seed=seed) for c in claim.comparisons]
    return _combine([v for _, v in per]), per


def _records_of(ledger: Ledger, root: Path) -> dict[str, list[dict]]:
    """Each record folder the ledger names -> its records; a folder not there yet (a
    campaign not run, a clone without results) has none."""
    folders = {f for claim in ledger.claims for c in claim.comparisons for f in c.folders()}
    return {f: load_records(root / f) if (root / f).is_dir() else [] for f in sorted(folders)}


def refresh(path: str | Path) -> Ledger:
    """Recompute every comparison and verdict from the records and rewrite the file."""
    path = Path(path)
    ledger = load_ledger(path)
    records = _records_of(ledger, path.parent)
    for claim in ledger.claims:
        claim.verdict, per = verdict(claim, records, level=ledger.level, n_boot=ledger.n_boot,
                                     seed=ledger.seed)
        for comp, (measured, v) in zip(claim.comparisons, per):
            comp.measured, comp.verdict = measured, v
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
    """Where the ledger disagrees with its records and its rule (empty: it agrees)."""
    path = Path(path)
    ledger = load_ledger(path)
    if ledger.rule.strip() != RULE.strip():
        return [f"{path}: the rule in the file is not the rule the code applies "
                "(irconstyle.experiments.claims.RULE)"]
    records = _records_of(ledger, path.parent)
    problems = []
    for claim in ledger.claims:
        v, per = verdict(claim, records, level=ledger.level, n_boot=ledger.n_boot, seed=ledger.seed)
        if v != claim.verdict:
            problems.append(f"{claim.id}: verdict {claim.verdict!r} in the file, {v!r} by the rule")
        for j, (comp, (measured, cv)) in enumerate(zip(claim.comparisons, per)):
            if cv != comp.verdict or _differs(measured, comp.measured):
                problems.append(f"{claim.id}: comparison {j} ({comp.arm} vs {comp.baseline}) "
                                f"records {comp.verdict!r} {comp.measured}, recomputed {cv!r} {measured}")
    return problems
