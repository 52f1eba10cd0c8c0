"""One builder per chapter, and the two entry points that call them."""
from __future__ import annotations

from ._common import CHAPTERS, Sources
from ._experiments import _ablations, _evaluation, _guidelines, _training_small_scale
from ._latent import _latent_space
from ._ledger import _intro, _results
from ._sensitivity import _sensitivity


_BUILDERS = {"intro": _intro, "guidelines": _guidelines, "latent_space": _latent_space,
             "ablations": _ablations, "results": _results,
             "training_small_scale": _training_small_scale, "evaluation": _evaluation,
             "sensitivity": _sensitivity}


def box(chapter: str, sources: Sources | None = None) -> str:
    """The Markdown of ``chapter``'s key-results box (a MyST admonition), from the records."""
    if chapter not in _BUILDERS:
        raise ValueError(f"{chapter!r} is not one of {', '.join(CHAPTERS)}")
    return _BUILDERS[chapter](sources or Sources())


def boxes(sources: Sources | None = None) -> dict[str, str]:
    """Every chapter's box, reading the evidence once."""
    src = sources or Sources()
    return {key: box(key, src) for key in CHAPTERS}
