"""Each script once per page.

sphinx-thebe 0.3.1 (and sphinx-togglebutton) add inline scripts while the HTML builder
already exists, so Sphinx 7 lists them twice on every page, once with the file name
``None`` and once with ``""``. The second copy of sphinx-thebe's script re-declares a
``const``: every reader's browser logs a SyntaxError (found by .ci/browser_test.py).
Dropping exact repeats (same file or inline body, priority and attributes) changes no
page's behaviour.
"""
from __future__ import annotations

from typing import Any


def _key(script: Any) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    return (getattr(script, "filename", script) or "", getattr(script, "priority", 500),
            tuple(sorted((k, str(v)) for k, v in attributes.items())))


def drop_duplicate_scripts(app, pagename: str, templatename: str, context: dict[str, Any],
                           doctree) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app) -> dict[str, Any]:
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
