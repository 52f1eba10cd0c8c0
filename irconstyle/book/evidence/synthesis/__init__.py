"""Key-results boxes: for the intro page and the end of each science chapter, what the paper
says, what was measured, at what scale and with what confidence, one sentence a finding.

Every number in a box is formatted here from the committed evidence (the claims ledger, the
run records, the latent measures), never typed, so a box cannot drift from its records:
``python -m irconstyle.book.evidence.synthesis --write`` puts the boxes into ``book/intro.md``
(between :data:`START` and :data:`END`) and into each chapter's markdown cell tagged
:data:`TAG`, and tests/test_synthesis.py fails when the book holds anything else.

One sign convention everywhere: the paper's choice minus the alternative (a chapter that
prints "arm minus ConStyle" is turned round here), PSNR on RGB in dB of the EMA weights, the
mean over seeds and test photos with its 95% interval over both (the seed is the unit that
repeats), words by the ledger's rule (:data:`irconstyle.experiments.claims.RULE`).

The package, one idea a module: ``_common`` (the chapters, :class:`Sources`, how numbers and
findings are written), ``_ledger`` (the boxes from the claims ledger, and the ledger as a
table), ``_experiments`` (the boxes from run records), ``_latent`` (the latent-space box),
``_boxes`` (one builder per chapter) and ``_writer`` (into the book, the check, the command).
"""
from __future__ import annotations

from ._boxes import box, boxes
from ._common import (BACKBONES, CHAPTERS, END, NOTEBOOKS, START, SUMMARY_HEADINGS, TAG,
                      TRAINED_ON, Sources)
from ._ledger import ledger_frame, ledger_notes, styled
from ._writer import intro_region, main, notebook_box, stale, write, write_intro, write_notebook

__all__ = ["CHAPTERS", "NOTEBOOKS", "TAG", "START", "END", "SUMMARY_HEADINGS", "BACKBONES",
           "TRAINED_ON", "Sources", "box", "boxes", "ledger_frame", "ledger_notes", "styled",
           "intro_region", "notebook_box", "write_intro", "write_notebook", "write", "stale",
           "main"]
