"""Packaging promises: installing next to Colab's CUDA torch keeps it; the book and CI
configuration say what the README says."""
from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def requirements() -> dict[str, Requirement]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {Requirement(r).name: Requirement(r) for r in meta["project"]["dependencies"]}


def test_torch_is_a_range_that_a_cuda_build_satisfies() -> None:
    """pip keeps an installed torch whose version satisfies the requirement, so a range
    with no upper bound and no pin never replaces Colab's CUDA build."""
    spec = requirements()["torch"].specifier
    assert not any(s.operator in ("==", "===", "<", "<=", "~=") for s in spec), spec
    assert Version(version("torch").split("+")[0]) in spec
    # a CUDA local version such as 2.5.1+cu121 satisfies it too
    assert spec.contains(Version("2.5.1+cu121"))


def test_no_dependency_is_pinned() -> None:
    for name, req in requirements().items():
        assert not any(s.operator in ("==", "===") for s in req.specifier), name


def test_jupyter_book_is_pinned_below_2() -> None:
    """Jupyter Book 2 drops _config.yml/_toc.yml and needs the network to build."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    jb = next(Requirement(r) for r in meta["project"]["optional-dependencies"]["book"]
              if r.startswith("jupyter-book"))
    assert Version("1.0.4") in jb.specifier and Version("2.0") not in jb.specifier


def test_book_config_and_toc_are_consistent() -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["path_to_book"] == "book"
    launch = config["launch_buttons"]  # Colab links only once a repository is configured
    assert "colab_url" not in launch or launch["colab_url"].startswith("https://colab.research.google.com")
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for f in files:
        assert any((ROOT / "book" / (f + ext)).is_file() for ext in (".md", ".ipynb")), f
    # every notebook in the book is in the table of contents (so it is built and tested)
    notebooks = {p.relative_to(ROOT / "book").with_suffix("").as_posix()
                 for p in (ROOT / "book").rglob("*.ipynb") if "_build" not in p.parts
                 and ".ipynb_checkpoints" not in p.parts}
    assert notebooks <= set(files)


def test_ci_runs_the_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ("pytest --nbval", "jupyter-book build book/"):
        assert command in readme and command in ci
