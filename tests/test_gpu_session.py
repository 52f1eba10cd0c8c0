"""The one-call GPU script (benchmarks/gpu_session.sh, issue 27) refuses clearly what it cannot
do, so a lent machine's minutes are not spent on a run that would fail half-way: no CUDA device
outside its CPU trial, no release checkout. (Its full CPU trial, `DRY=1`, trains and times
models for about a minute: run by hand, not here.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_session.sh"


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "OUT": str(tmp_path / "out"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **env}
    return subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=120)


def test_the_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_without_the_release_nothing_runs(tmp_path: Path) -> None:
    res = _run(tmp_path, DRY="1", RELEASE=str(tmp_path / "missing"))
    log = (tmp_path / "out" / "session.log").read_text()
    assert res.returncode == 2 and "is not a checkout of the release" in log
    assert "torch" in (tmp_path / "out" / "env.txt").read_text()   # the machine is still named


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine runs the session for real")
def test_without_cuda_only_the_cpu_trial_runs(tmp_path: Path) -> None:
    res = _run(tmp_path, DRY="0")
    assert res.returncode == 2
    assert "no CUDA device here" in (tmp_path / "out" / "session.log").read_text()
