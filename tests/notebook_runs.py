"""Running the book's notebooks under ``pytest --nbval`` in a subprocess (keeping their
outputs when asked): for tests/test_notebooks.py, and, run as a script, for the record of
the whole book under each CPU setting of :data:`ENVIRONMENTS`
(``results/nbval_environments.json``)::

    OMP_NUM_THREADS=1 python tests/notebook_runs.py --out results/nbval_environments.json
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

# CPU settings under which the committed outputs must hold (the three): one
# OpenMP thread; ATen's portable kernels instead of its AVX2/AVX-512 ones; oneDNN limited
# to SSE4.1.  Every run also keeps one OpenMP thread, as the notebooks do themselves.
ENVIRONMENTS: dict[str, dict[str, str]] = {
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
    "ATEN_CPU_CAPABILITY=default": {"OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "default"},
    "ONEDNN_MAX_CPU_ISA=SSE41": {"OMP_NUM_THREADS": "1", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}
# Variables that change what a notebook computes: a run sets the ones it needs and
# inherits none of them.
CONTROLLED = ("IRCONSTYLE_PROFILE", "IRCONSTYLE_MAX_STEPS", "IRCONSTYLE_MAX_BATCH",
              "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS", "PYTHONPATH")


def book_notebooks() -> list[Path]:
    """Every notebook of the book (not build outputs or editor checkpoints)."""
    return sorted(p for p in BOOK.rglob("*.ipynb")
                  if "_build" not in p.parts and ".ipynb_checkpoints" not in p.parts)


def committed_notebooks() -> list[Path]:
    """The book's notebooks that git tracks (the record is of the committed book)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--", "book"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split("\0")
    tracked = {(ROOT / p).resolve() for p in listed if p}
    return [p for p in book_notebooks() if p.resolve() in tracked]


def run_env(overrides: dict[str, str]) -> dict[str, str]:
    """This process's environment without the controlled variables, plus ``overrides``
    (the smoke profile and one thread unless they say otherwise)."""
    env = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    env.update({"IRCONSTYLE_PROFILE": "smoke", "OMP_NUM_THREADS": "1"})
    env.update(overrides)
    return env


# A conftest.py for run_nbval(outputs=...): after each cell, the outputs nbval received from
# the kernel (``test_outputs`` of its cell item), one JSON line per cell.
_OUTPUTS_RECORDER = '''"""Written by tests/notebook_runs.py: each cell's outputs."""
import json

OUTPUTS = {outputs!r}


def pytest_runtest_makereport(item, call):
    if call.when == "call" and getattr(item, "test_outputs", None) is not None:
        with open(OUTPUTS, "a", encoding="utf-8") as f:
            f.write(json.dumps({{"notebook": item.path.name, "cell": item.cell_num,
                                "outputs": item.test_outputs}}) + "\\n")
'''


def run_nbval(paths: list[Path], *, cwd: Path, env: dict[str, str], lax: bool = False,
              extra: tuple[str, ...] = (), timeout: float = 1800,
              outputs: Path | None = None) -> subprocess.CompletedProcess:
    """``pytest --nbval`` (or ``--nbval-lax``: run every cell, compare nothing) on
    ``paths`` in the current interpreter's kernel, from ``cwd``.  With ``outputs`` (a
    file in a folder above every notebook of ``paths``, none of their own folders), every
    cell's outputs are appended to it as JSON lines (read them with :func:`read_outputs`),
    through a conftest.py written beside it.  The subprocess reads nothing: its stdin is
    /dev/null (under pytest-xdist a worker's stdin is the pipe that drives it)."""
    options = []
    if outputs is not None:
        (outputs.parent / "conftest.py").write_text(
            _OUTPUTS_RECORDER.format(outputs=str(outputs)), encoding="utf-8")
        options = [f"--rootdir={outputs.parent}", f"--confcutdir={outputs.parent}"]
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
           "--nbval-lax" if lax else "--nbval", "--nbval-current-env", *options, *extra,
           *(str(p) for p in paths)]
    return subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def build_wheel(tmp: Path, *, extra: dict[str, str] | None = None) -> Path:
    """A wheel of the clone's files (tracked and not ignored), built in a copy under
    ``tmp`` so that the build leaves nothing in the clone; ``extra`` adds files (relative
    path -> text) to the copy first (a stray record the wheel must leave out)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    src = tmp / "src"
    for rel in filter(None, listed.split("\0")):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    for rel, text in (extra or {}).items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    dist = tmp / "dist"
    # this environment's setuptools when it has one (offline); else pip's isolated build
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q",
                    "-w", str(dist), str(src)], check=True, capture_output=True, timeout=600)
    (wheel,) = dist.glob("irconstyle-*.whl")
    return wheel


def read_outputs(outputs: Path) -> dict[str, dict[int, list[dict]]]:
    """What :func:`run_nbval` recorded: notebook file name -> code cell number -> the
    cell's outputs (nbformat's output dictionaries: ``stream`` with ``name`` and ``text``,
    ``display_data`` / ``execute_result`` with ``data``, ``error``)."""
    recorded: dict[str, dict[int, list[dict]]] = {}
    for line in outputs.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        recorded.setdefault(row["notebook"], {})[row["cell"]] = row["outputs"]
    return recorded


def _cases(junit: Path) -> dict[str, dict[str, int | float]]:
    """Per notebook: cells passed and failed, and seconds, from a JUnit XML report."""
    out: dict[str, dict[str, int | float]] = {}
    for case in ET.parse(junit).iter("testcase"):
        name = (case.get("file") or case.get("classname") or "").replace(".", "/")
        name = next((p.relative_to(ROOT).as_posix() for p in book_notebooks()
                     if p.stem in name), name)
        row = out.setdefault(name, {"cells_passed": 0, "cells_failed": 0, "seconds": 0.0})
        failed = case.find("failure") is not None or case.find("error") is not None
        row["cells_failed" if failed else "cells_passed"] += 1
        row["seconds"] = round(row["seconds"] + float(case.get("time", 0)), 1)
    return out


def record(out: Path, names: list[str]) -> dict:
    """Run ``pytest --nbval`` on the committed book notebooks under each named setting,
    one after the other, and write the outcomes with their provenance to ``out``."""
    from irconstyle.runtime.environment import provenance  # noqa: PLC0415 - only the record needs it

    command = "OMP_NUM_THREADS=1 python tests/notebook_runs.py --out " + \
        os.path.relpath(out, ROOT)
    notebooks = committed_notebooks()
    runs: dict[str, dict] = {}
    result = {"provenance": provenance(command), "runs": runs}
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        env = run_env(ENVIRONMENTS[name])
        capability = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
            env=env, capture_output=True, text=True, check=True).stdout.strip()
        junit = out.parent / f".nbval_{len(runs)}.xml"
        started = time.perf_counter()
        proc = run_nbval(notebooks, cwd=ROOT, env=env, extra=(f"--junitxml={junit}",))
        seconds = time.perf_counter() - started
        outcomes = _cases(junit)
        junit.unlink()
        runs[name] = {"variables": ENVIRONMENTS[name], "torch_cpu_capability": capability,
                      "command": "pytest --nbval " + " ".join(
                          p.relative_to(ROOT).as_posix() for p in notebooks),
                      "exit_code": proc.returncode,
                      "passed": proc.returncode == 0, "seconds": round(seconds, 1),
                      "notebooks": outcomes,
                      "pytest_last_line": (proc.stdout.strip().splitlines() or [""])[-1]}
        print(f"{name}: exit {proc.returncode} in {seconds:.0f} s", flush=True)
        # written after every setting, so a long record keeps what it has measured
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "nbval_environments.json")
    parser.add_argument("--only", nargs="+", choices=sorted(ENVIRONMENTS), default=list(ENVIRONMENTS))
    args = parser.parse_args(argv)
    result = record(args.out.resolve(), args.only)
    return 0 if all(r["passed"] for r in result["runs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
