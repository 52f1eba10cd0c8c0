"""Model table benchmark: parameters, MACs and CPU inference time of every zoo model at
its release defaults, on a 1x3x256x256 input (what is counted: irconstyle.nets.model_table).

    python benchmarks/model_table.py [--names a b ...] [--size 256] [--repeats 3] [--threads N]

Writes irconstyle/results/model_table.json (package data: the book reads it, wherever the
package is installed; rows + the environment they were measured in) and model_table.csv.  It builds and runs release-size models: minutes on a laptop CPU.
"""
from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
from pathlib import Path

import torch

from irconstyle.results import results_dir
from irconstyle.nets.model_table import model_table
from irconstyle.runtime.environment import load_average, provenance

RESULTS = results_dir()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", nargs="*", default=None, help="zoo names (default: all)")
    parser.add_argument("--size", type=int, default=256, help="input height and width")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per model (median)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own choice); on a shared "
                             "machine 1 thread gives stable times")
    parser.add_argument("--out", type=Path, default=RESULTS / "model_table.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    # load average before the run: other processes inflate cpu_ms
    env = provenance(shlex.join(["python", "benchmarks/model_table.py", *(argv or sys.argv[1:])]))
    rows = model_table(args.names, input_size=(1, 3, args.size, args.size), repeats=args.repeats)
    env["load_average_1m_after"] = load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": env, "rows": rows}, indent=1) + "\n")
    with args.out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "input_size": "x".join(map(str, r["input_size"]))} for r in rows)
    for r in rows:
        print(f"{r['name']:24s} params {r['params'] / 1e6:8.3f} M   MACs {r['macs'] / 1e9:8.2f} G"
              f"   CPU {r.get('cpu_ms', float('nan')):10.1f} ms")


if __name__ == "__main__":
    main()
