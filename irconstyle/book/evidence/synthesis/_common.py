"""What every box shares: the chapters, what the boxes read (:class:`Sources`) and how a
number, an interval, a scale and a finding are written."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ....experiments.claims import Ledger
from ....experiments.cost import RECIPE_STEPS
from ....experiments.report import fmt
from ....experiments.stats import PairedCI, classify


CHAPTERS = ("intro", "guidelines", "latent_space", "ablations", "results",
            "training_small_scale", "evaluation", "sensitivity")
NOTEBOOKS = CHAPTERS[1:]  # book/notebooks/<key>.ipynb
TAG = "key-results"       # the tag (and the id, when the writer inserts it) of a chapter's box cell
START, END = "<!-- key-results:start -->", "<!-- key-results:end -->"
# The writer inserts a missing box cell before the last markdown cell opening with one of
# these (the chapter's closing summary, which the box then introduces), else at the end.
SUMMARY_HEADINGS = ("## Summary", "## What we found")
# The paper's three U-Nets (ConStyle-X against X), by the package's model names.
BACKBONES = {"nafnet": "NAFNet", "restormer": "Restormer", "maxim": "MAXIM"}
# Training task -> the degradation type of the latent measures it trains on.
TRAINED_ON = {"denoise": "noise", "deblur": "blur", "derain": "rain", "dehaze": "haze"}


class Sources:
    """What the boxes read: the committed evidence (:mod:`irconstyle.book.evidence`) unless a test
    hands in its own ledger, records (by experiment folder), latent measures or JSON files
    (by their path under results/)."""

    def __init__(self, *, ledger: Ledger | None = None,
                 records: Mapping[str, list[dict]] | None = None,
                 latent: Mapping[str, dict] | None = None,
                 files: Mapping[str, Any] | None = None) -> None:
        self._ledger = ledger
        self._records = dict(records or {})
        self._latent = dict(latent or {})
        self._files = dict(files or {})
        self._given = set(self._records)

    def ledger(self) -> Ledger:
        if self._ledger is None:
            from .. import ledger
            self._ledger = ledger()
        return self._ledger

    def records(self, name: str) -> list[dict]:
        """``results/<name>/``'s run records; none for an experiment not run yet."""
        if name not in self._records:
            from .. import exists, records
            self._records[name] = records(name) if exists(name) else []
        return self._records[name]

    def latent(self, name: str = "codes") -> dict:
        if name not in self._latent:
            from .. import latent
            self._latent[name] = latent(name)
        return self._latent[name]

    def json(self, rel: str) -> Any:
        """``results/<rel>``, parsed; None when this installation does not have it."""
        if rel not in self._files:
            from .. import exists, read_json
            self._files[rel] = read_json(rel) if exists(rel) else None
        return self._files[rel]

    def drift(self) -> list[dict]:
        """The measured drifts between commits (``results/drift/*.json``), by file name."""
        given = sorted(k for k in self._files if k.startswith("drift/"))
        if given:
            return [self._files[k] for k in given]
        from .. import exists, path
        if not exists("drift"):
            return []
        return [self.json(f"drift/{p.name}") for p in sorted(path("drift").glob("*.json"))]

    def experiments(self) -> list[str]:
        """Every experiment folder with records (the committed ones and any handed in)."""
        from .. import experiment_names
        return sorted(set(experiment_names()) | self._given)

    def planned(self, name: str) -> tuple[list[str], list[int]] | None:
        """(arms, seeds) of ``experiments/<name>.yml``; None without that file."""
        from .. import EvidenceMissing, spec
        try:
            s = spec(name)
        except EvidenceMissing:
            return None
        return list(s.arms), list(s.seeds)


# --------------------------------------------------------------------------- formatting
def _db(value: float) -> str:
    """A signed PSNR difference at 0.01 dB, the finest a few CPU seeds support."""
    return fmt(value, 2, signed=True)


def _val(value: float) -> str:
    """A latent measure (silhouette, accuracy, share) at two decimals."""
    return fmt(value, 2)


def _interval(diff: float, lo: float, hi: float, level: float, unit: str = " dB",
              show=_db) -> str:
    return f"{show(diff)}{unit} ({fmt(100 * level, 0)}% CI [{show(lo)}, {show(hi)}])"


def _device(records: Sequence[dict]) -> str:
    kinds = {str(r.get("provenance", {}).get("device") or "unknown device") for r in records}
    return "/".join(sorted("GPU" if k.startswith("cuda") else k.upper() if k == "cpu" else k
                           for k in kinds))


def _scale(*, n_seeds: int, n_images: int, test: str, width: Any, steps: int, batch: int,
           patch: Any, device: str) -> str:
    """The setting of a measurement in one clause, as a fraction of the release's steps."""
    parts = [f"{n_seeds} seeds × {n_images} {test}-set test photos",
             f"width {width}" if width is not None else "the release's width",
             f"{steps:,} steps ({steps / RECIPE_STEPS:.3%} of the release's)", f"batch {batch}"]
    if patch:
        parts.append(f"{patch}×{patch} patches")
    return ", ".join(parts + ([device] if device else []))


def _record_scale(record: dict, n_seeds: int, n_images: int, device: str) -> str:
    cfg = record["config"]
    return _scale(n_seeds=n_seeds, n_images=n_images, test=record["experiment"]["test"]["kind"],
                  width=cfg["model"]["kwargs"].get("width"), steps=cfg["total_iters"],
                  batch=cfg["batch_size"], patch=cfg["data"]["train"]["kwargs"].get("patch_size"),
                  device=device)


def _source(text: str) -> str:
    """A claim's source without its address (the ledger and the results chapter keep it)."""
    return re.sub(r",?\s*https?://[^\s;,]+", "", text).strip()


def _quote(text: str) -> str:
    return "“" + text.strip().rstrip(".") + "”"


def _code(name: str) -> str:
    return f"`{name}`"


def _header(title: str = "Key results") -> list[str]:
    return [f"```{{admonition}} {title}", ":class: tip"]


def _preamble(src: Sources, notation: str) -> str:
    led = src.ledger()
    return ("Generated from the committed records by `python -m irconstyle.book.evidence.synthesis "
            "--write`. Differences are the paper's choice minus the alternative (notation: "
            f"{{doc}}`{notation}`): PSNR on RGB in dB of the EMA weights, the mean over seeds and "
            f"test photos with its {fmt(100 * led.level, 0)}% interval over both (the seed is the "
            "unit that repeats); verdicts by the claims ledger's rule, where an interval inside "
            f"±{led.margin:g} dB is negligible.")


def _outcome(ci: PairedCI, margin: float, choice: str, alternative: str) -> str:
    """The ledger's rule in words for a comparison the ledger does not hold (no Holm)."""
    return {"negligible": f"negligible (inside ±{margin:g} dB)",
            "above": f"favours {choice}", "below": f"favours {alternative}",
            "unresolved": "unresolved"}[classify(ci, margin)]


def _finding(label: str, ci: PairedCI, led: Ledger, choice: str, alternative: str) -> str:
    """``label``, the difference with its interval, and the ledger's rule in words."""
    return (f"{label} {_interval(ci.diff, ci.lo, ci.hi, led.level)}, "
            f"{_outcome(ci, led.margin, choice, alternative)}")


def _shift(ci: PairedCI, margin: float) -> str:
    """The ledger's rule in words for a change of protocol (no side is anyone's choice)."""
    return {"negligible": f"negligible (inside ±{margin:g} dB)", "above": "a resolved rise",
            "below": "a resolved fall", "unresolved": "unresolved"}[classify(ci, margin)]


# --------------------------------------------------------------------------- the ledger
