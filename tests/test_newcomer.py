"""The README's commands as a newcomer runs them (issue 24.4).

After the README's install and its two commands, a newcomer types the three commands of the
README's *Using the package* block: ``irconstyle models``, ``irconstyle restore`` on a photo of
their own and ``irconstyle experiment --dry-run experiments/cpu_campaign.yml``.  This test
reads that block from README.md (so the README cannot drift from what is tested) and runs each
command through the installed ``irconstyle`` console script, from the repository root, at the
release's sizes.  Two substitutions, both said here: the photo and the output folder are the
test's own (a scikit-image photo written as JPEG into tmp_path, and a folder beside it, so
the clone is not written to), and ``models`` gets ``--no-time --input-size 32`` (the plain
command times 19 release-size networks: minutes; tests/test_cli_every_model.py runs the
timed form on tiny builds of every model).
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irconstyle import model_names
from test_readme import fenced_blocks

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("irconstyle")  # the installed console script
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"}
CHEAP_MODELS = ["--no-time", "--input-size", "32"]


def readme_commands() -> dict[str, list[str]]:
    """The README's newcomer block: verb -> its words (comments dropped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [body for _, info, body in fenced_blocks(text)
              if info.split()[:1] == ["bash"] and "irconstyle restore" in body]
    assert len(blocks) == 1, "README.md needs one bash block with the newcomer's commands"
    commands = {}
    for line in blocks[0].splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "irconstyle", line
            commands[words[1]] = words
    assert sorted(commands) == ["experiment", "models", "restore"], commands
    return commands


def run(words: list[str]) -> subprocess.CompletedProcess:
    assert SCRIPT.is_file(), f"{SCRIPT}: the package's console script is not installed"
    res = subprocess.run([str(SCRIPT), *words[1:]], cwd=ROOT, capture_output=True, text=True,
                         encoding="utf-8", env=ENV, timeout=600)
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def commands() -> dict[str, list[str]]:
    return readme_commands()


def test_models(commands: dict[str, list[str]]) -> None:
    assert commands["models"] == ["irconstyle", "models"]
    res = run(commands["models"] + CHEAP_MODELS)
    rows = dict(re.findall(r"^(\S+)\s+(?:yes|no)\s+\d+\s+[\d,]*\d\s+(\d+\.\d\d)$", res.stdout,
                           re.MULTILINE))
    assert sorted(rows) == model_names(), res.stdout
    assert all(float(macs) > 0 for macs in rows.values())


def test_restore_a_photo_of_ones_own(commands: dict[str, list[str]], tmp_path: Path) -> None:
    from skimage import data

    words = commands["restore"]
    assert "my_photo.jpg" in words and "restored/" in words and "--weights" not in words
    photo = tmp_path / "my_photo.jpg"
    # the cat's middle band, 150 x 451: two tiles of 256 side by side (half the time of all)
    Image.fromarray(data.chelsea()[75:225]).save(photo, quality=90)
    out = tmp_path / "restored"
    res = run([str(photo) if w == "my_photo.jpg" else f"{out}/" if w == "restored/" else w
               for w in words])
    restored = np.asarray(Image.open(out / "my_photo.png"))
    assert restored.shape == (150, 451, 3) and restored.dtype == np.uint8
    assert "untrained (no weights)" in res.stderr  # what the README says it is
    assert f"{photo} -> {out / 'my_photo.png'}" in res.stdout


def test_experiment_dry_run(commands: dict[str, list[str]]) -> None:
    words = commands["experiment"]
    assert words == ["irconstyle", "experiment", "--dry-run", "experiments/cpu_campaign.yml"]
    res = run(words)
    header, *runs = res.stdout.strip().splitlines()
    m = re.fullmatch(r"experiment cpu_campaign: (\d+) runs -> .*", header)
    assert m, header
    assert int(m[1]) == len(runs) > 0
    assert all(re.fullmatch(r"\s+\S+/\S+/seed\d+\s+(done|todo)\s+total_iters=\d+ model=\S+", r)
               for r in runs), runs
