"""The package's layers (issue 26): each folder of ``irconstyle/`` is one layer, declared
once below (lowest first) with the folders it may import; a module importing anything
else, an import cycle between modules, a folder without a layer, or a folder whose
``__init__`` docstring does not say what it may import fails here.

Reads the source with ``ast`` (nothing is imported, no dependency): absolute and relative
imports, at module level and inside functions, ``from irconstyle import x`` resolved to the
submodule ``x`` when there is one.  The top (``__init__``, ``__main__``, ``cli``, ``_moved``)
may import everything; nothing imports the top except ``__main__``.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "irconstyle"
TOP = ""  # the package's own modules: __init__, __main__, cli, _moved

# Lowest first.  (folder, the folders it may import besides itself.)
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("runtime", ()),
    ("configs", ()),   # package data: the training presets (YAML)
    ("results", ()),   # package data: the benchmarks' result files (JSON) and their reader
    ("method", ("runtime",)),
    ("data", ("runtime",)),
    ("nets", ("method", "runtime")),
    ("checkpoints", ("method", "runtime")),
    ("evaluation", ("checkpoints", "nets", "method", "data", "runtime")),
    ("train", ("evaluation", "checkpoints", "nets", "method", "data", "runtime")),
    ("experiments", ("train", "evaluation", "checkpoints", "nets", "method", "data", "runtime",
                     "results")),
    ("book", ("experiments", "train", "evaluation", "checkpoints", "nets", "method", "data",
              "runtime", "results")),
]
RANK = {folder: i for i, (folder, _) in enumerate(LAYERS)}
MAY = {folder: set(allowed) for folder, allowed in LAYERS}


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = ["irconstyle", *p.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def folder_of(module: str) -> str:
    """``irconstyle.nets.unet`` -> ``nets``; the package's own modules -> TOP."""
    parts = module.split(".")
    if len(parts) < 2:
        return TOP
    if (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return TOP


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported irconstyle module, line, inside a function) for every import of ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    found: list[tuple[str, int, bool]] = []

    def nearest(name: str) -> str:
        while name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                      ast.Lambda))
            if isinstance(child, ast.Import):
                for a in child.names:
                    if a.name == "irconstyle" or a.name.startswith("irconstyle."):
                        found.append((nearest(a.name), child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".") if is_pkg else module.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    base = ".".join(base + (child.module.split(".") if child.module else []))
                else:
                    base = child.module or ""
                if base == "irconstyle" or base.startswith("irconstyle."):
                    for a in child.names:
                        full = f"{base}.{a.name}"
                        found.append((full if full in MODULES else nearest(base), child.lineno,
                                      in_function))
            visit(child, inner)

    visit(tree, False)
    return [(t, line, fn) for t, line, fn in found if t != module]


GRAPH = {m: imports(m) for m in MODULES}


def test_every_folder_has_a_layer() -> None:
    folders = {folder_of(m) for m in MODULES} - {TOP}
    assert not folders - set(RANK), (
        f"folders without a layer: {sorted(folders - set(RANK))}; declare them in LAYERS "
        "(tests/test_layers.py), lowest first, with what they may import")


def test_layers_only_look_down() -> None:
    folders = [folder for folder, _ in LAYERS]
    assert len(folders) == len(set(folders)), "LAYERS: a folder is declared twice"
    for folder, allowed in LAYERS:
        above = [a for a in allowed if RANK[a] >= RANK[folder]]
        assert not above, f"LAYERS: {folder} may import {above}, which are not below it"


def test_no_module_imports_a_layer_it_may_not() -> None:
    bad = []
    for module, found in GRAPH.items():
        src = folder_of(module)
        for target, line, in_function in found:
            dst = folder_of(target)
            if src == TOP:
                continue  # the top may import everything
            if dst == src:
                continue
            if dst == TOP or dst not in MAY.get(src, set()):
                where = "inside a function" if in_function else "at module level"
                up = ("a layer above it" if dst == TOP or RANK.get(dst, 99) > RANK.get(src, -1)
                      else "a layer it may not")
                bad.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} ({src}) imports "
                           f"{target} ({dst or 'the top'}), {up}, {where}")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def _cycles() -> list[list[str]]:
    edges = {m: {t for t, _, _ in found if t in MODULES} for m, found in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def test_no_import_cycle() -> None:
    cycles = _cycles()
    detail = []
    for comp in cycles:
        for m in comp:
            for t, line, fn in sorted(set(GRAPH[m])):
                if t in comp:
                    detail.append(f"  {m}:{line} -> {t}{' (inside a function)' if fn else ''}")
    assert not cycles, "import cycles:\n" + "\n".join(detail)


def test_the_top_holds_only_the_entry_points() -> None:
    """Code lives in a folder (a layer); the top holds the public names, the CLI and the
    old names' aliases, so that the layout reads in one look."""
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == {"__init__", "__main__", "cli", "_moved"}, (
        f"modules at the top of irconstyle/: {sorted(top - {'__init__', '__main__', 'cli', '_moved'})}"
        "; put them in the folder of their layer")


@pytest.mark.parametrize("folder", [f for f, _ in LAYERS if (PACKAGE / f / "__init__.py").is_file()])
def test_folder_docstring_says_what_it_holds_and_may_import(folder: str) -> None:
    """Two lines: what the folder holds, then ``May import: a, b.`` (or ``nothing``)."""
    init = PACKAGE / folder / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    assert doc, f"irconstyle/{folder}/__init__.py has no docstring"
    lines = doc.strip().splitlines()
    said = next((ln for ln in lines[:2] if ln.startswith("May import:")), None)
    assert said is not None, (f"irconstyle/{folder}/__init__.py: the docstring's second line "
                              f"should be 'May import: ...' (got {lines[:2]})")
    names = set(re.findall(r"[a-z_]+", said.split(":", 1)[1])) - {"nothing", "and"}
    assert names == MAY[folder], (f"irconstyle/{folder}/__init__.py says it may import "
                                  f"{sorted(names)}; LAYERS says {sorted(MAY[folder])}")
