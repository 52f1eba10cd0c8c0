"""Download, verify and lay out the derain benchmarks: Rain13K, Rain14000 (training);
Rain100H, Rain100L, Test100, Test1200, Test2800 (test).

    python -m data_scripts.prepare_derain --root data/
    python data_scripts/prepare_derain.py --root data/       # the same
    python -m data_scripts.prepare_derain --list              # what, where, expected counts

Sources needing a manual step (Google Drive without gdown, Baidu Pan) are reported with
the exact steps; the rest still run. The logic is irconstyle.data.prepare.
"""
from irconstyle.data.prepare import task_main

if __name__ == "__main__":
    raise SystemExit(task_main("derain"))
