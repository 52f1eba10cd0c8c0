"""One number formatter for everything the book prints from a computation.

A notebook's committed outputs are compared by ``pytest --nbval`` on other machines,
where a CPU training run differs in the last bits (another instruction set, another
thread count).  Printing such numbers at the precision the run supports (a PSNR of a
short CPU run to 0.1 dB, not 0.01) keeps the comparison meaningful: a changed constant
shows, rounding noise does not.  Which precision a value supports is the caller's
judgement, stated where it is called.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

__all__ = ["fmt", "formatters", "Table", "range_table"]


def fmt(value: float, decimals: int | None = None, *, sig: int | None = None,
        signed: bool = False) -> str:
    """``value`` with ``decimals`` digits after the point (fixed notation), or with
    ``sig`` significant digits (``g`` notation, for values spanning magnitudes).
    Exactly one of the two is given.  A rounded zero prints without a sign (``-0.00`` would
    claim a direction the digits do not show); ``signed`` puts a ``+`` before every other
    positive value, as differences are written.  NaN and infinities print as ``nan``,
    ``inf``, ``-inf``."""
    if (decimals is None) == (sig is None):
        raise ValueError("fmt: give exactly one of decimals or sig")
    digits = decimals if decimals is not None else sig
    if not isinstance(digits, int) or digits < (0 if sig is None else 1):
        raise ValueError(f"fmt: {'decimals' if sig is None else 'sig'}={digits!r} is not a "
                         f"valid number of digits")
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.{decimals}f}" if sig is None else f"{value:.{sig}g}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]
    if signed and not text.startswith("-") and float(text) != 0:
        text = "+" + text
    return text



def interval(diff: float, lo: float, hi: float, decimals: int = 2) -> str:
    """A difference and its interval as a reader meets them: ``+0.26 [-0.27, +0.79]``."""
    return (f"{fmt(diff, decimals, signed=True)} [{fmt(lo, decimals, signed=True)}, "
            f"{fmt(hi, decimals, signed=True)}]")

def formatters(decimals: Mapping[str, int] | None = None, *,
               sig: Mapping[str, int] | None = None) -> dict[str, Callable[[float], str]]:
    """Column formatters for ``pandas.DataFrame.to_string(formatters=...)``: each column
    named in ``decimals`` (or ``sig``) printed through :func:`fmt`."""
    out: dict[str, Callable[[float], str]] = {}
    for column, n in (decimals or {}).items():
        out[column] = lambda v, n=n: fmt(v, n)
    for column, n in (sig or {}).items():
        if column in out:
            raise ValueError(f"formatters: column {column!r} given both decimals and sig")
        out[column] = lambda v, n=n: fmt(v, sig=n)
    return out


class Table:
    """Rows of already formatted cells, shown as a table wherever a notebook is read.

    Jupyter and the built book render its Markdown (a pipe table, numbered and captioned in
    the book when ``caption`` is given, through MyST's ``table`` directive); a terminal and
    ``pytest --nbval`` read its aligned text.  Both are generated here from the same cells,
    so the comparison of a notebook's outputs does not depend on pandas' HTML markup,
    which changes with pandas' version.  ``label`` names the table for ``{numref}``.
    """

    def __init__(self, rows: Sequence[Mapping[str, object]], *, caption: str | None = None,
                 label: str | None = None, columns: Sequence[str] | None = None,
                 align: Mapping[str, str] | None = None) -> None:
        if not rows:
            raise ValueError("Table: no rows to show")
        self.columns = list(columns or rows[0].keys())
        missing = [c for r in rows for c in self.columns if c not in r]
        if missing:
            raise ValueError(f"Table: rows lack the column(s) {sorted(set(missing))}")
        self.cells = [[str(r[c]) for c in self.columns] for r in rows]
        self.caption, self.label = caption, label
        align = dict(align or {})
        bad = {k: v for k, v in align.items() if v not in ("left", "right", "center")}
        if bad:
            raise ValueError(f"Table: align must be left, right or center, got {bad}")
        # numbers (a sign, digits, a point, brackets of an interval) to the right by default
        self.align = [align.get(c, "right" if all(_numeric(row[i]) for row in self.cells)
                                else "left") for i, c in enumerate(self.columns)]

    @classmethod
    def from_frame(cls, frame, *, decimals: Mapping[str, int] | None = None,
                   sig: Mapping[str, int] | None = None, index: bool = False,
                   caption: str | None = None, label: str | None = None) -> "Table":
        """A pandas DataFrame's rows (its index as the first columns with ``index``), each
        column named in ``decimals`` / ``sig`` printed through :func:`fmt`, the others as
        ``str``; a missing value (NaN, None) as ``-``."""
        cells = formatters(decimals, sig=sig)
        records = (frame.reset_index() if index else frame).to_dict("records")

        def show(column, value) -> str:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return "-"
            return cells[column](value) if column in cells else str(value)

        return cls([{str(k): show(k, v) for k, v in r.items()} for r in records],
                   caption=caption, label=label)

    def to_markdown(self) -> str:
        esc = lambda t: t.replace("|", "\\|").replace("\n", " ")  # noqa: E731
        rule = {"left": ":--", "right": "--:", "center": ":-:"}
        lines = ["| " + " | ".join(esc(c) for c in self.columns) + " |",
                 "|" + "|".join(rule[a] for a in self.align) + "|"]
        lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in self.cells]
        body = "\n".join(lines)
        if self.caption is None:
            return body
        head = f":name: {self.label}\n" if self.label else ""
        return f"```{{table}} {self.caption}\n{head}\n{body}\n```"

    def to_text(self) -> str:
        widths = [max(len(c), *(len(row[i]) for row in self.cells))
                  for i, c in enumerate(self.columns)]
        def line(values):  # noqa: E306
            return "  ".join(v.rjust(w) if a == "right" else v.ljust(w)
                             for v, w, a in zip(values, widths, self.align)).rstrip()
        out = [line(self.columns)] + [line(row) for row in self.cells]
        return "\n".join(([self.caption] if self.caption else []) + out)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        return self.to_text()


def range_table(rows: Sequence[Mapping[str, object]], *, by: Sequence[str],
                columns: Sequence[str], decimals: int, caption: str | None = None,
                label: str | None = None) -> Table:
    """Rows grouped by the columns ``by`` (in order of first appearance): each of
    ``columns`` as ``mean [min, max]`` over the group's rows (the seeds, when rows are
    seeds: with a few seeds the range is what a reader should see, not a standard error),
    and the group's size."""
    groups: dict[tuple, list[Mapping[str, object]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[b] for b in by), []).append(r)
    out = []
    for key, members in groups.items():
        row = dict(zip(by, (str(k) for k in key)))
        for c in columns:
            v = [float(m[c]) for m in members]
            row[c] = f"{fmt(sum(v) / len(v), decimals)} [{fmt(min(v), decimals)}, {fmt(max(v), decimals)}]"
        row["seeds"] = str(len(members))
        out.append(row)
    return Table(out, caption=caption, label=label)


def _numeric(text: str) -> bool:
    """A number, or an interval ``[lo, hi]`` of numbers (thousands separated by commas)."""
    t = text.strip().strip("[]()").replace("%", "").replace("\u2212", "-")
    parts = [p.replace(",", "") for p in t.split(", ")]
    try:
        [float(p) for p in parts]
    except ValueError:
        return False
    return True
