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
from collections.abc import Callable, Mapping

__all__ = ["fmt", "formatters"]


def fmt(value: float, decimals: int | None = None, *, sig: int | None = None) -> str:
    """``value`` with ``decimals`` digits after the point (fixed notation), or with
    ``sig`` significant digits (``g`` notation, for values spanning magnitudes).
    Exactly one of the two is given.  A rounded zero prints without a minus sign;
    NaN and infinities print as ``nan``, ``inf``, ``-inf``."""
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
    return text


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
