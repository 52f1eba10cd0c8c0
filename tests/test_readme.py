"""README.md's commands work as written (issue 17.3).

A fenced block whose info string is ``bash runnable`` (or ``python runnable``, for a code
example run with this environment's Python) is a promise to a new user: run from
the top of a fresh clone, one after the other, every such block succeeds. This test copies
the repository's files (tracked and untracked, never ignored ones such as runs/ or
_build/) into a scratch folder and runs each marked block there with ``bash -e``, in this
environment (the package is already installed: blocks that install packages cannot be
marked). Training is capped through ``IRCONSTYLE_MAX_STEPS`` / ``IRCONSTYLE_MAX_BATCH``
(defaults below; ``README_MAX_STEPS`` / ``README_MAX_BATCH`` override them).

A README with no marked block fails: the test must never pass by running nothing.

Marking a block::

    ```bash runnable
    irconstyle train smoke/constyle_nafnet
    ```

GitHub still highlights it as bash (it reads the first word of the info string).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# info string -> how the block's text is run
RUNNERS = {"bash": ["bash", "-e", "-o", "pipefail", "-c"], "python": [sys.executable, "-c"]}
MAX_STEPS = os.environ.get("README_MAX_STEPS", "20")
MAX_BATCH = os.environ.get("README_MAX_BATCH", "4")
BLOCK_TIMEOUT_S = int(os.environ.get("README_BLOCK_TIMEOUT", "1200"))
# A marked block must not change the environment the rest of the suite runs in.
FORBIDDEN = re.compile(r"\b(pip|pip3|uv|conda|apt-get|apt)\s+(install|uninstall|remove)\b")

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


def fenced_blocks(markdown: str) -> list[tuple[int, str, str]]:
    """``(line number, info string, body)`` of every fenced code block."""
    blocks, lines, i = [], markdown.splitlines(), 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or (m.group(2)[0] == "`" and "`" in m.group(3)):
            i += 1
            continue
        fence, info, start = m.group(2), m.group(3).strip(), i + 1
        j = start
        while j < len(lines):
            close = _FENCE.match(lines[j])
            if close and close.group(2)[0] == fence[0] and len(close.group(2)) >= len(fence) \
                    and not close.group(3).strip():
                break
            j += 1
        blocks.append((start, info, "\n".join(lines[start:j])))
        i = j + 1
    return blocks


def runnable_blocks(markdown: str) -> list[tuple[int, str, str]]:
    """``(line number, language, script)`` of the blocks marked runnable, in order."""
    return [(n, info.split()[0], body) for n, info, body in fenced_blocks(markdown)
            if len(info.split()) >= 2 and info.split()[1] == "runnable"
            and info.split()[0] in RUNNERS]


def copy_clone(dest: Path) -> Path:
    """The repository's files as a fresh clone plus uncommitted work would have them."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listing):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


# ------------------------------------------------------------------------ the parser
def test_parser_finds_only_marked_blocks() -> None:
    text = ("# t\n\n```bash\nnot me\n```\n\n```bash runnable\necho one\n```\n\n"
            "````bash runnable\n```\nnested fence\n```\n````\n\n~~~python runnable\nprint(1)\n~~~\n"
            "```ruby runnable\nno runner\n```\nInline ```bash runnable``` is not a block.\n")
    assert [(lang, body) for _, lang, body in runnable_blocks(text)] == [
        ("bash", "echo one"), ("bash", "```\nnested fence\n```"), ("python", "print(1)")]
    assert runnable_blocks("# no blocks\n\n```bash\nls\n```\n") == []


# ------------------------------------------------------------------------ README itself
def test_readme_marks_runnable_blocks() -> None:
    blocks = runnable_blocks(README.read_text(encoding="utf-8"))
    assert blocks, ("README.md marks no block ```bash runnable```: its commands are untested "
                    "(mark the commands a new user runs, see tests/test_readme.py)")
    bad = [n for n, _, body in blocks if FORBIDDEN.search(body)]
    assert not bad, (f"README.md lines {bad}: a block that installs packages cannot be marked "
                     "runnable (the test runs in the installed environment)")


@pytest.mark.slow
def test_readme_runnable_blocks_work_in_a_fresh_clone(tmp_path: Path) -> None:
    blocks = runnable_blocks(README.read_text(encoding="utf-8"))
    if not blocks:
        pytest.fail("README.md marks no block ```bash runnable```")
    clone = copy_clone(tmp_path / "clone")
    env = {**os.environ,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "IRCONSTYLE_MAX_STEPS": MAX_STEPS, "IRCONSTYLE_MAX_BATCH": MAX_BATCH,
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "MPLBACKEND": "Agg"}
    for line, language, script in blocks:
        try:
            done = subprocess.run([*RUNNERS[language], script], cwd=clone,
                                  env=env, capture_output=True, text=True,
                                  timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"README.md line {line}: still running after {BLOCK_TIMEOUT_S} s:\n{script}")
        assert done.returncode == 0, (
            f"README.md line {line} failed (exit {done.returncode}) in a fresh clone:\n{script}\n"
            f"--- stdout (end)\n{done.stdout[-3000:]}\n--- stderr (end)\n{done.stderr[-3000:]}")
