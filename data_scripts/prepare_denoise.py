"""Download, verify and lay out the denoise benchmarks: DFWB (training); CBSD68, Kodak24,
McMaster, Urban100 (test).

    python -m data_scripts.prepare_denoise --root data/
    python data_scripts/prepare_denoise.py --root data/       # the same
    python -m data_scripts.prepare_denoise --list              # what, where, expected counts

Sources needing a manual step (Google Drive without gdown, Baidu Pan) are reported with
the exact steps; the rest still run. The logic is irconstyle.data.prepare.
"""
from irconstyle.data.prepare import task_main

if __name__ == "__main__":
    raise SystemExit(task_main("denoise"))
