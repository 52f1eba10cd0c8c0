"""Training cost of the release models: seconds per training step on this machine, for the
cost table (irconstyle.experiments.cost; issue 14.8).

    python benchmarks/cost.py --models constyle_nafnet nafnet --batch-size 2 --steps 2 --warmup 1

Each model is trained with its release preset (``release/<model>_<task>``: release widths,
all losses, AdamW, the release's queue, momentum and EMA, 128x128 patches) through the
package's own ``Trainer.train_step`` on one synthetic batch kept in memory (no data loading:
this is the model's cost, which a fast loader hides; ``benchmarks/throughput.py`` measures
the loader).  fp32, as the release presets (``amp: false``); ``--device cuda`` times a GPU
(synchronised around each step; write it to another ``--out``, e.g. ``cost_cuda.json``).

``--batch-size``: the release trains at 16 (8 for Restormer); on a small CPU machine that
needs more memory than it has (ConStyle-NAFNet and NAFNet at 128x128 hold tens of GB of
activations), so a smaller batch can be timed and the step time per image scaled to the
release's batch.  The JSON says which batch was timed, and the cost table says when a row
is scaled (``irconstyle.experiments.cost.from_cost_benchmark``).

Results accumulate in one JSON file (default: the package's results folder,
``cost_cpu.json``): each run replaces the entries of the models it measured and keeps the
others, so the six models can be measured in several sittings.  Each entry records the
load average before and after (other processes on the CPU inflate the times) and the
peak memory of this process.
"""
from __future__ import annotations

import argparse
import functools
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from irconstyle.results import results_dir
from irconstyle.runtime.devices import synchronize
from irconstyle.runtime.environment import load_average, provenance
from irconstyle.runtime.memory import maxrss_bytes
from irconstyle.train import Trainer, load_config

RELEASE_MODELS = ("constyle_nafnet", "nafnet", "constyle_restormer", "restormer",
                  "constyle_maxim", "maxim")


class _Placeholder(Dataset):
    """The trainer sizes its epoch from the training set; nothing is read from it here."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:  # pragma: no cover - never called
        raise RuntimeError("the cost benchmark times train_step on a batch in memory")


def time_model(name: str, *, task: str, batch_size: int | None, steps: int, warmup: int,
               work: Path, device: str = "cpu") -> dict:
    """Seconds per training step of the release preset ``release/<name>_<task>``."""
    preset = f"release/{name}_{task}"
    release_batch = load_config(preset).batch_size
    b = batch_size or release_batch
    cfg = load_config(preset, [f"batch_size={b}", f"device={device}", "num_workers=0",
                               "data.val=null",
                               f"out_dir={work / name}", "resume=never", "log.csv=false",
                               "log.progress=false"])
    trainer = Trainer(cfg, train_set=_Placeholder(b))
    p = cfg.data.train.kwargs["patch_size"]
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(b, 3, p, p, generator=g)
    batch = {"lq": (gt + 0.1 * torch.randn(b, 3, p, p, generator=g)).clamp(0, 1), "gt": gt}
    trainer.model.train()
    sync = functools.partial(synchronize, trainer.device)
    load_before = load_average()
    for _ in range(warmup):
        trainer.train_step(batch)
    times = []
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        trainer.train_step(batch)
        sync()
        times.append(time.perf_counter() - t0)
    c = trainer.cfg
    return {
        "preset": preset, "batch_size": b, "release_batch_size": release_batch, "patch_size": p,
        "device": str(trainer.device), "dtype": "float32",
        "losses": {k: getattr(c.loss, k) for k in ("pixel", "infonce", "content", "style")},
        "queue_size": c.constyle.queue_size if trainer.constyle is not None else None,
        "warmup_steps": warmup, "step_seconds": [round(t, 3) for t in times],
        "seconds_per_step": round(statistics.median(times), 3),
        "seconds_per_image": round(statistics.median(times) / b, 4),
        "load_average_1m_before": load_before, "load_average_1m_after": load_average(),
        "peak_rss_gib": round(maxrss_bytes() / 2**30, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(RELEASE_MODELS),
                        choices=RELEASE_MODELS, help="release models to time (default: all six)")
    parser.add_argument("--task", default="derain", help="release preset task (default: derain)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="timed batch (default: the release's, 16 or 8 for Restormer)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, or auto")
    parser.add_argument("--out", type=Path, default=results_dir() / "cost_cpu.json")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    torch.set_num_threads(args.threads)

    result = json.loads(args.out.read_text()) if args.out.is_file() else {"models": {}}
    command = shlex.join(["python", "benchmarks/cost.py", *(argv or sys.argv[1:])])
    for name in args.models:
        print(f"{name}: timing {args.warmup} + {args.steps} steps ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            entry = time_model(name, task=args.task, batch_size=args.batch_size,
                               steps=args.steps, warmup=args.warmup, work=Path(tmp),
                               device=args.device)
        entry["provenance"] = provenance(command)
        result["models"][name] = entry
        result["note"] = ("CPU seconds per training step of the release presets on a synthetic "
                          "batch in memory; a shared CPU inflates them (load averages recorded)")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")  # after each model
        print(f"{name}: {entry['seconds_per_step']} s/step at batch {entry['batch_size']} "
              f"(load {entry['load_average_1m_before']:.1f}), peak {entry['peak_rss_gib']} GiB",
              flush=True)
    return result


if __name__ == "__main__":
    main()
