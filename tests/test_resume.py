"""A run that is stopped or killed and resumed ends with exactly the weights of an
uninterrupted run (CPU, ``torch.equal``).

(a) in process: stop at step k, new Trainer, resume, finish;
(b) in subprocesses with two DataLoader workers: SIGKILL at seeded random points,
    including one in the middle of a checkpoint write and one after the ConStyle freeze.

Run as a script (``python tests/test_resume.py CONFIG.yml``) this file is the worker
that test (b) starts and kills.
"""
from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from irconstyle.train import Trainer, load_checkpoint, load_config, run
from irconstyle.train.checkpoint import SLOW_WRITE_ENV
from irconstyle.train.config import config_to_yaml
from test_trainer import SynthPairs, tiny_config

TRAIN_SET = dict(n=10, size=16, seed=1)  # 5 batches per epoch: several epochs per run
VAL_SET = dict(n=2, size=16, seed=2)


def assert_same_state(a: dict, b: dict, where: str = "") -> None:
    """Recursive torch.equal over nested checkpoint states."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"


def training_state(ckpt: dict) -> dict:
    """What must match: weights, EMA, optimizer, scheduler, counters (not wall-clock
    metrics or the config's out_dir)."""
    return {k: ckpt[k] for k in ("step", "frozen", "model", "ema", "optimizer", "scheduler",
                                 "scaler", "rng", "best")}


def resume_config(out_dir: Path, **changes):
    return tiny_config(out_dir, total_iters=14, constyle_iters=6, val_every=4, ckpt_every=3,
                       **changes)


@pytest.mark.parametrize("stop", [2, 5, 9])  # before, at the edge of, and after the freeze
def test_stop_and_resume_in_process(tmp_path, stop):
    ref = run(resume_config(tmp_path / "ref"), train_set=SynthPairs(**TRAIN_SET),
              val_set=SynthPairs(**VAL_SET))
    cfg = resume_config(tmp_path / "cut", resume="auto")
    first = Trainer(cfg, train_set=SynthPairs(**TRAIN_SET), val_set=SynthPairs(**VAL_SET))
    first.fit(stop_at=stop)
    first.close()
    del first
    second = Trainer(cfg, train_set=SynthPairs(**TRAIN_SET), val_set=SynthPairs(**VAL_SET))
    assert second.step == stop and second.frozen == (stop > 6)
    second.fit()
    second.close()
    a = load_checkpoint(ref["last"])
    b = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert a["step"] == b["step"] == 14
    assert_same_state(training_state(a), training_state(b))
    # The logs are the same too: rows after the checkpoint were dropped on resume.
    strip = lambda p: [r.rsplit(",", 1)[0] for r in p.read_text().splitlines()]  # noqa: E731
    assert strip(tmp_path / "ref" / "train.csv") == strip(tmp_path / "cut" / "train.csv")


# ---------------------------------------------------------------------------- (b) SIGKILL
def _worker(config_path: str) -> None:
    torch.set_num_threads(1)
    cfg = load_config(config_path)
    run(cfg, train_set=SynthPairs(**TRAIN_SET), val_set=SynthPairs(**VAL_SET))


def _start(config: Path, log: Path, slow_write: float = 0.0) -> subprocess.Popen:
    env = dict(os.environ, **{SLOW_WRITE_ENV: str(slow_write)})
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, __file__, str(config)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=Path(__file__).parent,
                                start_new_session=True)


def _last_logged_step(out_dir: Path) -> int:
    try:
        lines = (out_dir / "train.csv").read_text().splitlines()
    except FileNotFoundError:
        return 0
    try:
        return int(lines[-1].split(",")[0]) if len(lines) > 1 else 0
    except ValueError:  # a partially written line
        return 0


def _kill_when(proc: subprocess.Popen, ready, log: Path, timeout: float = 90.0) -> None:
    """SIGKILL the worker's whole session (it and its DataLoader workers) once ``ready()``."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the worker ended before it could be killed:\n{log.read_text()}"
        assert time.monotonic() < deadline, "timed out waiting for the kill point"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def test_sigkill_and_resume_matches_uninterrupted(tmp_path):
    total, freeze_at = 30, 12
    base = tiny_config(tmp_path, total_iters=total, constyle_iters=freeze_at, val_every=5,
                       ckpt_every=4, num_workers=2, resume="auto")
    configs = {}
    for name in ("ref", "killed"):
        cfg = dataclasses.replace(base, out_dir=str(tmp_path / name))
        configs[name] = tmp_path / f"{name}.yml"
        configs[name].write_text(config_to_yaml(cfg))
    log = tmp_path / "worker.log"

    ref = _start(configs["ref"], log)
    assert ref.wait(timeout=180) == 0, log.read_text()

    out = tmp_path / "killed"
    rng = random.Random(20240227)
    early = rng.randint(2, freeze_at - 4)                  # plain step, before the freeze
    late = rng.randint(freeze_at + 2, total - 4)           # after the freeze
    # 1. killed at a random step before the freeze
    proc = _start(configs["killed"], log)
    _kill_when(proc, lambda: _last_logged_step(out) >= early, log)
    # 2. killed while a checkpoint is being written (the hook sleeps before the rename)
    proc = _start(configs["killed"], log, slow_write=30.0)
    _kill_when(proc, lambda: any(out.glob(".*.tmp")), log)
    assert any(out.glob(".*.tmp"))  # the interrupted write left only a temporary
    # 3. killed at a random step after the freeze
    proc = _start(configs["killed"], log)
    _kill_when(proc, lambda: _last_logged_step(out) >= late, log)
    # 4. resumed to the end
    proc = _start(configs["killed"], log)
    assert proc.wait(timeout=180) == 0, log.read_text()
    assert not any(out.glob(".*.tmp"))

    a = load_checkpoint(tmp_path / "ref" / "last.pt")
    b = load_checkpoint(out / "last.pt")
    assert a["step"] == b["step"] == total and b["frozen"]
    assert_same_state(training_state(a), training_state(b))
    ref_rows = (tmp_path / "ref" / "train.csv").read_text().splitlines()
    rows = (out / "train.csv").read_text().splitlines()
    assert [r.rsplit(",", 1)[0] for r in rows] == [r.rsplit(",", 1)[0] for r in ref_rows]


if __name__ == "__main__":
    _worker(sys.argv[1])
