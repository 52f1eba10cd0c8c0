"""Number and caption the book's figures: write book/figures.json into the notebooks.

MyST-NB wraps a code cell's image output in a numbered, captioned figure when the cell's
metadata has ``"mystnb": {"figure": {"caption": ..., "name": ...}}`` (myst_nb 1.4:
``render_figure_options``, cell key ``figure``; ``create_figure_context`` in
myst_nb/core/render.py).  The caption is parsed as MyST Markdown (code, math, roles): its
first paragraph is the caption, any further paragraph a legend.  ``name`` is the target the
text refers to with {numref}`fig-...`; a code cell's stream outputs (stdout) stay outside
the figure.  Every display output of the cell is wrapped, so a figure cell must have exactly
one display output (a second one, a table say, would be a second figure with the same name).

book/figures.json holds every caption, keyed by notebook file name and the cell's nbformat
id::

    {"ablations.ipynb": {"7e0c6b68": {"caption": "...", "name": "fig-ablations-losses-removed"}}}

Usage (from the repository root)::

    python book/_ext/apply_figures.py            # write the captions into book/notebooks/
    python book/_ext/apply_figures.py --check    # write nothing; exit 1 on any difference

Only ``metadata.mystnb.figure`` of the listed cells changes; everything else of a notebook
is kept, and the file is written as nbformat writes the notebooks (``json.dumps(nb,
indent=1, sort_keys=True, ensure_ascii=False) + "\\n"``), and only when it changed, so a
second run changes nothing.  A listed cell that is missing, or no longer shows a figure, is an
error naming the notebook and the cell id; nothing is written then.

This file sits next to the book's Sphinx extensions but is not one (``_config.yml`` does not
load it): it edits the notebooks' sources, which the build then reads.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterable

BOOK = Path(__file__).resolve().parents[1]
FIGURES = BOOK / "figures.json"
NOTEBOOKS = BOOK / "notebooks"

# Output MIME types that make a figure, and cell tags that hide a cell's outputs in the book.
IMAGE_TYPES = ("image/png", "image/jpeg")
HIDDEN_TAGS = ("remove-output", "remove-cell")


class FigureError(ValueError):
    """figures.json and a notebook disagree (a listed cell missing or showing no figure)."""


def display_outputs(cell: dict[str, Any]) -> list[dict[str, Any]]:
    """The outputs MyST-NB would wrap in the figure: display_data and execute_result."""
    return [o for o in cell.get("outputs", [])
            if o.get("output_type") in ("display_data", "execute_result")]


def shows_figure(cell: dict[str, Any]) -> bool:
    """A code cell whose visible output includes an image (PNG or JPEG)."""
    if cell.get("cell_type") != "code":
        return False
    tags = cell.get("metadata", {}).get("tags", [])
    if any(tag in tags for tag in HIDDEN_TAGS):
        return False
    return any(kind in o.get("data", {}) for o in display_outputs(cell) for kind in IMAGE_TYPES)


def figure_cells(nb: dict[str, Any]) -> list[dict[str, Any]]:
    """Every cell of ``nb`` that shows a figure, in order."""
    return [cell for cell in nb.get("cells", []) if shows_figure(cell)]


def expected_name(notebook: str) -> re.Pattern[str]:
    """The names allowed for a figure of ``notebook``: fig-<stem>-<slug>, lower case."""
    stem = Path(notebook).stem
    return re.compile(rf"fig-{re.escape(stem)}-[a-z0-9]+(?:-[a-z0-9]+)*")


def load_figures(path: Path = FIGURES) -> dict[str, dict[str, dict[str, str]]]:
    """Read figures.json and check its shape: captions non-empty, names unique and of the
    form fig-<notebook stem>-<slug>."""
    figures = json.loads(Path(path).read_text(encoding="utf-8"))
    problems, seen = [], {}
    if not isinstance(figures, dict):
        raise FigureError(f"{path}: expected an object keyed by notebook file name")
    for notebook, cells in figures.items():
        if not notebook.endswith(".ipynb") or not isinstance(cells, dict):
            problems.append(f"{notebook}: expected a notebook file name and an object keyed "
                            "by cell id")
            continue
        for cell_id, entry in cells.items():
            where = f"{notebook}, cell {cell_id}"
            if not isinstance(entry, dict) or set(entry) != {"caption", "name"}:
                problems.append(f"{where}: expected exactly the keys 'caption' and 'name'")
                continue
            caption, name = entry["caption"], entry["name"]
            if not isinstance(caption, str) or not caption.strip():
                problems.append(f"{where}: empty caption")
            elif "\n\n" in caption.strip():
                problems.append(f"{where}: the caption is one paragraph (a second one would be "
                                "rendered as a legend)")
            if not isinstance(name, str) or not expected_name(notebook).fullmatch(name):
                problems.append(f"{where}: name {name!r} is not fig-{Path(notebook).stem}-<slug> "
                                "(lower case, digits, hyphens)")
            elif name in seen:
                problems.append(f"{where}: name {name!r} is already used by {seen[name]}")
            else:
                seen[name] = where
    if problems:
        raise FigureError(f"{path}:\n  " + "\n  ".join(problems))
    return figures


def apply_to_notebook(nb: dict[str, Any], entries: dict[str, dict[str, str]],
                      notebook: str = "notebook") -> list[str]:
    """Set ``metadata.mystnb.figure`` = {caption, name} on each cell listed in ``entries``
    (cell id -> entry), in place.  Returns the ids of the cells that changed.  Raises
    :class:`FigureError` (naming ``notebook`` and the cell id) before changing anything when
    a listed cell is missing or does not show exactly one figure."""
    by_id = {cell.get("id"): cell for cell in nb.get("cells", [])}
    problems = []
    for cell_id in entries:
        cell = by_id.get(cell_id)
        if cell is None:
            problems.append(f"{notebook}, cell {cell_id}: listed in figures.json but not in the "
                            "notebook (was the cell deleted, or its id changed?)")
        elif not shows_figure(cell):
            problems.append(f"{notebook}, cell {cell_id}: listed in figures.json but no longer "
                            "shows a figure (no PNG/JPEG output, or tagged "
                            f"{' / '.join(HIDDEN_TAGS)}): re-execute it or remove its entry")
        elif len(display_outputs(cell)) != 1:
            problems.append(f"{notebook}, cell {cell_id}: {len(display_outputs(cell))} display "
                            "outputs; MyST-NB would make each a figure with the same name: "
                            "keep one display output in a figure cell")
    if problems:
        raise FigureError("\n".join(problems))
    changed = []
    for cell_id, entry in entries.items():
        metadata = by_id[cell_id].setdefault("metadata", {})
        mystnb = metadata.setdefault("mystnb", {})
        figure = {"caption": entry["caption"], "name": entry["name"]}
        if mystnb.get("figure") != figure:
            mystnb["figure"] = figure
            changed.append(cell_id)
    return changed


def unlisted(nb: dict[str, Any], entries: dict[str, Any]) -> list[str]:
    """Ids of the cells that show a figure but have no entry in ``entries``."""
    return [cell.get("id") for cell in figure_cells(nb) if cell.get("id") not in entries]


def stale(nb: dict[str, Any], entries: dict[str, Any]) -> list[str]:
    """Ids of the cells with figure metadata that figures.json does not list."""
    return [cell.get("id") for cell in nb.get("cells", [])
            if isinstance(cell.get("metadata", {}).get("mystnb"), dict)
            and "figure" in cell["metadata"]["mystnb"] and cell.get("id") not in entries]


def dumps(nb: dict[str, Any]) -> str:
    """A notebook as the book's notebooks are written."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def apply(figures: dict[str, dict[str, dict[str, str]]], notebooks: Path = NOTEBOOKS, *,
          write: bool = True) -> dict[str, Any]:
    """Apply ``figures`` to every notebook it lists under ``notebooks``.  Checks every notebook
    first and writes none if any listed cell is missing or shows no figure.  Returns
    {"changed": {notebook: [cell ids]}, "unlisted": {notebook: [ids]}, "stale": {...}}; with
    ``write=False`` nothing is written (a dry run)."""
    notebooks = Path(notebooks)
    problems, pending = [], []
    report: dict[str, Any] = {"changed": {}, "unlisted": {}, "stale": {}}
    for name in sorted(figures):
        path = notebooks / name
        if not path.is_file():
            problems.append(f"{name}: listed in figures.json but {path} does not exist")
            continue
        nb = json.loads(path.read_text(encoding="utf-8"))
        try:
            changed = apply_to_notebook(nb, figures[name], name)
        except FigureError as exc:
            problems.append(str(exc))
            continue
        if changed:  # an unchanged notebook is not rewritten, whatever its formatting
            report["changed"][name] = changed
            pending.append((path, dumps(nb)))
    for path in sorted(notebooks.glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        entries = figures.get(path.name, {})
        for key, ids in (("unlisted", unlisted(nb, entries)), ("stale", stale(nb, entries))):
            if ids:
                report[key][path.name] = ids
    if problems:
        raise FigureError("figures.json does not match the notebooks; nothing written:\n"
                          + "\n".join(problems))
    if write:
        for path, text in pending:
            path.write_text(text, encoding="utf-8")
    return report


def _lines(title: str, by_notebook: dict[str, Iterable[str]]) -> list[str]:
    return [f"{title} {nb}: {', '.join(ids)}" for nb, ids in by_notebook.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--figures", type=Path, default=FIGURES, help="the captions (JSON)")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS,
                        help="folder of the notebooks to caption")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a notebook differs from figures.json")
    args = parser.parse_args(argv)
    try:
        report = apply(load_figures(args.figures), args.notebooks, write=not args.check)
    except FigureError as exc:
        print(f"apply_figures: error: {exc}", file=sys.stderr)
        return 2
    verb = "would caption" if args.check else "captioned"
    for line in _lines(verb, report["changed"]):
        print(line)
    for line in _lines("figure without a caption in figures.json:", report["unlisted"]):
        print(line, file=sys.stderr)
    for line in _lines("figure metadata not in figures.json:", report["stale"]):
        print(line, file=sys.stderr)
    if not any(report.values()):
        print("every figure is captioned as figures.json says")
    if args.check and any(report.values()):
        return 1
    return 1 if report["unlisted"] or report["stale"] else 0


if __name__ == "__main__":
    sys.exit(main())
