"""Download, verify and lay out the dehaze benchmarks: RESIDE OTS (training); SOTS-outdoor
(test).

    python -m data_scripts.prepare_dehaze --root data/
    python data_scripts/prepare_dehaze.py --root data/       # the same
    python -m data_scripts.prepare_dehaze --list              # what, where, expected counts

Sources needing a manual step (Google Drive without gdown, Baidu Pan) are reported with
the exact steps; the rest still run. The logic is irconstyle.data.prepare.
"""
from irconstyle.data.prepare import task_main

if __name__ == "__main__":
    raise SystemExit(task_main("dehaze"))
