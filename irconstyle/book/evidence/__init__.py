"""The repository's committed evidence, read the same way in a clone and from a wheel.

The evidence is the repository's ``results/`` folder (run records, each experiment's
``summary.json``, the claims ledger ``claims.yaml``, the latent codes) and the experiment
files of ``experiments/`` that produced it.  pyproject.toml makes those two folders the
packages :data:`RESULTS_PACKAGE` and :data:`EXPERIMENTS_PACKAGE` (package-dir): an editable
install reads them in place and a wheel carries a copy, so a chapter that reads through
this module shows the same numbers on Colab as in the clone, and never guesses a path
such as ``../../results`` relative to where it runs.

Everything missing is an error naming the file (:class:`EvidenceMissing`), never a silent
"pending": a chapter that can legitimately lack something (a campaign not run yet) asks
:func:`exists` first.  ``results/pending/`` (in-progress campaign records) is not evidence:
it is not shipped and cannot be read here.

    from irconstyle import evidence
    campaign = evidence.records("cpu_campaign")        # results/cpu_campaign/<task>/<arm>/seed<k>.json
    table = evidence.summary("cpu_campaign")           # results/cpu_campaign/summary.json
    ledger = evidence.ledger()                         # results/claims.yaml, parsed
    spec = evidence.spec("cpu_campaign")               # experiments/cpu_campaign.yml, parsed
"""
from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from ...experiments.claims import Ledger
from ...experiments.claims import load_ledger as _load_ledger
from ...experiments.records import load_records, read_record
from ...experiments.spec import ExperimentSpec
from ...experiments.spec import load_spec as _load_spec

__all__ = ["RESULTS_PACKAGE", "EXPERIMENTS_PACKAGE", "NOT_EVIDENCE", "EvidenceMissing",
           "results_root", "experiments_root", "path", "exists", "label", "experiment_names",
           "portable", "records", "record", "describe", "summary", "read_json", "ledger_path", "ledger",
           "latent", "latent_codes", "spec_path", "spec", "files"]

RESULTS_PACKAGE = "irconstyle.book.evidence.results"          # the repository's results/
EXPERIMENTS_PACKAGE = "irconstyle.book.evidence.experiments"  # the repository's experiments/
# Folders of results/ that are not evidence: excluded from the wheel (pyproject.toml's
# exclude-package-data) and refused here, so a clone and a wheel expose the same files.
NOT_EVIDENCE = ("pending", "runs")


class EvidenceMissing(FileNotFoundError):
    """A file of the committed evidence is not in this installation."""


def _root(package: str, folder: str) -> Path:
    try:
        entry = resources.files(package)
    except ModuleNotFoundError:
        raise EvidenceMissing(
            f"{folder}/ is not installed with this irconstyle (no package {package}). In a clone, "
            "reinstall with `pip install -e .` (an install older than the evidence packages); "
            "a wheel built from a clone with `pip wheel --no-deps -w dist .` carries it.") from None
    if not isinstance(entry, Path):  # a zipped installation: the readers below need files
        raise EvidenceMissing(f"{folder}/ of {package} is not on the file system ({entry})")
    return entry


def results_root() -> Path:
    """This installation's copy of the repository's ``results/`` (in a clone with an
    editable install: ``results/`` itself)."""
    return _root(RESULTS_PACKAGE, "results")


def experiments_root() -> Path:
    """This installation's copy of the repository's ``experiments/`` (its ``*.yml`` files)."""
    return _root(EXPERIMENTS_PACKAGE, "experiments")


def _relative(rel: str | PurePosixPath) -> PurePosixPath:
    """``rel`` checked: relative, inside results/, not in a folder that is not evidence."""
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or "\\" in str(rel):
        raise ValueError(f"{rel!r}: expected a path relative to results/, e.g. "
                         "'cpu_campaign/summary.json'")
    hidden = [part for part in p.parts if part in NOT_EVIDENCE]
    if hidden:
        raise ValueError(f"results/{p}: results/**/{hidden[0]}/ holds no committed evidence "
                         "(in-progress or training files; not shipped with the package)")
    return p


def _existing(p: Path, shown: str) -> Path:
    if not p.exists():
        raise EvidenceMissing(f"{shown} is not in this installation ({p})")
    return p


def path(rel: str | PurePosixPath = "") -> Path:
    """The file or folder ``results/<rel>`` of this installation; :class:`EvidenceMissing`
    (naming it) when it is absent."""
    p = _relative(rel)
    return _existing(results_root().joinpath(*p.parts), f"results/{p}")


def exists(rel: str | PurePosixPath) -> bool:
    """Whether ``results/<rel>`` is here, for what may legitimately be absent (an
    experiment not run yet)."""
    return results_root().joinpath(*_relative(rel).parts).exists()


def label(p: str | Path) -> str:
    """``p`` as the repository names it (``results/...`` or ``experiments/...``): the same
    text in a clone and from a wheel, for a chapter's "source:" lines."""
    p = Path(p).resolve()
    for folder, root in (("results", results_root()), ("experiments", experiments_root())):
        root = root.resolve()
        if p == root or p.is_relative_to(root):
            return PurePosixPath(folder, *p.relative_to(root).parts).as_posix()
    raise ValueError(f"{p} is not in the evidence folders ({results_root()}, {experiments_root()})")


# An absolute path into some checkout's results/ or experiments/ (the machine that ran a
# campaign wrote its own, e.g. /work/campaign/results/cpu_campaign/runs/...).
_MACHINE_PATH = re.compile(r"(?<![\w.])/(?:[^\s'\"/]+/)*?(results|experiments)/")


def portable(text: str) -> str:
    """``text`` (a recorded command line, a weights path) with every absolute path into a
    checkout's ``results/`` or ``experiments/`` written as the repository names it: a
    record's provenance keeps the machine's paths, the book shows none of them."""
    return _MACHINE_PATH.sub(lambda m: m.group(1) + "/", text)


def experiment_names() -> list[str]:
    """The experiments with run records here (folders of ``results/`` holding
    ``<task>/<arm>/seed<k>.json``), sorted."""
    root = results_root()
    return sorted(d.name for d in root.iterdir() if d.is_dir() and d.name not in NOT_EVIDENCE
                  and any(p.parts[-3] != "runs" for p in d.glob("*/*/seed*.json")))


def _one_folder(name: str) -> str:
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"{name!r}: expected an experiment's folder name, e.g. 'cpu_campaign'")
    return name


def records(name: str) -> list[dict]:
    """The run records of experiment ``name`` (``results/<name>/<task>/<arm>/seed<k>.json``,
    :func:`irconstyle.experiments.load_records`)."""
    return load_records(path(_one_folder(name)))


def record(rel: str) -> dict:
    """One run record, e.g. ``record("cpu_campaign/denoise25/constyle/seed0.json")``."""
    return read_record(path(rel))


def describe(name: str) -> str:
    """One line saying what ``results/<name>/`` holds: records and (task, arm) pairs."""
    recs = records(name)
    pairs = {(r["run"]["task"], r["run"]["arm"]) for r in recs}
    return (f"results/{name}/: {len(recs)} run records, {len(pairs)} (task, arm) pairs with at "
            "least one seed")


def read_json(rel: str) -> Any:
    """The parsed JSON file ``results/<rel>``."""
    p = path(rel)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"results/{_relative(rel)}: not valid JSON ({exc})") from None


def summary(name: str) -> dict:
    """``results/<name>/summary.json``, written by ``irconstyle experiment <file> --summary``."""
    return read_json(f"{_one_folder(name)}/summary.json")


def ledger_path() -> Path:
    """The claims ledger, ``results/claims.yaml`` (its comparisons name folders beside it)."""
    return path("claims.yaml")


def ledger() -> Ledger:
    """The claims ledger, parsed (:func:`irconstyle.experiments.claims.load_ledger`)."""
    return _load_ledger(ledger_path())


def latent(name: str = "codes") -> dict:
    """``results/latent/<name>.json``: the latent measures and their provenance
    (``codes`` or ``guideline_arms``, written by experiments/latent_codes.sh)."""
    return read_json(f"latent/{_one_folder(name)}.json")


def latent_codes(name: str = "codes") -> dict:
    """``results/latent/<name>.npz``: the raw codes, one
    :class:`irconstyle.evaluation.degraded_codes.DegradedCodes` per encoder."""
    from ...evaluation.degraded_codes import load_codes  # numpy + the analysis module, on demand

    return load_codes(path(f"latent/{_one_folder(name)}.npz"))


def spec_path(name: str) -> Path:
    """The experiment file ``experiments/<name>.yml`` of this installation."""
    p = experiments_root() / f"{_one_folder(name)}.yml"
    return _existing(p, f"experiments/{name}.yml")


def spec(name: str) -> ExperimentSpec:
    """The experiment file ``experiments/<name>.yml``, parsed and validated
    (:func:`irconstyle.experiments.load_spec`)."""
    return _load_spec(spec_path(name))


def files() -> dict[str, Path]:
    """Every evidence file here, by the name the repository gives it (``results/...``,
    ``experiments/<name>.yml``): in a clone, what is on disk; from a wheel, what it
    carries.  The tests compare the two, byte for byte."""
    root = results_root()
    out = {f"results/{p.relative_to(root).as_posix()}": p for p in sorted(root.rglob("*"))
           if p.is_file() and not _skipped(p.relative_to(root))}
    out.update({f"experiments/{p.name}": p for p in sorted(experiments_root().glob("*.yml"))})
    return out


def _skipped(rel: PurePosixPath | Path) -> bool:
    """Not evidence: the package's own ``__init__.py`` and bytecode, and the folders of
    :data:`NOT_EVIDENCE` (pyproject.toml leaves the same out of the wheel)."""
    return rel.name == "__init__.py" or bool(set(rel.parts[:-1]) & {*NOT_EVIDENCE, "__pycache__"})
