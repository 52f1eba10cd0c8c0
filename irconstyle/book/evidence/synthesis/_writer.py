"""Putting the boxes into the book (the intro's marked region, each chapter's tagged cell),
checking them, and the command line."""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from ._boxes import box
from ._common import CHAPTERS, END, START, SUMMARY_HEADINGS, TAG, Sources


def _region(text: str, where: str) -> tuple[int, int]:
    start, end = text.find(START), text.find(END)
    if start < 0 or end < 0 or end < start or text.count(START) != 1 or text.count(END) != 1:
        raise ValueError(f"{where}: expects exactly one {START} followed by one {END}")
    return start + len(START), end


def intro_region(text: str, where: str = "intro.md") -> str:
    """What lies between the intro's markers, without the newlines that frame it."""
    a, b = _region(text, where)
    return text[a:b].strip("\n")


def write_intro(path: str | Path, text: str) -> bool:
    """Replace what lies between the markers of ``path`` by ``text``; True if it changed."""
    path = Path(path)
    old = path.read_text(encoding="utf-8")
    a, b = _region(old, str(path))
    new = old[:a] + "\n" + text + "\n" + old[b:]
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old


def _dump(nb: dict) -> str:
    """As nbformat writes a notebook (and as the book's .ipynb files are)."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _tagged(nb: dict, where: str) -> int | None:
    hits = [i for i, c in enumerate(nb["cells"]) if TAG in c.get("metadata", {}).get("tags", [])]
    if len(hits) > 1:
        raise ValueError(f"{where}: {len(hits)} cells tagged {TAG!r}, expected one")
    return hits[0] if hits else None


def notebook_box(path: str | Path) -> str | None:
    """The source of ``path``'s cell tagged :data:`TAG`; None when it has none."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    i = _tagged(nb, str(path))
    return None if i is None else "".join(nb["cells"][i]["source"])


def _insert_at(cells: list[dict]) -> int:
    heads = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
             and "".join(c["source"]).lstrip().startswith(SUMMARY_HEADINGS)]
    return heads[-1] if heads else len(cells)


def write_notebook(path: str | Path, text: str) -> bool:
    """Set the source of ``path``'s cell tagged :data:`TAG` to ``text``, inserting a markdown
    cell (before the closing summary, :data:`SUMMARY_HEADINGS`) when there is none; every
    other byte is kept. True if the file changed."""
    path = Path(path)
    old = path.read_text(encoding="utf-8")
    nb = json.loads(old)
    source = text.splitlines(keepends=True)
    i = _tagged(nb, str(path))
    if i is None:
        if any(c.get("id") == TAG for c in nb["cells"]):
            raise ValueError(f"{path}: a cell already has the id {TAG!r} without the tag")
        cell = {"cell_type": "markdown", "metadata": {"tags": [TAG]}, "source": source}
        if any("id" in c for c in nb["cells"]):  # nbformat 4.5 on: every cell has an id
            cell["id"] = TAG
        nb["cells"].insert(_insert_at(nb["cells"]), cell)
    else:
        nb["cells"][i]["source"] = source
    new = _dump(nb)
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old


def write(book: str | Path = "book", *, only: Sequence[str] | None = None,
          sources: Sources | None = None) -> list[Path]:
    """Write the boxes of ``only`` (default: all) into ``book``; the files that changed."""
    book = Path(book)
    keys = list(only or CHAPTERS)
    src = sources or Sources()
    changed = []
    for key in keys:
        path = book / "intro.md" if key == "intro" else book / "notebooks" / f"{key}.ipynb"
        writer = write_intro if key == "intro" else write_notebook
        if writer(path, box(key, src)):
            changed.append(path)
    return changed


def stale(book: str | Path = "book", *, only: Sequence[str] | None = None,
          sources: Sources | None = None) -> list[str]:
    """Each box of ``book`` that differs from what the records give now (empty: all current)."""
    book = Path(book)
    src = sources or Sources()
    out = []
    for key in list(only or CHAPTERS):
        if key == "intro":
            held: str | None = intro_region((book / "intro.md").read_text(encoding="utf-8"))
            where = book / "intro.md"
        else:
            where = book / "notebooks" / f"{key}.ipynb"
            held = notebook_box(where)
        if held is None:
            out.append(f"{where}: no markdown cell tagged {TAG!r}; run `python -m "
                       f"irconstyle.book.evidence.synthesis --write --only {key}`")
        elif held != box(key, src):
            out.append(f"{where}: the key-results box differs from the records; run `python -m "
                       f"irconstyle.book.evidence.synthesis --write --only {key}`")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m irconstyle.book.evidence.synthesis",
                                description="Write (or check) the book's key-results boxes.")
    p.add_argument("--write", action="store_true", help="write the boxes into the book")
    p.add_argument("--check", action="store_true", help="exit 1 if a box is not current")
    p.add_argument("--print", dest="show", metavar="CHAPTER", help="print one chapter's box")
    p.add_argument("--only", action="append", choices=CHAPTERS,
                   help="a chapter to write or check (repeatable; default: all)")
    p.add_argument("--book", default="book", help="the book's folder (default: ./book)")
    args = p.parse_args(argv)
    if args.show:
        print(box(args.show))
        return 0
    if not (args.write or args.check):
        p.error("give --write, --check or --print CHAPTER")
    if args.write:
        for path in write(args.book, only=args.only):
            print(f"wrote {path}")
    if args.check:
        problems = stale(args.book, only=args.only)
        print("\n".join(problems) or "every key-results box is current")
        return 1 if problems else 0
    return 0

