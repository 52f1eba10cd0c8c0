"""CI's time budgets (issue 24.2): .ci/budgets.yml names a budget for every notebook of the
book and for every notebook check that executes notebooks, and .ci/timings.py, which CI
runs after the tests, fails a run in which one of them, or the whole run, is over budget.
The times themselves are measured by CI (ci_timings.json), not here."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from notebook_runs import ROOT, book_notebooks

TIMINGS_SCRIPT = ROOT / ".ci" / "timings.py"


def load_timings():
    spec = importlib.util.spec_from_file_location("ci_timings", TIMINGS_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def budgets() -> dict:
    return yaml.safe_load((ROOT / ".ci" / "budgets.yml").read_text(encoding="utf-8"))


def test_every_notebook_has_a_budget_and_every_budget_a_notebook() -> None:
    """A new chapter states its budget where it is added; a removed one takes its budget
    with it."""
    named = set(budgets()["notebooks"])
    present = {p.relative_to(ROOT).as_posix() for p in book_notebooks()}
    assert named == present, {"without a budget": present - named,
                              "no such notebook": named - present}


def test_check_budgets_name_notebook_checks() -> None:
    source = "".join((ROOT / "tests" / f).read_text(encoding="utf-8")
                     for f in ("test_notebooks.py", "test_notebooks_wheel.py"))
    for name in budgets()["checks"]:
        assert f"def {name}(" in source, name


def test_budgets_are_positive_and_fit_the_run() -> None:
    """Every budget is a positive number of seconds, and the notebooks' budgets, run on two
    workers, fit the whole run's budget."""
    b = budgets()
    values = list(b["notebooks"].values()) + list(b["checks"].values())
    assert all(isinstance(v, (int, float)) and v > 0 for v in values), values
    assert sum(b["notebooks"].values()) / 2 < b["total_s"]


def _junit(tmp_path: Path, cases: list[tuple[str, str, float]]) -> Path:
    """A JUnit report with ``(classname, name, seconds)`` test cases, as pytest writes it."""
    body = "".join(f'<testcase classname="{c}" name="{n}" time="{t}" />' for c, n, t in cases)
    path = tmp_path / "junit.xml"
    path.write_text(f'<?xml version="1.0"?><testsuites><testsuite name="pytest">{body}'
                    "</testsuite></testsuites>", encoding="utf-8")
    return path


def _run(tmp_path: Path, junit: Path, total: float, factor: str = "") -> tuple[int, dict, str]:
    out = tmp_path / "ci_timings.json"
    env = {**os.environ, "CI_BUDGET_FACTOR": factor}
    proc = subprocess.run([sys.executable, str(TIMINGS_SCRIPT), "--junit", str(junit),
                           "--out", str(out), "--phase", f"tests={total}", "--exit", "tests=0"],
                          capture_output=True, text=True, env=env, timeout=60)
    return proc.returncode, json.loads(out.read_text()), proc.stderr


@pytest.fixture
def within_budget() -> list[tuple[str, str, float]]:
    """Every notebook and check at half its budget, split over two cells or one case."""
    b = budgets()
    cases = []
    for path, seconds in b["notebooks"].items():
        classname = path.removesuffix(".ipynb").replace("/", ".") + ".ipynb"
        cases += [(classname, "Cell 0", seconds / 4), (classname, "Cell 1", seconds / 4)]
    cases += [("tests.test_notebooks", name, seconds / 2) for name, seconds in b["checks"].items()]
    return cases + [("tests.test_unet", "test_shapes", 1.0)]


def test_a_run_within_budget_passes(tmp_path: Path, within_budget) -> None:
    rc, record, err = _run(tmp_path, _junit(tmp_path, within_budget), total=600)
    assert rc == 0 and record["budget_exit"] == 0 and not record["budget"]["over"], err
    first = next(iter(budgets()["notebooks"]))
    assert record["notebooks"][first]["cells"] == 2
    assert record["notebooks"][first]["seconds"] == round(budgets()["notebooks"][first] / 2, 1)
    assert record["unit_tests_s"] == 1.0 and record["tests_exit"] == 0


def test_a_slow_notebook_fails_the_run(tmp_path: Path, within_budget) -> None:
    """A notebook over its budget fails CI, named; CI_BUDGET_FACTOR loosens every budget
    for a run on a busier machine, and is recorded."""
    b = budgets()
    slow = next(iter(b["notebooks"]))
    classname = slow.removesuffix(".ipynb").replace("/", ".") + ".ipynb"
    cases = within_budget + [(classname, "Cell 9", b["notebooks"][slow])]  # now 1.5x its budget
    rc, record, err = _run(tmp_path, _junit(tmp_path, cases), total=600)
    assert rc == 1 and record["budget_exit"] == 1, err
    over = record["budget"]["over"]
    assert len(over) == 1 and slow in over[0], over
    rc, record, _ = _run(tmp_path, _junit(tmp_path, cases), total=600, factor="2")
    assert rc == 0 and record["budget"]["factor"] == 2.0


def test_a_notebook_without_a_budget_and_a_slow_run_fail(tmp_path: Path, within_budget) -> None:
    cases = within_budget + [("book.notebooks.new_chapter.ipynb", "Cell 0", 1.0)]
    rc, record, _ = _run(tmp_path, _junit(tmp_path, cases), total=budgets()["total_s"] + 1)
    over = record["budget"]["over"]
    assert rc == 1 and len(over) == 2, over
    assert any("new_chapter" in o and "no budget" in o for o in over), over
    assert any("whole CI run" in o for o in over), over


def test_the_propose_rule_rounds_up_with_a_floor(tmp_path: Path) -> None:
    timings = load_timings()
    rule = budgets()["rule"]
    assert timings.propose_budget(0.5, rule) == rule["floor_s"]
    assert timings.propose_budget(100, rule) == 10 * -(-100 * rule["margin"] // 10)


def test_ci_runs_the_budget_check() -> None:
    assert "python .ci/timings.py" in (ROOT / ".ci" / "run").read_text()
