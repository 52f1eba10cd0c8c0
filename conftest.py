"""Root pytest setup: the tests select the notebooks' `smoke` profile explicitly, so
notebook outputs are those committed (computed on a CPU in minutes)."""
import os

os.environ["IRCONSTYLE_PROFILE"] = "smoke"
os.environ.setdefault("OMP_NUM_THREADS", "1")
