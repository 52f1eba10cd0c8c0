"""Old module names (the flat layout of 0.1.0, before issue 26), importable for one release.

``import irconstyle.evaluate`` still works and gives the very module now at
``irconstyle.evaluation.evaluate`` (so ``mock.patch("irconstyle.evaluate.x")`` patches the
real one), with a DeprecationWarning naming the new place.  Remove in the release after
the next.  The README's "What moved" lists the same table.  ``python -m`` needs the new
name (``python -m irconstyle.book.evidence.synthesis``).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys
import types
import warnings

# old -> new; a package entry covers its submodules (irconstyle.evidence.synthesis, ...)
MOVED = {
    "irconstyle.devices": "irconstyle.runtime.devices",
    "irconstyle.profiles": "irconstyle.runtime.profiles",
    "irconstyle.constyle": "irconstyle.method.constyle",
    "irconstyle.losses": "irconstyle.method.losses",
    "irconstyle.zoo": "irconstyle.nets.zoo",
    "irconstyle.summary": "irconstyle.nets.model_table",  # + environment, provenance: below
    "irconstyle.weights": "irconstyle.checkpoints.weights",
    "irconstyle.release": "irconstyle.checkpoints.release",
    "irconstyle.metrics": "irconstyle.evaluation.metrics",
    "irconstyle.ecc": "irconstyle.evaluation.ecc",
    "irconstyle.protocols": "irconstyle.evaluation.protocols",
    "irconstyle.tiling": "irconstyle.evaluation.tiling",
    "irconstyle.evaluate": "irconstyle.evaluation.evaluate",
    "irconstyle.analysis": "irconstyle.evaluation",
    "irconstyle.stats": "irconstyle.experiments.stats",
    "irconstyle.report": "irconstyle.experiments.report",
    "irconstyle.plots": "irconstyle.book.plots",
    "irconstyle.model_figure": "irconstyle.book.model_figure",
    "irconstyle.speed": "irconstyle.book.speed",
    "irconstyle.evidence": "irconstyle.book.evidence",
}
# a name that left its module: (old module) -> {name: new module}
SPLIT = {"irconstyle.summary": {"environment": "irconstyle.runtime.environment",
                                "provenance": "irconstyle.runtime.environment"}}


def new_name(old: str) -> str | None:
    for prefix in sorted(MOVED, key=len, reverse=True):
        if old == prefix or old.startswith(prefix + "."):
            return MOVED[prefix] + old[len(prefix):]
    return None


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        new = new_name(fullname)
        if new is None:
            return None
        spec = importlib.util.find_spec(new)  # None: no such new module either
        if spec is None:
            return None
        return importlib.util.spec_from_loader(
            fullname, self, is_package=spec.submodule_search_locations is not None)

    def create_module(self, spec):
        new = new_name(spec.name)
        _warn(f"{spec.name} moved to {new}; the old name is deprecated and goes in the release "
              "after the next (README: What moved)")
        module = importlib.import_module(new)
        if spec.name in SPLIT:  # a thin module: the old one's names, from where they are now
            shim = types.ModuleType(spec.name, module.__doc__)
            moved = SPLIT[spec.name]

            def __getattr__(name, _module=module, _moved=moved):
                source = importlib.import_module(_moved[name]) if name in _moved else _module
                return getattr(source, name)

            shim.__getattr__ = __getattr__
            return shim
        # the import system sets the returned module's __spec__ to this alias spec: keep the
        # real one to put back (importlib.resources, reload and pickle read __spec__)
        spec.loader_state = module.__spec__
        return module  # the same object: patches and isinstance see one module

    def exec_module(self, module):
        # already executed under its new name; give it back its own spec
        real = getattr(module.__spec__, "loader_state", None)
        if real is not None:
            module.__spec__ = real


def _warn(message: str) -> None:
    """A DeprecationWarning attributed to the code that imports the old name (not to the
    import machinery), so the default filters show it in ``__main__`` and notebooks."""
    here = os.path.normcase(__file__)
    frame = sys._getframe(1)
    def machinery(f) -> bool:
        return (f.f_code.co_filename.startswith("<frozen importlib")
                or f.f_globals.get("__name__", "").partition(".")[0] == "importlib"
                or os.path.normcase(f.f_code.co_filename) == here)

    while frame is not None and machinery(frame):
        frame = frame.f_back
    if frame is None:
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return
    g = frame.f_globals
    registry = g.setdefault("__warningregistry__", {})
    warnings.warn_explicit(message, DeprecationWarning, frame.f_code.co_filename, frame.f_lineno,
                           module=g.get("__name__"), registry=registry)


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.insert(0, _Alias())  # before the path finders: no second copy of a module
