"""The book's notebooks hold anywhere: their committed outputs are compared robustly
(text, not HTML; training numbers with a stated tolerance; one thread), the comparison
catches a changed constant, the outputs hold under other CPU settings, and the notebooks
run from an installed wheel outside the clone, in the full profile's code path, writing
only to scratch folders (that check: tests/test_notebooks_wheel.py).  The static checks iterate over all of ``book/**/*.ipynb``.

What the executions below cost (issue 24): ``pytest --nbval`` executes every notebook once
for its outputs, and CI's book is built from those committed outputs without executing them
again (_config.yml).  Each check executes only what its claim needs beyond that run; the
comment at each one says why its form still proves the claim.  Their times are budgeted in
.ci/budgets.yml."""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
import yaml

from notebook_runs import (BOOK, CONTROLLED, ENVIRONMENTS, ROOT, book_notebooks, run_env,
                           run_nbval)

NOTEBOOKS = book_notebooks()
# nbval's comment markers and cell tags that turn comparison off for a cell
IGNORE_MARKERS = ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP", "PYTEST_VALIDATE_IGNORE_OUTPUT")
IGNORE_TAGS = ("nbval-ignore-output", "nbval-skip")
# output types nbval leaves out of the comparison (pixels of a figure)
UNCOMPARED_MIME = ("image/png", "image/jpeg")
# text/html, SVG, LaTeX would be compared byte for byte; Markdown is allowed because the
# package writes it (irconstyle.experiments.report.Table), the same on every machine and pandas version
COMPARED_MIME_ALLOWED = ("text/plain", "text/markdown")


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def ignored(cell: nbformat.NotebookNode) -> bool:
    """Whether nbval skips the comparison of ``cell`` (a comment marker on a line of its
    own, as nbval reads them, or a tag)."""
    comments = {line.strip().lstrip("#").strip() for line in cell.source.splitlines()
                if line.strip().startswith("#")}
    tags = cell.metadata.get("tags", [])
    return bool(comments & set(IGNORE_MARKERS)) or any(t in IGNORE_TAGS for t in tags)


def only_images(cell: nbformat.NotebookNode) -> bool:
    """Whether everything ``cell`` shows is a figure: nbval compares only its text stand-in
    (``<Figure size ... with N Axes>``), never the pixels."""
    outs = cell.get("outputs", [])
    return bool(outs) and all(
        o.output_type in ("display_data", "execute_result")
        and any(m in o.get("data", {}) for m in UNCOMPARED_MIME) for o in outs)


def install_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return code_cells(nb)[0]


def repository_url_of(cell: nbformat.NotebookNode, where: str) -> str | None:
    lines = [ln for ln in cell.source.splitlines() if re.match(r"REPOSITORY_URL\s*=", ln)]
    assert len(lines) == 1, f"{where}: the install cell must set REPOSITORY_URL exactly once"
    return ast.literal_eval(lines[0].split("=", 1)[1].strip())


def configured_url() -> str | None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return (config.get("repository") or {}).get("url")


# ---------------------------------------------------------------------------- static checks
def test_the_book_has_notebooks() -> None:
    assert len(NOTEBOOKS) >= 4, NOTEBOOKS


def test_install_cells_agree_with_the_book_config() -> None:
    """One repository address, ``repository.url`` in _config.yml: every notebook's install
    cell says the same (both unset until the repository is public), the buttons that
    would link to it are on only when it is set, and no notebook installs from or links
    to a repository address of its own (``git+https://...``, a Colab link)."""
    url = configured_url()
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    launch = config.get("launch_buttons") or {}
    html = config.get("html") or {}
    if url is None:
        assert not html.get("use_repository_button") and not html.get("use_issues_button")
        assert not any(k.endswith("_url") for k in launch), launch
    else:
        assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url
    sources = {p.name: install_cell(read(p)).source for p in NOTEBOOKS}
    assert len(set(sources.values())) == 1, "install cells differ between notebooks"
    for path in NOTEBOOKS:
        nb = read(path)
        assert repository_url_of(install_cell(nb), path.name) == url, path.name
        for cell in nb.cells:
            assert "git+http" not in cell.source, f"{path.name}: installs from a literal address"
            for link in re.findall(r"colab\.research\.google\.com/github/[^\s\"')]+", cell.source):
                assert url is not None and url.split("github.com/")[1] in link, f"{path.name}: {link}"


def test_install_cell_explains_how_to_install(tmp_path: Path) -> None:
    """On a machine without the package, no wheel uploaded and no repository configured,
    the install cell stops with how to install, instead of installing from somewhere."""
    source = install_cell(read(NOTEBOOKS[0])).source
    if configured_url() is not None:  # published: the cell installs from the repository
        assert '%pip install -q "git+{REPOSITORY_URL}"' in source
        return
    script = (
        "import sys\n"
        "sys.modules['irconstyle'] = None  # as on a machine without the package\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        f"result = InteractiveShell.instance().run_cell({source!r})\n"
        "print('RESULT', type(result.error_in_exec).__name__, result.error_in_exec)\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=run_env({}))
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    assert line.startswith("RESULT ImportError"), proc.stdout + proc.stderr
    assert "pip install -e ." in line and "pip wheel --no-deps -w dist ." in line, line


def test_every_notebook_fixes_its_thread_count() -> None:
    """``torch.set_num_threads(<int>)`` in the setup cell (the one after the install cell),
    before anything is computed."""
    for path in NOTEBOOKS:
        setup = code_cells(read(path))[1].source
        assert re.search(r"^torch\.set_num_threads\(\d+\)", setup, re.M), path.name


def test_compared_outputs_are_plain_text() -> None:
    """No output nbval would compare byte for byte other than text and the package's own
    Markdown: pandas' HTML tables (their markup changes with pandas' version) are shown
    through irconstyle.experiments.report.Table instead."""
    for path in NOTEBOOKS:
        for i, cell in enumerate(code_cells(read(path))):
            if ignored(cell):
                continue
            for out in cell.get("outputs", []):
                kinds = set(out.get("data", {})) - set(UNCOMPARED_MIME)
                assert kinds <= set(COMPARED_MIME_ALLOWED), f"{path.name} code cell {i}: {kinds}"


def test_harness_markers_are_tags_not_comments() -> None:
    """nbval's comment markers would be printed in the built book as part of the code a
    reader sees (issue 25.4); the cell tags ``nbval-ignore-output`` / ``nbval-skip`` do
    the same for nbval and stay out of sight."""
    shown = [f"{nb.name}: cell {i}" for nb in NOTEBOOKS
             for i, c in enumerate(code_cells(read(nb)))
             if any(m in c.source for m in IGNORE_MARKERS)]
    assert not shown, ("nbval comment markers in visible code (use the cell tag instead): "
                       + ", ".join(shown))


def _stamp(cell: nbformat.NotebookNode, key: str) -> datetime:
    """A time of the committed execution (nbclient's timing metadata)."""
    return datetime.fromisoformat(cell.metadata["execution"][key].replace("Z", "+00:00"))


def _seconds(cell: nbformat.NotebookNode) -> float | None:
    """How long ``cell`` took in the committed execution."""
    e = cell.metadata.get("execution") or {}
    if "iopub.execute_input" not in e or "shell.execute_reply" not in e:
        return None
    return (_stamp(cell, "shell.execute_reply") - _stamp(cell, "iopub.execute_input")).total_seconds()


CELL_NOTE = re.compile(r"(\d+) s\s+when this page was last executed")
BOOK_NOTE = re.compile(r"whole notebook took\s+(\d+) s\s+when last executed")


def test_runtime_notes_are_the_committed_execution_times() -> None:
    """A runtime note states what the committed execution measured (issue 25.4): "N s when
    this page was last executed" for the next code cell, "the whole notebook took N s when
    last executed" for the notebook (first cell's start to last cell's end); a notebook
    that took over a minute says so."""
    for path in NOTEBOOKS:
        nb = read(path)
        timed = [c for c in code_cells(nb) if _seconds(c) is not None]
        assert timed, f"{path.name}: no execution timing in the committed notebook"
        total = (_stamp(timed[-1], "shell.execute_reply")
                 - _stamp(timed[0], "iopub.execute_input")).total_seconds()
        stated = []
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "markdown":
                continue
            for m in CELL_NOTE.finditer(cell.source):
                nxt = next(c for c in nb.cells[i + 1:] if c.cell_type == "code")
                took = _seconds(nxt)
                assert took is not None and abs(took - int(m[1])) <= max(3, 0.1 * took), (
                    f"{path.name}: a note says {m[1]} s, the next cell took {took:.0f} s")
            for m in BOOK_NOTE.finditer(cell.source):
                stated.append(int(m[1]))
                assert abs(total - int(m[1])) <= max(5, 0.1 * total), (
                    f"{path.name}: a note says {m[1]} s, the notebook took {total:.0f} s")
        assert total <= 60 or stated, (
            f"{path.name} took {total:.0f} s: say so ('the whole notebook took N s when last "
            "executed')")


MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|tmp|home|root|Users|content)/[\w.-]+")


def test_no_output_shows_a_path_of_the_machine_that_ran_it() -> None:
    """The built book shows no absolute path of the machine that executed a notebook or ran
    a campaign (issue 25.4): records keep their provenance, a chapter prints it through
    ``irconstyle.book.evidence.portable``."""
    shown = []
    for path in NOTEBOOKS:
        for i, cell in enumerate(code_cells(read(path))):
            for out in cell.get("outputs", []):
                data = out.get("data", {})
                text = out.get("text") or data.get("text/markdown") or data.get("text/plain") or ""
                text = "".join(text) if isinstance(text, list) else text
                shown += [f"{path.name} cell {i}: {m[0]}" for m in MACHINE_PATH.finditer(text)]
    assert not shown, "machine paths in outputs: " + "; ".join(shown[:10])


def test_share_of_uncompared_cells_is_under_a_third(record_property) -> None:
    """Share of code cells whose output ``pytest --nbval`` does not compare, over every
    book notebook: a cell counts as not compared when nbval's comparison is off for it
    (``# NBVAL_IGNORE_OUTPUT`` or ``# NBVAL_SKIP`` on a line of its own, or the tags
    ``nbval-ignore-output`` / ``nbval-skip``), or when all it shows is figures (nbval
    compares the ``<Figure ...>`` text, not the pixels).  A cell with no output counts as
    compared: nbval fails it if it prints anything, warns or raises."""
    total = not_compared = silent = 0
    for path in NOTEBOOKS:
        for cell in code_cells(read(path)):
            total += 1
            not_compared += ignored(cell) or only_images(cell)
            silent += not ignored(cell) and not cell.get("outputs")
    share = not_compared / total
    record_property("uncompared_share", round(share, 3))
    print(f"\n{not_compared} of {total} code cells not compared ({share:.1%}); "
          f"{silent} compared cells are silent")
    assert share < 1 / 3, f"{not_compared} of {total} code cells are not compared"


# ---------------------------------------------------------------------------- executions
def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_a_cell_writing_to_stderr_fails_nbval() -> None:
    """What the book's build refused when it executed the notebooks (a stderr output, such
    as a warning), ``pytest --nbval`` now refuses (conftest.py), in a cell whose output is
    not compared too: a notebook of two cells, one printing to stdout, one marked
    ``# NBVAL_IGNORE_OUTPUT`` writing to stderr, gives one pass and one failure.  The probe
    lives in _build/ (ignored by git) so that the clone's conftest.py applies to it."""
    probe = Path(tempfile.mkdtemp(prefix="stderr_probe_", dir=_scratch_in_clone()))
    try:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("print('fine')", execution_count=1, outputs=[
                        nbformat.v4.new_output("stream", name="stdout", text="fine\n")]),
                    nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nimport sys\n"
                                              "print('a warning', file=sys.stderr)",
                                              execution_count=2)]
        nbformat.write(nb, probe / "probe.ipynb")
        proc = run_nbval([probe / "probe.ipynb"], cwd=ROOT, env=run_env({}), timeout=300)
    finally:
        shutil.rmtree(probe)
    assert proc.returncode == 1 and "1 failed, 1 passed" in proc.stdout, proc.stdout[-3000:]
    assert "wrote to stderr" in proc.stdout and "a warning" in proc.stdout, proc.stdout[-3000:]


def _scratch_in_clone() -> Path:
    """_build/ of the clone (ignored by git), created when missing."""
    folder = ROOT / "_build"
    folder.mkdir(exist_ok=True)
    return folder


# The cheapest notebook with a compared output that depends on a constant: the ConStyle
# losses of its table move with the noise level of its crops.
MUTATED_NOTEBOOK = BOOK / "notebooks" / "constyle_design.ipynb"
MUTATION = ("* 25 / 255", "* 15 / 255")


# Cost: two runs of the book's cheapest notebook (10 to 15 s each on the 2-core machine
# under load), kept whole: the unmodified copy is the control that makes the mutated
# copy's failure the mutation's (not the scratch folder's), and ``-x`` already stops the
# mutated run at its first differing cell.
@pytest.mark.slow
def test_nbval_fails_when_a_constant_changes(tmp_path: Path) -> None:
    """The committed outputs pin what a notebook computes: a copy with the noise level
    changed (sigma 25 -> 15) fails ``pytest --nbval`` on a compared cell, the unmodified
    copy passes, and running it (with the editable install, which can reach the clone)
    adds nothing to its folder nor to the clone's ``git status`` (in a checkout that others
    edit at the same time, their edits show here too)."""
    nb = read(MUTATED_NOTEBOOK)
    hits = [c for c in code_cells(nb) if MUTATION[0] in c.source]
    assert len(hits) == 1 and not ignored(hits[0]), "the mutated constant is not in one compared cell"
    before = _git_status()
    for name, old_new in (("same", None), ("mutated", MUTATION)):
        folder = tmp_path / name
        folder.mkdir()
        copy = read(MUTATED_NOTEBOOK)
        if old_new is not None:
            for cell in code_cells(copy):
                cell.source = cell.source.replace(*old_new)
        nbformat.write(copy, folder / MUTATED_NOTEBOOK.name)
        proc = run_nbval([folder / MUTATED_NOTEBOOK.name], cwd=folder, env=run_env({}),
                         extra=("-x",), timeout=600)
        log = proc.stdout[-3000:] + proc.stderr[-2000:]
        if old_new is None:
            assert proc.returncode == 0, log
            assert _files(folder) == {MUTATED_NOTEBOOK.name}, _files(folder)
        else:
            assert proc.returncode == 1 and "Cell outputs differ" in proc.stdout, log
    assert _git_status() == before, "running the notebook changed the clone"


# The most sensitive notebook: its two short training runs carry rounding differences into
# the PSNR it checks against the committed run.
TRAINING_NOTEBOOK = BOOK / "notebooks" / "training_small_scale.ipynb"


def _session_runs_strictly(request: pytest.FixtureRequest, notebook: Path,
                           variables: dict[str, str]) -> bool:
    """Whether this pytest session itself runs every cell of ``notebook`` under strict nbval
    (not ``--nbval-lax``) in this interpreter's kernel, with exactly the controlled
    variables that a run under ``variables`` would have (``run_env``): then its own run of
    the notebook is that run, and its outcome is this session's."""
    option = request.config.option
    if not getattr(option, "nbval", False) or getattr(option, "nbval_lax", False) \
            or not getattr(option, "nbval_current_env", False):
        return False
    cells = [item for item in request.session.items if Path(str(item.path)) == notebook]
    if len(cells) != len(code_cells(read(notebook))):  # absent, or some cells deselected
        return False
    wanted = run_env(variables)
    return all(os.environ.get(k) == wanted.get(k) for k in CONTROLLED)


@pytest.mark.slow
@pytest.mark.parametrize("setting", list(ENVIRONMENTS))
def test_training_notebook_holds_under_cpu_setting(setting: str,
                                                    request: pytest.FixtureRequest) -> None:
    """The most sensitive notebook (two short training runs) passes strict nbval under each
    CPU setting; results/nbval_environments.json records the whole book under them.

    Reduced form (issue 24): a setting that is exactly the environment of this session's
    own ``pytest --nbval`` run of the notebook (``OMP_NUM_THREADS=1`` under the README's
    command: conftest.py sets it) is not run a second time: the session's run is the same
    command in the same interpreter's kernel with the same controlled variables, so it
    proves the same, and a failure fails this session.  The check says so in its skip
    reason; run alone (``pytest tests/test_notebooks.py``) or under other variables, it
    runs the notebook itself.  The two other settings change the kernels that compute, so
    each still needs a run of its own, and the notebook's cost is its training, so no
    cheaper part of it would prove the same."""
    if _session_runs_strictly(request, TRAINING_NOTEBOOK, ENVIRONMENTS[setting]):
        pytest.skip(f"proved by this session's own strict nbval run of "
                    f"{TRAINING_NOTEBOOK.name}, whose environment is {setting}")
    proc = run_nbval([TRAINING_NOTEBOOK], cwd=ROOT, env=run_env(ENVIRONMENTS[setting]),
                     timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
