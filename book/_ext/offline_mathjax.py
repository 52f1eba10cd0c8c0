"""MathJax served with the book, so that equations render offline (issue 25.5).

Sphinx loads MathJax 3 from a CDN by default: read offline, every equation stays raw TeX.
This extension points ``mathjax_path`` at a copy inside the built site's ``_static/`` and
copies there, from the ``django-static-mathjax`` package (MathJax 3's own files, in the
book extra; it needs no Django), only what the pages can load:

* ``es5/tex-mml-chtml.js``: Sphinx's default component (TeX with the AMS package that
  myst's dollarmath/amsmath need, MathML, CommonHTML output, the menu);
* ``es5/input/tex/extensions/``: what the TeX autoloader and ``\\require`` fetch
  (``\\boldsymbol``, ``\\cancel``, ``\\color``, ...);
* ``es5/output/chtml/fonts/woff-v2/``: the fonts the CommonHTML output draws with;
* ``LICENSE``: MathJax's Apache-2.0 licence, which travels with redistributed copies.

Not copied (they would add megabytes): the speech/explorer accessibility modules and the
SVG renderer, which load only when a reader turns them on in MathJax's menu. The page's
``[mathjax]`` root is its script's folder, so a copy laid out as the package is needs no
MathJax configuration. .ci/browser_test.py checks it with the network cut.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

PACKAGE = "django-static-mathjax"  # the distribution; its import package is `mathjax`
COMPONENT = "es5/tex-mml-chtml.js"
NEEDED = ("LICENSE", COMPONENT, "es5/input/tex/extensions", "es5/output/chtml/fonts/woff-v2")
# Relative to _static/ (Sphinx joins a mathjax_path without '://' to _static/).
MATHJAX_PATH = f"mathjax/{COMPONENT}"
CDN_DEFAULT = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"


def mathjax_root() -> Path:
    """The installed MathJax 3 package folder (the one holding ``es5/``)."""
    spec = importlib.util.find_spec("mathjax")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        root = Path(location) / "static" / "mathjax"
        if all((root / p).exists() for p in NEEDED):
            return root
    raise ExtensionError(
        f"offline_mathjax: MathJax's files are not installed (no {', '.join(NEEDED)} under "
        f"the `mathjax` package's static/mathjax/). The book serves MathJax itself so that "
        f"it reads offline: install the package {PACKAGE!r} (>=3.2.2.1,<4), which the "
        f"book extra lists: pip install -e '.[book]'")


def set_mathjax_path(app, config) -> None:
    # A reader offline cannot reach a CDN: any other mathjax_path would break that promise.
    if config.mathjax_path not in (CDN_DEFAULT, MATHJAX_PATH):
        logger.warning("offline_mathjax: mathjax_path %r replaced by the book's own copy %r",
                       config.mathjax_path, MATHJAX_PATH)
    config.mathjax_path = MATHJAX_PATH


def copy_mathjax(app) -> None:
    if app.builder.format != "html":
        return
    root = mathjax_root()
    # Before the pages are written, so that Sphinx adds the file's checksum (?v=...) to the
    # script's address, and the browser never keeps a stale copy after an upgrade.
    dest = Path(app.outdir) / "_static" / "mathjax"
    shutil.rmtree(dest, ignore_errors=True)  # no stale files from another MathJax version
    for rel in NEEDED:
        src = root / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel)
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    logger.info("offline_mathjax: MathJax copied into _static/mathjax (%.1f MB)", size / 1e6)


def setup(app) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.mathjax")  # defines mathjax_path
    app.connect("config-inited", set_mathjax_path)
    app.connect("builder-inited", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
