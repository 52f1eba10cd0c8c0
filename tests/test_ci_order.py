"""The order in which the suite's files reach pytest-xdist's workers (conftest.py): the files
holding minutes-long checks first, then the notebooks, then the rest, each file in its own
order (.ci/run passes --no-loadscope-reorder so that xdist keeps it)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

from notebook_runs import ROOT

_spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conftest)  # the root conftest.py (tests/ has one of its own)


def _item(path: str, name: str, slow: bool = False):
    marker = object() if slow else None
    return SimpleNamespace(path=Path(path), name=name,
                           get_closest_marker=lambda m, _s=marker: _s if m == "slow" else None)


def test_slow_files_first_then_notebooks_each_file_in_order():
    items = [_item("tests/test_a.py", "a1"), _item("tests/test_nb.py", "quick"),
             _item("book/x.ipynb", "Cell 0"), _item("tests/test_nb.py", "slow", slow=True),
             _item("book/x.ipynb", "Cell 1"), _item("tests/test_z.py", "z1"),
             _item("tests/test_nb.py", "quick2")]
    conftest.pytest_collection_modifyitems(None, None, items)
    assert [i.name for i in items] == ["quick", "slow", "quick2", "Cell 0", "Cell 1", "a1", "z1"]


def test_ci_keeps_this_order():
    run = (ROOT / ".ci" / "run").read_text()
    assert "--dist loadfile --no-loadscope-reorder" in run
