"""irconstyle.book.evidence: the committed evidence (results/, experiments/*.yml) is found the
same way in the clone and from a wheel installed elsewhere, and equals the repository's
files byte for byte, so the book cannot show one thing in the clone and another on Colab."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from setuptools import find_namespace_packages

from irconstyle.book import evidence
from irconstyle.experiments import load_records, load_spec
from irconstyle.experiments.claims import load_ledger
from notebook_runs import build_wheel

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {evidence.RESULTS_PACKAGE: "results", evidence.EXPERIMENTS_PACKAGE: "experiments"}
PREFIX = {"irconstyle/book/evidence/results/": "results/",
          "irconstyle/book/evidence/experiments/": "experiments/"}


def git_listed() -> list[str]:
    """The clone's files as a fresh clone plus uncommitted work has them."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [rel for rel in out.split("\0") if rel and (ROOT / rel).is_file()]


def expected_evidence() -> set[str]:
    """What irconstyle.book.evidence should expose: every listed file of results/ except the
    folders that are not evidence and the package's own __init__.py; experiments/*.yml."""
    names = set()
    for rel in git_listed():
        p = PurePosixPath(rel)
        if p.parts[0] == "results" and not evidence._skipped(PurePosixPath(*p.parts[1:])):
            names.add(rel)
        elif p.parts[0] == "experiments" and len(p.parts) == 2 and p.suffix == ".yml":
            names.add(rel)
    return names


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# ------------------------------------------------------------------ packaging declarations
def test_packages_are_every_package_plus_the_evidence_folders() -> None:
    """pyproject.toml lists its packages (the mapped folders cannot be found by a search):
    the list must stay every package under irconstyle/ plus results/ and experiments/."""
    tool = pyproject()["tool"]["setuptools"]
    found = set(find_namespace_packages(where=str(ROOT), include=["irconstyle", "irconstyle.*"]))
    assert set(tool["packages"]) == found | set(MAPPED), set(tool["packages"]) ^ (found | set(MAPPED))
    assert tool["package-dir"] == MAPPED


def test_the_wheel_leaves_out_what_the_loader_refuses() -> None:
    excluded = set(pyproject()["tool"]["setuptools"]["exclude-package-data"][evidence.RESULTS_PACKAGE])
    assert excluded == {p for d in evidence.NOT_EVIDENCE for p in (f"{d}/*", f"*/{d}/*")}


# ------------------------------------------------------------------ the clone
def test_in_the_clone_the_evidence_is_the_repository_folders() -> None:
    assert evidence.results_root().resolve() == (ROOT / "results").resolve()
    assert evidence.experiments_root().resolve() == (ROOT / "experiments").resolve()


def test_files_are_the_repository_files_byte_for_byte() -> None:
    exposed = evidence.files()
    assert set(exposed) == expected_evidence(), set(exposed) ^ expected_evidence()
    for name, path in exposed.items():
        assert path.read_bytes() == (ROOT / name).read_bytes(), name


def test_loader_reads_the_clone_records() -> None:
    results = ROOT / "results"
    names = evidence.experiment_names()
    assert "cpu_campaign" in names and "pending" not in names
    for name in names:
        assert evidence.records(name) == load_records(results / name), name
    campaign = evidence.records("cpu_campaign")
    pairs = {(r["run"]["task"], r["run"]["arm"]) for r in campaign}
    assert evidence.describe("cpu_campaign") == (
        f"results/cpu_campaign/: {len(campaign)} run records, {len(pairs)} (task, arm) pairs "
        "with at least one seed")
    assert evidence.summary("cpu_campaign") == json.loads(
        (results / "cpu_campaign" / "summary.json").read_text())
    rec = "cpu_campaign/denoise25/constyle/seed0.json"
    assert evidence.record(rec) == json.loads((results / rec).read_text())
    assert evidence.ledger() == load_ledger(results / "claims.yaml")
    assert evidence.label(evidence.ledger_path()) == "results/claims.yaml"
    assert evidence.latent("codes") == json.loads((results / "latent" / "codes.json").read_text())
    codes = evidence.latent_codes("codes")
    assert set(codes) == set(evidence.latent("codes")["encoders"])
    assert evidence.spec("cpu_campaign") == load_spec(ROOT / "experiments" / "cpu_campaign.yml")
    assert evidence.label(evidence.spec_path("dehaze")) == "experiments/dehaze.yml"
    assert evidence.label(evidence.path("latent")) == "results/latent"


def test_missing_evidence_is_an_error_naming_the_file() -> None:
    assert not evidence.exists("no_such_experiment")
    with pytest.raises(evidence.EvidenceMissing, match=r"results/no_such_experiment "):
        evidence.records("no_such_experiment")
    with pytest.raises(FileNotFoundError, match=r"results/no_such_experiment/summary\.json"):
        evidence.summary("no_such_experiment")
    with pytest.raises(evidence.EvidenceMissing, match=r"results/latent/nothing\.json"):
        evidence.latent("nothing")
    with pytest.raises(evidence.EvidenceMissing, match=r"experiments/nothing\.yml"):
        evidence.spec("nothing")


def test_what_is_not_evidence_is_refused() -> None:
    """pending/ (in-progress campaign records) is in some clones and in no wheel: refused
    everywhere, so the two read the same; paths leave results/ nowhere."""
    for rel in ("pending", "pending/x/denoise25/constyle/seed0.json", "cpu_campaign/runs/x"):
        with pytest.raises(ValueError, match="no committed evidence"):
            evidence.path(rel)
    for rel in ("/etc/passwd", "../README.md", "cpu_campaign/../../README.md"):
        with pytest.raises(ValueError, match="relative to results/"):
            evidence.path(rel)
    with pytest.raises(ValueError, match="folder name"):
        evidence.records("cpu_campaign/denoise25")
    with pytest.raises(ValueError, match="not in the evidence folders"):
        evidence.label(ROOT / "README.md")


def test_an_install_without_the_evidence_packages_says_how_to_fix_it(monkeypatch) -> None:
    monkeypatch.setattr(evidence, "RESULTS_PACKAGE", "irconstyle.book.evidence.no_such_package")
    with pytest.raises(evidence.EvidenceMissing, match=r"pip install -e \."):
        evidence.records("cpu_campaign")


# ------------------------------------------------------------------ a wheel, outside the clone
@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the clone's files (tracked and not ignored), built in a copy so that the
    build leaves nothing in the clone (notebook_runs.build_wheel, as the wheel check). The copy
    also holds an in-progress record and a training folder, which the wheel must leave out."""
    stray = ("results/pending/demo/denoise25/constyle/seed0.json",
             "results/cpu_campaign/runs/denoise25/constyle/seed0/train.json")
    return build_wheel(tmp_path_factory.mktemp("evidence-wheel"), extra=dict.fromkeys(stray, "{}\n"))


def wheel_evidence(wheel: Path) -> dict[str, bytes]:
    """The wheel's evidence files, by the repository's names."""
    out = {}
    with zipfile.ZipFile(wheel) as z:
        for member in z.namelist():
            for prefix, folder in PREFIX.items():
                if member.startswith(prefix) and not member.endswith("/__init__.py"):
                    out[folder + member[len(prefix):]] = z.read(member)
    return out


def test_the_wheel_carries_the_repository_evidence_byte_for_byte(wheel: Path) -> None:
    carried = wheel_evidence(wheel)
    assert set(carried) == expected_evidence(), set(carried) ^ expected_evidence()
    for name, data in carried.items():
        assert data == (ROOT / name).read_bytes(), name
    with zipfile.ZipFile(wheel) as z:
        assert not [m for m in z.namelist() if "/pending/" in m or "/runs/" in m]


def test_the_wheel_reads_the_same_evidence_outside_the_clone(wheel: Path, tmp_path: Path) -> None:
    """Installed from the wheel and run from a folder outside the clone (the Colab path),
    the loader finds the installed copy and reads what it reads in the clone."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, capture_output=True, timeout=600)
    run = tmp_path / "run"
    run.mkdir()
    script = (
        "import json; from irconstyle import evidence as e\n"
        "print(json.dumps({'root': str(e.results_root()), 'spec_out': str(e.spec('cpu_campaign').out_path),"
        " 'names': e.experiment_names(), 'describe': [e.describe(n) for n in e.experiment_names()],"
        " 'summary': e.summary('cpu_campaign'), 'claims': [c.id for c in e.ledger().claims],"
        " 'label': e.label(e.ledger_path()), 'files': sorted(e.files())}))\n")
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], cwd=run, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)
    installed = site / "irconstyle" / "book" / "evidence"
    assert Path(got["root"]) == installed / "results"
    # the experiment files keep their place beside results/: out_dir ../results/<name> holds
    assert Path(got["spec_out"]).resolve() == installed / "results" / "cpu_campaign"
    assert got["names"] == evidence.experiment_names()
    assert got["describe"] == [evidence.describe(n) for n in evidence.experiment_names()]
    assert got["summary"] == evidence.summary("cpu_campaign")
    assert got["claims"] == [c.id for c in evidence.ledger().claims]
    assert got["label"] == "results/claims.yaml"
    assert got["files"] == sorted(evidence.files())


def test_portable_drops_the_machine_part_of_evidence_paths() -> None:
    cmd = ("irconstyle latent --weights /work/campaign/results/cpu_campaign/runs/d/a/seed0/last.pt"
           " --out /home/x/y/results/latent/codes.npz --config /srv/c/experiments/e.yml")
    assert evidence.portable(cmd) == (
        "irconstyle latent --weights results/cpu_campaign/runs/d/a/seed0/last.pt"
        " --out results/latent/codes.npz --config experiments/e.yml")
    # other absolute paths and already-relative ones are left alone
    for kept in ("/usr/lib/python3/x.py", "results/claims.yaml", "my_results/x", "a.results/b"):
        assert evidence.portable(kept) == kept
