"""Root pytest setup: the tests select the notebooks' `smoke` profile explicitly, so
notebook outputs are those committed (computed on a CPU in minutes)."""
import os

import pytest

os.environ["IRCONSTYLE_PROFILE"] = "smoke"
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.hookimpl(trylast=True)  # after pytest's own, which runs the cell (and stops on a failure)
def pytest_runtest_call(item):
    """A notebook cell that writes to stderr fails under ``pytest --nbval``, compared or
    not (``# NBVAL_IGNORE_OUTPUT``): the book is built from the committed outputs without
    executing them (_config.yml), so this run is the one execution that can see a new
    warning, which the book's build refused when it executed the notebooks itself
    (``stderr_output: remove-warn`` with ``--warningiserror``)."""
    # nbval's cell items keep what the cell printed in `test_outputs`; other items have none
    stderr = [out.get("text", "") for out in getattr(item, "test_outputs", None) or ()
              if out.get("output_type") == "stream" and out.get("name") == "stderr"]
    if stderr:
        pytest.fail("the cell wrote to stderr (a warning?); the book refuses stderr output:\n"
                    + "".join(stderr)[-2000:], pytrace=False)


def _schedule_rank(item) -> int:
    """0: a file holding a ``slow`` test (minutes in one test), 1: a notebook, 2: the rest."""
    if item.get_closest_marker("slow") is not None:
        return 0
    return 1 if str(item.path).endswith(".ipynb") else 2


def pytest_collection_modifyitems(session, config, items):
    """The files with the longest tests first, then the notebooks, then the many short unit
    tests, each file's items in their own order (nbval runs a notebook's cells in order).
    Why: under pytest-xdist (``-n 2 --dist loadfile --no-loadscope-reorder``, .ci/run) files
    are handed to the workers in this order, so the two minutes-long checks start at once on
    the two workers and the short files fill in around them; in collection order (or xdist's
    default, most tests first) a one-test file of six minutes started last and left the
    other worker idle for minutes at the end."""
    rank: dict[str, int] = {}
    for item in items:
        path = str(item.path)
        rank[path] = min(rank.get(path, 2), _schedule_rank(item))
    items.sort(key=lambda item: rank[str(item.path)])  # stable: each file keeps its order
