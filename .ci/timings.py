"""CI's record and its time budgets (issue 24): writes ci_timings.json and fails when a
budget of .ci/budgets.yml is exceeded.

Called by .ci/run after its phases::

    python .ci/timings.py --junit _build/ci/junit.xml --out ci_timings.json \\
        --phase install=74.2 --phase tests_total=512.0 ... --exit tests=0 ...

From the JUnit report of ``pytest --nbval`` it takes each notebook's execution time (nbval
reports one test case per cell; a notebook's time is the sum over its cells, the first cell
including the kernel's start) and the time of each notebook check of
tests/test_notebooks.py.  Every notebook and every check that executes notebooks must have
a budget; one that is missing, or measured over its budget, or a whole run over the total
budget, makes the exit status 1, and ci_timings.json says which.  CI_BUDGET_FACTOR (a number
>= 1, default 1) multiplies every budget, for a run on a machine known to be slower (busy
with other work); the factor used is recorded with the times.

``python .ci/timings.py --propose ci_timings.json`` prints budgets by the rule of
.ci/budgets.yml from a run's measured times (to review, then copy into the file).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = ROOT / ".ci" / "budgets.yml"
# the JUnit classnames of the notebook checks (the wheel check has a file of its own)
CHECKS_MODULES = ("tests.test_notebooks", "tests.test_notebooks_wheel")


def notebook_of(classname: str) -> str | None:
    """The notebook a JUnit test case belongs to, as a path from the repository root
    (``book.notebooks.results.ipynb`` -> ``book/notebooks/results.ipynb``), or None for a
    test case that is not a notebook cell."""
    if not classname.endswith(".ipynb"):
        return None
    return classname[: -len(".ipynb")].replace(".", "/") + ".ipynb"


def read_junit(junit: Path) -> dict:
    """Seconds per notebook (with its number of cells), per notebook check (a
    parametrized check once per parameter), and the sum over the other tests."""
    notebooks: dict[str, dict] = defaultdict(lambda: {"seconds": 0.0, "cells": 0})
    checks: dict[str, float] = {}
    unit = 0.0
    for case in ET.parse(junit).iter("testcase"):
        seconds = float(case.get("time") or 0)
        classname = case.get("classname") or ""
        notebook = notebook_of(classname)
        if notebook is not None:
            notebooks[notebook]["seconds"] += seconds
            notebooks[notebook]["cells"] += 1
        elif classname in CHECKS_MODULES:
            checks[case.get("name") or ""] = seconds
        else:
            unit += seconds
    return {"notebooks": dict(notebooks), "checks": checks, "unit": unit}


def check_budget(name: str, seconds: float, budget: float | None, factor: float) -> str | None:
    """Why ``name`` breaks its budget, or None when it keeps it."""
    if budget is None:
        return f"{name}: {seconds:.0f} s, and no budget in .ci/budgets.yml"
    if seconds > budget * factor:
        return f"{name}: {seconds:.0f} s, over its budget of {budget * factor:.0f} s"
    return None


def check_budget_for(check: str) -> str:
    """The budget key of a notebook check: its test function's name (one budget for
    every parameter of a parametrized check)."""
    return check.split("[", 1)[0]


def evaluate(measured: dict, total_s: float, budgets: dict,
             factor: float) -> tuple[dict, list[str]]:
    """Every notebook and check with its seconds and budget, and the broken budgets."""
    over: list[str | None] = []
    notebooks = {}
    for name, row in sorted(measured["notebooks"].items()):
        budget = budgets["notebooks"].get(name)
        notebooks[name] = {"seconds": round(row["seconds"], 1), "cells": row["cells"],
                           "budget_s": budget}
        over.append(check_budget(name, row["seconds"], budget, factor))
    checks = {}
    for name, seconds in sorted(measured["checks"].items()):
        budget = budgets["checks"].get(check_budget_for(name))
        checks[name] = {"seconds": round(seconds, 1), "budget_s": budget}
        # the static checks need no budget; a check slow enough to execute notebooks does
        if budget is not None or seconds > budgets["unbudgeted_check_max_s"]:
            over.append(check_budget(f"tests/test_notebooks.py::{name}", seconds, budget, factor))
    over.append(check_budget("the whole CI run", total_s, budgets["total_s"], factor))
    return {"notebooks": notebooks, "notebook_checks": checks}, [o for o in over if o]


def propose_budget(seconds: float, rule: dict) -> int:
    """The budget that the rule of .ci/budgets.yml gives a measured time: ``margin`` times
    it, rounded up to 10 s, and at least ``floor_s``."""
    return max(int(rule["floor_s"]), int(math.ceil(seconds * rule["margin"] / 10) * 10))


def write_record(args: argparse.Namespace) -> int:
    """ci_timings.json from the phases' times and exit statuses and the JUnit report; the
    exit status: 1 when a budget is broken."""
    phases = dict(_pairs(args.phase, float))
    exits = dict(_pairs(args.exit, int))
    budgets = yaml.safe_load(BUDGETS.read_text(encoding="utf-8"))
    factor = float(os.environ.get("CI_BUDGET_FACTOR") or 1)
    if factor < 1:
        sys.exit(f"CI_BUDGET_FACTOR={factor}: a budget may only be loosened (>= 1)")
    try:
        measured = read_junit(args.junit)
    except (OSError, ET.ParseError) as err:  # the tests did not get as far as a report
        print(f"timings: no JUnit report ({err}): no notebook times", file=sys.stderr)
        measured = {"notebooks": {}, "checks": {}, "unit": 0.0}
    total = sum(phases.values())
    detail, over = evaluate(measured, total, budgets, factor)
    record = {f"{name}_s": round(seconds, 1) for name, seconds in phases.items()}
    record.update({
        "total_s": round(total, 1),
        # sums of the JUnit test case times: on two test workers they add up to more than
        # the tests' wall time, tests_total_s
        "unit_tests_s": round(measured["unit"], 1),
        "notebooks_s": round(sum(r["seconds"] for r in measured["notebooks"].values()), 1),
        "notebook_checks_s": round(sum(measured["checks"].values()), 1),
        **{f"{name}_exit": rc for name, rc in exits.items()},
        **detail,
        "budget": {"file": ".ci/budgets.yml", "total_s": budgets["total_s"], "factor": factor,
                   "over": over},
        "budget_exit": int(bool(over)),
    })
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    for name, row in record["notebooks"].items():
        print(f"  {row['seconds']:7.1f} s  (budget {row['budget_s']} s)  {name}")
    print(f"CI timings: total {total:.0f} s; " + ", ".join(
        f"{name} {seconds:.0f} s" for name, seconds in phases.items()))
    for line in over:
        print(f"OVER BUDGET: {line}", file=sys.stderr)
    return int(bool(over))


def propose(record_path: Path) -> int:
    """Budgets by the rule of .ci/budgets.yml from a run's ci_timings.json, printed as
    YAML (a parametrized check: its slowest case)."""
    record = json.loads(record_path.read_text(encoding="utf-8"))
    budgets = yaml.safe_load(BUDGETS.read_text(encoding="utf-8"))
    rule = budgets["rule"]
    checks: dict[str, float] = defaultdict(float)
    for name, row in record.get("notebook_checks", {}).items():
        checks[check_budget_for(name)] = max(checks[check_budget_for(name)], row["seconds"])
    print(yaml.safe_dump({
        "notebooks": {n: propose_budget(r["seconds"], rule)
                      for n, r in record.get("notebooks", {}).items()},
        "checks": {n: propose_budget(s, rule) for n, s in checks.items()
                   if s > budgets["unbudgeted_check_max_s"]},
    }, sort_keys=True), end="")
    return 0


def _pairs(items: list[str], kind) -> list[tuple[str, object]]:
    return [(k, kind(v)) for k, v in (item.split("=", 1) for item in items)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--junit", type=Path, default=ROOT / "_build" / "ci" / "junit.xml")
    parser.add_argument("--out", type=Path, default=ROOT / "ci_timings.json")
    parser.add_argument("--phase", action="append", default=[], metavar="NAME=SECONDS")
    parser.add_argument("--exit", action="append", default=[], metavar="NAME=STATUS")
    parser.add_argument("--propose", type=Path, metavar="CI_TIMINGS_JSON",
                        help="print budgets from a run's measured times instead")
    args = parser.parse_args(argv)
    return propose(args.propose) if args.propose else write_record(args)


if __name__ == "__main__":
    sys.exit(main())
