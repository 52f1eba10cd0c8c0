"""The key-results boxes (issue 25.1): what book/intro.md and each science chapter hold is
what irconstyle.book.evidence.synthesis generates from the committed records now; every number
in a box moves when its record moves (none is typed); the writer changes the box and
nothing else, and a second run changes nothing."""
from __future__ import annotations

import ast
import copy
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from irconstyle.book.evidence import synthesis
from irconstyle.book.evidence.synthesis import Sources, box
from irconstyle.book.evidence.synthesis._common import _db, _interval
from irconstyle.book.evidence.synthesis._writer import _dump
from irconstyle.experiments.summary import compare_to_reference

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
WRITER = "python -m irconstyle.book.evidence.synthesis --write --only {}"


@pytest.fixture(scope="module")
def committed() -> Sources:
    return Sources()


@pytest.fixture(scope="module")
def current(committed: Sources) -> dict[str, str]:
    return synthesis.boxes(committed)


# ----------------------------------------------------------------------------- up to date
def test_intro_box_is_current(current: dict[str, str]) -> None:
    held = synthesis.intro_region((BOOK / "intro.md").read_text(encoding="utf-8"))
    assert held == current["intro"], (
        f"book/intro.md's key-results box is not what the records give now: run "
        f"`{WRITER.format('intro')}`")


@pytest.mark.parametrize("chapter", synthesis.NOTEBOOKS)
def test_chapter_box_is_current(chapter: str, current: dict[str, str]) -> None:
    path = BOOK / "notebooks" / f"{chapter}.ipynb"
    held = synthesis.notebook_box(path)
    assert held is not None, (
        f"book/notebooks/{chapter}.ipynb has no markdown cell tagged {synthesis.TAG!r}: run "
        f"`{WRITER.format(chapter)}` (it inserts the cell before the chapter's summary)")
    assert held == current[chapter], (
        f"book/notebooks/{chapter}.ipynb's key-results box is not what the records give now: "
        f"run `{WRITER.format(chapter)}`")


# ----------------------------------------------------------------------------- the boxes' form
@pytest.mark.parametrize("chapter", synthesis.CHAPTERS)
def test_each_box_is_one_admonition_of_one_sentence_findings(chapter: str,
                                                              current: dict[str, str]) -> None:
    lines = current[chapter].split("\n")
    assert lines[:2] == ["```{admonition} Key results", ":class: tip"] and lines[-1] == "```"
    assert not any(line.startswith("```") for line in lines[1:-1]), "a fence inside the box"
    notation = "{doc}`notation`" if chapter == "intro" else "{doc}`../notation`"
    assert notation in lines[2] and "the paper's choice minus the alternative" in lines[2]
    bullets = [line for line in lines if line.startswith("- ")]
    assert len(bullets) >= 3
    for line in bullets:
        prose = re.sub(r"`[^`]*`|“[^”]*”", "", line)
        assert line.endswith(".") and not re.search(r"\.\s+[A-Z]", prose), line
    # PSNR differences at 0.01 dB at most, as the ledger's rule supports
    assert not re.search(r"\d\.\d{3,} dB|\[[-+]?\d+\.\d{3,}", current[chapter])


def test_the_boxes_say_what_is_untested(committed: Sources, current: dict[str, str]) -> None:
    intro = current["intro"]
    untested = next(line for line in intro.split("\n") if line.startswith("- **Untested**"))
    ledger = committed.ledger()
    for claim in ledger.claims:
        for c in claim.comparisons:
            if c.measured is None:  # every comparison without records is named, and why
                assert f"`{c.arm}` − `{c.baseline}`" in untested
                assert "no committed records" in untested
    trained = {r["config"]["model"]["name"] for n in committed.experiments()
               for r in committed.records(n)}
    for key, label in synthesis.BACKBONES.items():  # the backbones no record trains
        assert (label in untested) == (f"constyle_{key}" not in trained), label
    if any(c.role == "context" for claim in ledger.claims for c in claim.comparisons):
        assert "What the template accounts for" in intro
    assert "Holm:" in intro and "Holm:" in current["guidelines"]
    assert "no encoder trained on another task" in current["latent_space"]
    assert "protocol" in current["evaluation"]


# ----------------------------------------------------------------------------- from the records
def test_the_module_types_no_number() -> None:
    """Numbers come from the evidence: the module's literals are formatting (digits, a
    percent, the M of millions), slice bounds and keyword defaults of display widths."""
    typed = []
    for path in sorted(Path(synthesis.__file__).parent.glob("*.py")):  # every module of it
        tree = ast.parse(path.read_text(encoding="utf-8"))
        exempt = {id(d) for node in ast.walk(tree) if isinstance(node, ast.arguments)
                  for d in [*node.defaults, *node.kw_defaults] if d is not None}
        exempt |= {id(c) for node in ast.walk(tree) if isinstance(node, ast.Slice)
                   for c in ast.walk(node)}
        typed += [(path.name, node.lineno, node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and type(node.value) in (int, float)
                  and id(node) not in exempt and node.value not in (0, 1, 2, 100, 1e6)]
    assert not typed, typed


def test_a_ledger_change_changes_the_sentence(committed: Sources) -> None:
    ledger = copy.deepcopy(committed.ledger())
    claim = next(c for c in ledger.claims if c.id == "nafnet_rain100h_derain")
    comp = claim.comparisons[0]
    before = box("results", Sources(ledger=committed.ledger()))
    old = _interval(comp.measured["diff"], comp.measured["lo"], comp.measured["hi"],
                    ledger.level)
    comp.measured.update(diff=2.345, lo=1.234, hi=3.456, n_seeds=7)
    claim.verdict, claim.verdict_holm = "consistent", "inconclusive"
    claim.claim = claim.claim.replace("Rain100H", "Rain-Elsewhere")
    ledger.margin = 0.25
    after = Sources(ledger=ledger)
    for chapter in ("intro", "results", "training_small_scale"):
        text = box(chapter, after)
        assert "+2.35 dB (95% CI [+1.23, +3.46])" in text, chapter
        # (the training chapter, and the learning-rate line of the ledger's boxes, also compute
        # that control from the records themselves)
        ledger_lines = "\n".join(ln for ln in text.splitlines()
                                 if not ln.startswith("- **At each arm's own learning rate**"))
        assert chapter == "training_small_scale" or old not in ledger_lines, chapter
        assert "7 seeds × 12" in text and "Rain-Elsewhere" in text
        assert "verdict **consistent** (Holm: inconclusive)" in text
        assert "±0.25 dB" in text and "±0.1 dB" not in text
    assert old in before


def _shifted(records: list[dict], arm: str, by: float) -> list[dict]:
    out = copy.deepcopy(records)
    for r in out:
        if r["run"]["arm"] == arm:
            r["metrics"]["ema"]["psnr_rgb"] = [v + by for v in r["metrics"]["ema"]["psnr_rgb"]]
    return out


@pytest.mark.parametrize("lo, hi, words", [
    (0.2, 0.6, "above 0: ConStyle adds to what the template gives"),
    (-0.6, -0.2, "below 0: the template does better without ConStyle"),
    (-0.05, 0.05, "negligible: ConStyle adds nothing beyond the margin"),
    (-0.4, 0.3, "unresolved: whether ConStyle adds to the template is not settled"),
])
def test_constyles_own_part_is_judged_by_its_interval(committed: Sources, lo: float, hi: float,
                                                      words: str) -> None:
    """The template line ends with ConStyle minus its ablation on the same task, in words
    that follow that interval (not the point estimates of the other rows)."""
    ledger = copy.deepcopy(committed.ledger())
    own = next(c for cl in ledger.claims for c in cl.comparisons
               if c.task == "derain" and c.arm == "constyle" and c.baseline == "ablated")
    own.measured.update(diff=(lo + hi) / 2, lo=lo, hi=hi)
    line = next(ln for ln in box("intro", Sources(ledger=ledger)).splitlines()
                if "What the template accounts for" in ln and "nafnet_rain100h_derain" in ln)
    assert f"ConStyle's own part, `constyle` − `ablated` on `derain` {_db((lo + hi) / 2)} dB" in line
    assert words in line


def test_a_record_change_changes_the_ablations_box(committed: Sources) -> None:
    """The chapter's 'arm minus ConStyle', turned round, from the records themselves."""
    ablations, rerun = committed.records("ablations"), committed.records("reference_rerun")
    (c,) = compare_to_reference(ablations, "constyle", reference_records=rerun, arms=["no_style"])
    assert f"minus `no_style` on `derain` {_db(-c.ci.diff)} dB" in box("ablations",
                                                                                committed)
    moved = Sources(records={"ablations": _shifted(ablations, "no_style", 1.0)})
    assert f"minus `no_style` on `derain` {_db(-c.ci.diff - 1.0)} dB" in box("ablations",
                                                                                      moved)


def test_a_record_change_changes_the_scale_and_device(committed: Sources) -> None:
    recs = copy.deepcopy(committed.records("cpu_campaign"))
    for r in recs:
        r["provenance"]["device"] = "cuda"
        r["config"]["total_iters"] = 1234
    text = box("training_small_scale", Sources(records={"cpu_campaign": recs}))
    (scale,) = [line for line in text.split("\n") if line.startswith("- **Scale")]
    steps = committed.records("cpu_campaign")[0]["config"]["total_iters"]
    assert "1,234 steps" in scale and f"{steps:,} steps" not in scale
    assert "patches, GPU" in scale and "patches, CPU" not in text
    assert f"{steps:,} steps" in box("training_small_scale", committed)


def test_a_latent_change_changes_the_latent_box(committed: Sources) -> None:
    report = copy.deepcopy(committed.latent("codes"))
    for enc in report["encoders"].values():
        for space in ("raw", "normalized"):
            enc[space]["silhouette_degradation"] = 0.5
    before, after = box("latent_space", committed), box("latent_space",
                                                        Sources(latent={"codes": report}))
    n = 2 * len(report["encoders"])
    assert f"{n} of {n} silhouettes" in before and "no encoder's codes cluster" in before
    assert f"0 of {n} silhouettes" in after and "no encoder's codes cluster" not in after
    assert "untrained 0.50 (95% CI [0.50, 0.50])" in after


# ----------------------------------------------------------------------------- the ledger table
def test_ledger_frame_is_a_narrow_table_with_its_notes(committed: Sources) -> None:
    frame = synthesis.ledger_frame(committed)
    ledger = committed.ledger()
    assert list(frame.columns) == ["verdict", "claim", "measured", "scale", "Holm"]
    assert list(frame.index) == [c.id for c in ledger.claims]
    assert list(frame.verdict) == [c.verdict for c in ledger.claims]
    assert list(frame.Holm) == [c.verdict_holm for c in ledger.claims]
    assert frame.claim.str.len().max() <= 80
    m = ledger.claims[1].comparisons[0].measured
    assert (f"{_db(m['diff'])} dB [{_db(m['lo'])}, {_db(m['hi'])}]"
            in frame.loc[ledger.claims[1].id, "measured"])
    notes = synthesis.ledger_notes(committed)
    assert list(notes.notes) == [c.notes for c in ledger.claims]
    assert "white-space: normal" in synthesis.styled(frame).to_html()


# ----------------------------------------------------------------------------- the writer
BOX = "```{admonition} Key results\n:class: tip\n- a finding.\n```"


def _without_box(path: Path, to: Path) -> Path:
    """A copy of a chapter without its box cell (as the chapters were before the writer)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb["cells"] = [c for c in nb["cells"] if synthesis.TAG not in c["metadata"].get("tags", [])]
    to.write_text(_dump(nb), encoding="utf-8")
    return to


@pytest.mark.parametrize("chapter", synthesis.NOTEBOOKS)
def test_the_writer_writes_as_the_book_is_written(chapter: str) -> None:
    """nbformat's layout (indent 1, sorted keys, UTF-8 unescaped, a final newline): reading
    and writing back a chapter gives its bytes."""
    text = (BOOK / "notebooks" / f"{chapter}.ipynb").read_text(encoding="utf-8")
    assert _dump(json.loads(text)) == text


def test_the_writer_inserts_the_box_before_the_summary_and_touches_nothing_else(
        tmp_path: Path) -> None:
    path = _without_box(BOOK / "notebooks" / "results.ipynb", tmp_path / "results.ipynb")
    original = path.read_bytes()
    cells = json.loads(original)["cells"]
    summary = max(i for i, c in enumerate(cells)
                  if "".join(c["source"]).startswith("## Summary"))
    assert synthesis.write_notebook(path, BOX)
    nb = json.loads(path.read_text(encoding="utf-8"))
    new = nb["cells"][summary]
    assert new == {"cell_type": "markdown", "id": synthesis.TAG,
                   "metadata": {"tags": [synthesis.TAG]}, "source": BOX.splitlines(True)}
    assert nb["cells"][:summary] + nb["cells"][summary + 1:] == cells
    assert synthesis.notebook_box(path) == BOX
    nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))
    del nb["cells"][summary]
    assert _dump(nb).encode("utf-8") == original  # every other byte kept
    # idempotent: the same box again changes nothing
    written = path.read_bytes()
    assert not synthesis.write_notebook(path, BOX) and path.read_bytes() == written
    # another box replaces the cell's source only
    assert synthesis.write_notebook(path, BOX.replace("a finding", "another"))
    again = json.loads(path.read_text(encoding="utf-8"))
    assert [c for i, c in enumerate(again["cells"]) if i != summary] == \
        [c for i, c in enumerate(nb["cells"][:summary] + [new] + nb["cells"][summary:])
         if i != summary]
    assert "another" in synthesis.notebook_box(path)


def test_the_writer_appends_without_a_summary_and_refuses_two_boxes(tmp_path: Path) -> None:
    nb = {"cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# T"]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "t.ipynb"
    path.write_text(_dump(nb), encoding="utf-8")
    assert synthesis.write_notebook(path, BOX)
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    assert [c["id"] for c in cells] == ["a", synthesis.TAG]
    cells.append(copy.deepcopy(cells[-1]) | {"id": "b"})
    path.write_text(_dump({**nb, "cells": cells}), encoding="utf-8")
    with pytest.raises(ValueError, match="2 cells tagged"):
        synthesis.write_notebook(path, BOX)


def test_the_intro_writer_replaces_the_marked_region_only(tmp_path: Path) -> None:
    path = tmp_path / "intro.md"
    shutil.copy(BOOK / "intro.md", path)
    text = path.read_text(encoding="utf-8")
    head, tail = text.split(synthesis.START)[0], text.split(synthesis.END)[1]
    assert synthesis.write_intro(path, BOX)
    new = path.read_text(encoding="utf-8")
    assert new == f"{head}{synthesis.START}\n{BOX}\n{synthesis.END}{tail}"
    assert not synthesis.write_intro(path, BOX) and path.read_text(encoding="utf-8") == new
    path.write_text(head + tail, encoding="utf-8")
    with pytest.raises(ValueError, match="key-results:start"):
        synthesis.write_intro(path, BOX)


def test_write_and_check_on_a_copy_of_the_book(tmp_path: Path, committed: Sources) -> None:
    book = tmp_path / "book"
    (book / "notebooks").mkdir(parents=True)
    shutil.copy(BOOK / "intro.md", book / "intro.md")
    _without_box(BOOK / "notebooks" / "ablations.ipynb", book / "notebooks" / "ablations.ipynb")
    only = ["intro", "ablations"]
    problems = synthesis.stale(book, only=["ablations"], sources=committed)
    assert len(problems) == 1 and WRITER.format("ablations") in problems[0]
    synthesis.write(book, only=only, sources=committed)
    assert synthesis.stale(book, only=only, sources=committed) == []
    assert synthesis.write(book, only=only, sources=committed) == []  # nothing left to change
    assert synthesis.main(["--check", "--book", str(book), "--only", "ablations"]) == 0


def test_the_sensitivity_box_follows_the_chosen_rate_records(committed: Sources) -> None:
    """Chosen-rate records that move a gap below 0 make the box say **changed**, with both
    intervals; a drift that is not zero is counted as such."""
    choice = committed.json("lr_pilot/choice.json")
    rates = {(c["task"], c["arm"]): c["chosen"] for c in choice["choices"]}
    chosen = []
    for r in committed.records("cpu_campaign"):
        if r["run"]["task"] != "derain" or r["run"]["arm"] not in ("constyle", "nafnet_matched"):
            continue
        r = copy.deepcopy(r)
        r["config"]["optim"]["lr"] = rates["derain", r["run"]["arm"]]
        if r["run"]["arm"] == "constyle":
            r["metrics"]["ema"]["psnr_rgb"] = [v - 5.0 for v in r["metrics"]["ema"]["psnr_rgb"]]
        chosen.append(r)
    drift = copy.deepcopy(committed.drift()[0])
    drift["identical"] = False
    drift["test"]["ema/psnr_rgb"]["max_abs_per_image"] = 0.25
    given = Sources(ledger=committed.ledger(), records={"lr_chosen_derain": chosen},
                    files={"lr_pilot/choice.json": choice, "drift/a.json": drift})
    text = box("sensitivity", given)
    intro = next(ln for ln in box("intro", given).splitlines()
                 if ln.startswith("- **At each arm's own learning rate**"))
    assert "`constyle` − `nafnet_matched` on `derain` is above 0 at 0.0003" in intro
    assert "below 0 at the chosen rates" in intro
    line = next(ln for ln in text.splitlines() if ln.startswith("- **At the chosen rates, `derain`**"))
    assert "`constyle` − `nafnet_matched`" in line and "below 0" in line and "**changed**" in line
    assert "still to come" in line   # the other three derain gaps have no chosen-rate records
    assert "0 of 1 runs re-trained" in text and "0.25 dB" in text
