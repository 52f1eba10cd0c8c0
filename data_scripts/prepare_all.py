"""Download, verify and lay out every benchmark of every task (see prepare_<task>.py).

    python -m data_scripts.prepare_all --root data/
"""
from irconstyle.data.prepare import task_main

if __name__ == "__main__":
    raise SystemExit(task_main(None))
