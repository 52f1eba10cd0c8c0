"""Citations a user of the repository can follow.

The package's files once cited notes that never shipped with it.  Every citation must now
lead somewhere a reader can go: a page of the book (the fidelity and references pages), a
file in the repository, or a public address.  Every behaviour ID of the authors' release
that the code cites (B = model and training logic, D = data and metrics, A = architecture,
as in ``B14`` or ``D1``) must have its row on ``book/fidelity.md``.
"""
from __future__ import annotations

import io
import json
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIDELITY = ROOT / "book" / "fidelity.md"
SCANNED_DIRS = ("irconstyle", "data_scripts", "benchmarks", "tests", "experiments", "book", "docs",
                "results")
SUFFIXES = {".py", ".yml", ".yaml", ".md", ".sh", ".ipynb", ".txt"}
SKIPPED_PARTS = {"_build", "__pycache__", ".ipynb_checkpoints", "fixtures"}

# Notes that exist only outside the repository.  Matched as whole file names, so that
# e.g. "metadata.md" is not taken for "data.md".
UNSHIPPED = re.compile(r"(?<![\w./-])(?:reference/)?"
                       r"(reference_code|data|paper|anchors|design)\.md\b|shared/reference")
# A behaviour ID, or a range of them ("B5-B7"), as a word of its own.
ID = re.compile(r"(?<![\w-])([BDA])(\d{1,2})(?:\s*[-\u2013]\s*([BDA])(\d{1,2}))?(?![\w-])")


def _expand(match: re.Match) -> list[str]:
    letter, first, letter2, last = match.groups()
    if letter2 is None:
        return [f"{letter}{int(first)}"]
    if letter2 != letter or int(last) < int(first):
        return [f"{letter}{int(first)}", f"{letter2}{int(last)}"]
    return [f"{letter}{n}" for n in range(int(first), int(last) + 1)]


def ids_in(text: str) -> set[str]:
    """Every behaviour ID cited in ``text``, ranges expanded."""
    return {i for m in ID.finditer(text) for i in _expand(m)}


def prose_of(path: Path) -> str:
    """The parts of a file that a person reads as prose: comments and strings of Python
    files, the sources of a notebook's cells (never their outputs), whole text otherwise."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        parts = []
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.COMMENT, tokenize.STRING):
                parts.append(tok.string)
        return "\n".join(parts)
    if path.suffix == ".ipynb":
        cells = json.loads(text)["cells"]
        return "\n".join("".join(c.get("source", [])) for c in cells)
    return text


def shipped_files() -> list[Path]:
    files = []
    for d in SCANNED_DIRS:
        for p in sorted((ROOT / d).rglob("*")):
            if (p.is_file() and p.suffix in SUFFIXES
                    and not SKIPPED_PARTS.intersection(p.relative_to(ROOT).parts)):
                files.append(p)
    return files + [p for p in (ROOT / "README.md",) if p.is_file()]


def fidelity_row_ids(markdown: str) -> set[str]:
    """IDs that open a table row's first cell on the fidelity page ("| B5-B7 the ...")."""
    ids: set[str] = set()
    for line in markdown.splitlines():
        if not line.startswith("|"):
            continue
        first_cell = line.strip("|").split("|")[0].strip()
        m = ID.match(first_cell)
        if m:
            ids.update(_expand(m))
    return ids


# ------------------------------------------------------------------------ the helpers
def test_scanner_finds_what_it_should() -> None:
    """The checks below can fail: planted citations are found, look-alikes are not."""
    assert UNSHIPPED.search("see reference_code.md section 6")
    assert UNSHIPPED.search("(``reference/data.md`` section 3)")
    assert not UNSHIPPED.search("irconstyle/data/medium/metadata.md")
    assert ids_in("bugs B5-B7 and D12; not B2B or bf16, nor A100") == {"B5", "B6", "B7", "D12"}
    assert fidelity_row_ids("| B5-B7 the freeze | x |\n| D2 padding | y |\n| what | how |\n"
                            "B9 outside a table") == {"B5", "B6", "B7", "D2"}


def test_the_scan_covers_the_cited_ids() -> None:
    """The scan reaches the files known to cite IDs (B14 in the schedule, D1 in the paired
    datasets, A2 in MAXIM), so the check below is not vacuous."""
    cited = {p.relative_to(ROOT).as_posix(): ids_in(prose_of(p)) for p in shipped_files()}
    assert "B14" in cited["irconstyle/train/schedule.py"]
    assert "D1" in cited["irconstyle/data/paired.py"]
    assert "A2" in cited["irconstyle/nets/maxim.py"]
    assert any("B18" in ids for name, ids in cited.items() if name.endswith(".yml"))


# ------------------------------------------------------------------------ the checks
def test_no_file_cites_notes_that_do_not_ship() -> None:
    me = Path(__file__).resolve()
    offenders = [f"{p.relative_to(ROOT)}:{n}: {line.strip()[:100]}"
                 for p in shipped_files() if p.resolve() != me
                 for n, line in enumerate(prose_of(p).splitlines(), 1)
                 if UNSHIPPED.search(line)]
    assert not offenders, ("cite the book's fidelity/references pages or a public address "
                           "instead of notes a user does not have:\n" + "\n".join(offenders))


def test_every_cited_id_has_a_fidelity_row() -> None:
    rows = fidelity_row_ids(FIDELITY.read_text(encoding="utf-8"))
    missing: dict[str, list[str]] = {}
    for p in shipped_files():
        if p == FIDELITY:
            continue
        for i in sorted(ids_in(prose_of(p)) - rows):
            missing.setdefault(i, []).append(p.relative_to(ROOT).as_posix())
    assert not missing, "IDs cited without a row on book/fidelity.md: " + "; ".join(
        f"{i} in {', '.join(files)}" for i, files in sorted(missing.items()))


@pytest.mark.parametrize("key", ["fan2024irconstyle", "he2020moco", "wang2022basicsr"])
def test_the_fidelity_page_cites_the_bibliography(key: str) -> None:
    """The fidelity page's citations resolve against the book's bibliography."""
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    keys = set(re.findall(r"@\w+\{([^,\s]+),", bib))
    cited = set(re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", FIDELITY.read_text(encoding="utf-8")))
    cited = {k.strip() for group in cited for k in group.split(",")}
    assert cited <= keys, f"cited but not in references.bib: {sorted(cited - keys)}"
    assert key in cited
