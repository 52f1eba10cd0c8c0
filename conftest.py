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
