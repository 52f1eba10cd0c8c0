"""The book's figures are numbered and captioned (issue 25.3).

Every code cell whose visible output is a figure (a PNG or JPEG output, the cell not tagged
remove-output or remove-cell) has an entry in book/figures.json (caption and name, keyed by
notebook file name and cell id) and carries it as ``metadata.mystnb.figure``, which makes
MyST-NB render the output as a numbered figure with that caption, the target of
{numref}`fig-...`.  ``python book/_ext/apply_figures.py`` writes the entries into the
notebooks; the applier is tested here on copies, never on book/notebooks/.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted((BOOK / "notebooks").glob("*.ipynb"))
FIGURES_JSON = BOOK / "figures.json"
APPLIER = BOOK / "_ext" / "apply_figures.py"


def _load_applier():
    spec = importlib.util.spec_from_file_location("apply_figures", APPLIER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


af = _load_applier()


def _figures() -> dict:
    return json.loads(FIGURES_JSON.read_text(encoding="utf-8"))


def _notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _figure_cells(nb: dict) -> list[dict]:
    """Written out here, independently of the applier: code cells with a visible image."""
    cells = []
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] != "code" or "remove-output" in tags or "remove-cell" in tags:
            continue
        if any(k in o.get("data", {}) for o in cell.get("outputs", [])
               for k in ("image/png", "image/jpeg")):
            cells.append(cell)
    return cells


def test_the_book_has_figures_and_the_applier_finds_the_same_cells():
    total = 0
    for path in NOTEBOOKS:
        nb = _notebook(path)
        mine = [c["id"] for c in _figure_cells(nb)]
        assert mine == [c["id"] for c in af.figure_cells(nb)], path.name
        total += len(mine)
    assert total > 0, "no figure found in book/notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_is_listed_and_captioned(path: Path):
    """Each figure cell has its entry in figures.json and carries it in its metadata (run
    `python book/_ext/apply_figures.py` after editing figures.json)."""
    entries = _figures().get(path.name, {})
    nb = _notebook(path)
    unlisted = [c["id"] for c in _figure_cells(nb) if c["id"] not in entries]
    assert not unlisted, (f"{path.name}: figure cells without a caption in book/figures.json: "
                          f"{unlisted}")
    missing = [c["id"] for c in _figure_cells(nb)
               if c.get("metadata", {}).get("mystnb", {}).get("figure") != entries[c["id"]]]
    assert not missing, (f"{path.name}: cells whose metadata.mystnb.figure differs from "
                         f"book/figures.json (run python book/_ext/apply_figures.py): {missing}")


def test_every_entry_is_a_figure_cell_with_one_display_output():
    for name, entries in _figures().items():
        path = BOOK / "notebooks" / name
        assert path.is_file(), f"figures.json lists {name}, which is not in book/notebooks/"
        by_id = {c.get("id"): c for c in _notebook(path)["cells"]}
        figure_ids = {c["id"] for c in _figure_cells(_notebook(path))}
        for cell_id in entries:
            assert cell_id in by_id, f"{name}, cell {cell_id}: not in the notebook"
            assert cell_id in figure_ids, f"{name}, cell {cell_id}: shows no figure"
            shown = [o for o in by_id[cell_id]["outputs"]
                     if o["output_type"] in ("display_data", "execute_result")]
            # MyST-NB wraps every display output of the cell in a figure of the same name
            assert len(shown) == 1, f"{name}, cell {cell_id}: {len(shown)} display outputs"


def test_names_are_unique_and_follow_the_pattern():
    seen = {}
    for name, entries in _figures().items():
        pattern = re.compile(rf"fig-{re.escape(Path(name).stem)}-[a-z0-9]+(?:-[a-z0-9]+)*")
        for cell_id, entry in entries.items():
            assert set(entry) == {"caption", "name"}, (name, cell_id)
            assert pattern.fullmatch(entry["name"]), (
                f"{name}, cell {cell_id}: {entry['name']!r} is not fig-{Path(name).stem}-<slug>")
            assert entry["name"] not in seen, (
                f"{entry['name']} used twice: {seen.get(entry['name'])}")
            seen[entry["name"]] = (name, cell_id)
            caption = entry["caption"].strip()
            assert caption and "\n\n" not in caption, f"{name}, cell {cell_id}: one paragraph"
    af.load_figures(FIGURES_JSON)  # the applier's own checks agree


NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?!\w)")


def test_caption_numbers_come_from_the_notebook():
    """A caption states no number that the notebook's code or Markdown does not hold (file
    names and other code literals in backticks excepted): captions describe, they do not
    invent."""
    for name, entries in _figures().items():
        cells = _notebook(BOOK / "notebooks" / name)["cells"]
        source = "\n".join("".join(c["source"]) for c in cells)
        for cell_id, entry in entries.items():
            text = re.sub(r"`[^`]*`", "", entry["caption"])
            absent = [n for n in sorted(set(NUMBER.findall(text)))
                      if not re.search(rf"(?<![\d.,]){re.escape(n)}(?!\d)", source)]
            assert not absent, f"{name}, cell {cell_id}: numbers not in the notebook: {absent}"


def _undo(nb: dict, before: dict, listed: dict) -> dict:
    """``nb`` with the figure metadata of the ``listed`` cells put back as in ``before``."""
    nb = copy.deepcopy(nb)
    old = {c.get("id"): c.get("metadata", {}) for c in before["cells"]}
    for cell in nb["cells"]:
        if cell.get("id") not in listed:
            continue
        mystnb, was = cell["metadata"]["mystnb"], old[cell["id"]].get("mystnb")
        if isinstance(was, dict) and "figure" in was:
            mystnb["figure"] = was["figure"]  # in place: the key keeps its position
        else:
            del mystnb["figure"]
        if was is None and not mystnb:
            del cell["metadata"]["mystnb"]
    return nb


def test_applier_is_idempotent_and_touches_nothing_else(tmp_path: Path):
    copies = tmp_path / "notebooks"
    shutil.copytree(BOOK / "notebooks", copies, ignore=shutil.ignore_patterns(".*"))
    originals = {p.name: p.read_text(encoding="utf-8") for p in copies.glob("*.ipynb")}
    figures = af.load_figures(FIGURES_JSON)

    first = af.apply(figures, copies)
    after = {p.name: p.read_text(encoding="utf-8") for p in copies.glob("*.ipynb")}
    for name, text in after.items():
        before, nb = json.loads(originals[name]), json.loads(text)
        if name not in first["changed"]:
            assert text == originals[name], f"{name}: rewritten although nothing changed"
            continue
        assert text == af.dumps(nb)  # written as the book's notebooks are written
        # putting the figure metadata back gives the original notebook, key order included
        assert af.dumps(_undo(nb, before, figures[name])) == af.dumps(before), name
        for cell in nb["cells"]:
            if cell.get("id") in figures[name]:
                assert cell["metadata"]["mystnb"]["figure"] == figures[name][cell["id"]]
    second = af.apply(figures, copies)  # again: nothing to change, nothing written
    assert second["changed"] == {}
    assert {p.name: p.read_text(encoding="utf-8") for p in copies.glob("*.ipynb")} == after
    code = af.main(["--check", "--notebooks", str(copies), "--figures", str(FIGURES_JSON)])
    assert code == (1 if second["unlisted"] or second["stale"] else 0)


def _tiny_notebook(tmp_path: Path, outputs: list[dict], tags=()) -> Path:
    nb = {"cells": [{"cell_type": "code", "execution_count": 1, "id": "abc123",
                     "metadata": {"tags": list(tags)}, "outputs": outputs,
                     "source": ["plot()"]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    folder = tmp_path / "nbs"
    folder.mkdir(exist_ok=True)
    path = folder / "tiny.ipynb"
    path.write_text(af.dumps(nb), encoding="utf-8")
    return path


IMAGE = {"output_type": "display_data", "metadata": {},
         "data": {"image/png": "iVBORw0KGgo=", "text/plain": ["<Figure>"]}}
ENTRY = {"caption": "A caption.", "name": "fig-tiny-plot"}


def test_applier_fails_clearly_and_writes_nothing(tmp_path: Path):
    path = _tiny_notebook(tmp_path, [IMAGE])
    text = path.read_text(encoding="utf-8")
    with pytest.raises(af.FigureError, match=r"tiny\.ipynb, cell gone99: .*not in the notebook"):
        af.apply({"tiny.ipynb": {"abc123": ENTRY, "gone99": ENTRY}}, path.parent)
    assert path.read_text(encoding="utf-8") == text  # checked first, nothing written

    for outputs, tags in (([], ()), ([IMAGE], ("remove-output",)),
                          ([{"output_type": "stream", "name": "stdout", "text": ["x"]}], ())):
        path = _tiny_notebook(tmp_path, outputs, tags)
        with pytest.raises(af.FigureError,
                           match=r"tiny\.ipynb, cell abc123: .*no longer shows a figure"):
            af.apply({"tiny.ipynb": {"abc123": ENTRY}}, path.parent)

    path = _tiny_notebook(tmp_path, [IMAGE, IMAGE])
    with pytest.raises(af.FigureError, match=r"tiny\.ipynb, cell abc123: 2 display outputs"):
        af.apply({"tiny.ipynb": {"abc123": ENTRY}}, path.parent)

    path = _tiny_notebook(tmp_path, [{"output_type": "stream", "name": "stdout", "text": ["x"]},
                                     IMAGE])
    report = af.apply({"tiny.ipynb": {"abc123": ENTRY}}, path.parent)
    assert report["changed"] == {"tiny.ipynb": ["abc123"]}
    cell = _notebook(path)["cells"][0]
    assert list(cell["metadata"]) == ["mystnb", "tags"]  # written as nbformat writes: keys sorted
    assert cell["metadata"]["mystnb"] == {"figure": ENTRY}


def test_figures_json_is_checked(tmp_path: Path):
    bad = tmp_path / "figures.json"
    bad.write_text(json.dumps({"tiny.ipynb": {"a": {"caption": "x", "name": "fig-other-x"},
                                              "b": {"caption": "", "name": "fig-tiny-x"},
                                              "c": {"caption": "y", "name": "fig-tiny-x"}}}))
    with pytest.raises(af.FigureError) as info:
        af.load_figures(bad)
    message = str(info.value)
    assert "cell a: name 'fig-other-x'" in message
    assert "cell b: empty caption" in message
    assert "cell c: name 'fig-tiny-x' is already used" in message
