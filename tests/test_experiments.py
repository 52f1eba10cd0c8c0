"""The experiment runner (issue 14.1): spec validation, one record per run with per-image
metrics of both weights, skipping finished runs, resuming a killed run from its
checkpoint, the time budget, the command line."""
from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from irconstyle.cli import main
from irconstyle.data import build_dataset
from irconstyle.evaluation.evaluate import load_model
from irconstyle.experiments import load_records, load_spec, plan, run_experiment
from irconstyle.experiments.records import loss_curves, write_record
from irconstyle.experiments.spec import run_config, run_keys
from irconstyle.evaluation.metrics import psnr, ssim
from irconstyle.train import ConfigError, Trainer

TEST_SET = {"kind": "minibench", "kwargs": {"task": "denoise", "sigma": 25, "max_side": 48}}


def tiny_spec(**changes) -> dict:
    spec = {
        "name": "tiny",
        "base": "smoke/constyle_nafnet",
        "overrides": ["total_iters=3", "batch_size=2", "num_workers=0", "device=cpu",
                      "model.kwargs.width=8", "data.val=null", "log.every=1",
                      "data.train.kwargs={task: denoise, sigma: 25, patch_size: 32, "
                      "repeats: 1, max_side: 48}"],
        "arms": {"constyle": {"description": "ConStyle-NAFNet"},
                 "general": {"description": "ConStyle removed, topology kept",
                             "overrides": ["model.name=general_nafnet"]}},
        "seeds": [0, 1],
        "test": TEST_SET,
        "out_dir": "out",
        "save_codes": True,
    }
    spec.update(changes)
    return spec


def write_spec(folder: Path, **changes) -> Path:
    path = folder / "exp.yml"
    path.write_text(yaml.safe_dump(tiny_spec(**changes), sort_keys=False))
    return path


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    folder = tmp_path_factory.mktemp("campaign")
    path = write_spec(folder)
    result = run_experiment(path, progress=False, command="pytest campaign")
    return path, result


# ---------------------------------------------------------------------------- records
def test_every_run_writes_one_record(campaign):
    path, result = campaign
    out = path.parent / "out"
    expected = [f"default/{arm}/seed{s}" for s in (0, 1) for arm in ("constyle", "general")]
    assert result.ran == expected and not result.skipped and not result.not_started
    records = load_records(out)
    assert sorted((r["run"]["arm"], r["run"]["seed"]) for r in records) == \
        sorted((a, s) for a in ("constyle", "general") for s in (0, 1))
    for r in records:
        assert r["config"]["seed"] == r["run"]["seed"]
        assert r["config"]["model"]["name"] == \
            {"constyle": "constyle_nafnet", "general": "general_nafnet"}[r["run"]["arm"]]
        assert r["images"] == ["chelsea", "motorcycle_left"]
        for weights in ("ema", "raw"):
            for key in ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y"):
                assert len(r["metrics"][weights][key]) == 2
        assert r["loss_curves"]["step"] == [1, 2, 3]
        assert r["timing"]["steps_timed"] == 3
        prov = r["provenance"]
        assert prov["command"] == "pytest campaign" and len(prov["package_sha256"]) == 64
        assert prov["torch"] == torch.__version__ and prov["device"] == "cpu"
    # the ConStyle arm records codes, the general network has none to record
    by_arm = {r["run"]["arm"]: r for r in records}
    assert len(by_arm["constyle"]["codes"]["codes"]) == 2 and by_arm["general"]["codes"] is None
    # seeds change the run: different initialisation and data order
    s0, s1 = (next(r for r in records if r["run"] == {"task": "default", "arm": "constyle",
                                                       "seed": s}) for s in (0, 1))
    assert s0["metrics"]["raw"]["psnr_rgb"] != s1["metrics"]["raw"]["psnr_rgb"]


@pytest.mark.parametrize("weights", ["ema", "raw"])
def test_record_metrics_match_the_checkpoint(campaign, weights):
    """Independent recomputation: the run's checkpoint, a plain forward, metrics.psnr/ssim."""
    path, _ = campaign
    out = path.parent / "out"
    record = json.loads((out / "default/constyle/seed1.json").read_text())
    model, _ = load_model(weights=out / "runs/default/constyle/seed1/last.pt", variant=weights)
    data = build_dataset("minibench", split="test", **TEST_SET["kwargs"])
    for i, item in enumerate(data):
        with torch.no_grad():
            restored = model(item["lq"][None])[0].clamp(0, 1)
        assert record["metrics"][weights]["psnr_rgb"][i] == pytest.approx(
            psnr(restored, item["gt"]), abs=1e-6)
        assert record["metrics"][weights]["ssim_y"][i] == pytest.approx(
            ssim(restored, item["gt"], y_channel=True), abs=1e-6)


def test_finished_runs_are_skipped_and_a_lost_record_is_rebuilt(campaign):
    path, _ = campaign
    out = path.parent / "out"
    lost = out / "default/general/seed0.json"
    before = json.loads(lost.read_text())
    kept = {p: p.stat().st_mtime_ns for p in out.glob("default/*/seed*.json") if p != lost}
    lost.unlink()
    result = run_experiment(path, progress=False)
    assert result.ran == ["default/general/seed0"] and len(result.skipped) == 3
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    after = json.loads(lost.read_text())
    # training had finished: the checkpoint is at the last step, nothing retrains
    assert after["timing"]["resumed_from_step"] == 3 and after["timing"]["steps_timed"] == 0
    assert after["metrics"] == before["metrics"]


def test_killed_run_resumes_from_its_checkpoint(tmp_path, campaign):
    """A run stopped after 2 of 3 steps (as a kill after a checkpoint leaves it) finishes
    from step 2 and ends with the same numbers as the uninterrupted campaign."""
    path = write_spec(tmp_path, seeds=[1])
    spec = load_spec(path)
    key = run_keys(spec, only="constyle")[0]
    trainer = Trainer(run_config(spec, key))
    trainer.fit(stop_at=2)
    trainer.close()
    assert [(str(r.key), r.status, r.step) for r in plan(spec, only="constyle")] == \
        [("default/constyle/seed1", "partial", 2)]
    run_experiment(path, only=["constyle"], progress=False)
    record = json.loads((tmp_path / "out/default/constyle/seed1.json").read_text())
    reference = json.loads((campaign[0].parent / "out/default/constyle/seed1.json").read_text())
    assert record["timing"]["resumed_from_step"] == 2 and record["timing"]["steps_timed"] == 1
    assert record["metrics"] == reference["metrics"]
    assert record["loss_curves"] == reference["loss_curves"]
    assert not (tmp_path / "out/default/general").exists()  # --only kept the other arm out


def test_budget_stops_before_a_new_run(tmp_path):
    path = write_spec(tmp_path, budget_minutes=1e-9)
    with pytest.warns(UserWarning, match="over the budget"):
        result = run_experiment(path, progress=False)
    assert result.ran == [] and len(result.not_started) == 4
    assert not list((tmp_path / "out").glob("default/*/*.json"))


# ---------------------------------------------------------------------------- spec
@pytest.mark.parametrize("changes, message", [
    ({"arms": {"a": {"overides": []}}}, "arms.a.overides"),
    ({"test": None}, "no test set"),
    ({"seeds": [1, 1]}, "distinct"),
    ({"arms": {"a b": {}}}, "arm name"),
    ({"tasks": {"runs": {}}}, "runs"),
    ({"protocol": "matlab"}, "protocol"),
    ({"budget_minutes": 0}, "budget_minutes"),
    ({"colour": 1}, "unknown key 'colour'"),
])
def test_bad_spec_names_file_and_key(tmp_path, changes, message):
    path = write_spec(tmp_path, **changes)
    with pytest.raises(ConfigError, match=message) as err:
        load_spec(path)
    assert str(path) in str(err.value)


def test_bad_override_fails_before_any_training(tmp_path):
    path = write_spec(tmp_path, arms={"a": {}, "b": {"overrides": ["optim.lrr=1"]}})
    with pytest.raises(ConfigError, match="optim.lrr"):
        run_experiment(path, progress=False)
    assert not (tmp_path / "out" / "runs" / "default").exists()


def test_a_fixed_training_seed_is_refused(tmp_path):
    path = write_spec(tmp_path, overrides=[*tiny_spec()["overrides"], "data.train.kwargs.seed=4"])
    with pytest.raises(ConfigError, match="own seed"):
        plan(load_spec(path))


def test_tasks_order_and_paths(tmp_path):
    path = write_spec(tmp_path, tasks={
        "denoise25": {"description": "sigma 25"},
        "derain": {"overrides": ["data.train.kwargs.task=derain"],
                   "test": {"kind": "minibench", "kwargs": {"task": "derain"}}}})
    spec = load_spec(path)
    keys = run_keys(spec)
    assert [str(k) for k in keys[:2]] == ["denoise25/constyle/seed0", "denoise25/general/seed0"]
    assert len(keys) == 8
    derain = next(k for k in keys if k.task == "derain" and k.arm == "general")
    cfg = run_config(spec, derain)
    assert cfg.data.train.kwargs["task"] == "derain" and cfg.model.name == "general_nafnet"
    assert Path(cfg.out_dir) == tmp_path / "out" / "runs" / "derain" / "general" / f"seed{derain.seed}"
    assert spec.test_set("derain").kwargs == {"task": "derain"}
    assert spec.test_set("denoise25").kwargs == TEST_SET["kwargs"]


# ---------------------------------------------------------------------------- pieces
def test_loss_curves_subsample_evenly(tmp_path):
    path = tmp_path / "train.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "epoch", "lr", "loss", "pixel", "infonce", "seconds"])
        for s in range(1, 1001):
            w.writerow([s, 0, 1e-3, 1.0 / s, 0.5 / s, "" if s > 10 else 0.1, s / 10])
    curves = loss_curves(path, max_points=200)
    assert len(curves["step"]) == 200 and curves["step"][0] == 1 and curves["step"][-1] == 1000
    gaps = {b - a for a, b in zip(curves["step"], curves["step"][1:])}
    assert gaps <= {5, 6}
    assert curves["loss"][-1] == pytest.approx(1e-3) and curves["infonce"][-1] is None
    assert "seconds" not in curves and "epoch" not in curves


def test_write_record_is_atomic_and_json_safe(tmp_path):
    path = write_record({"run": {}, "metrics": {"x": [float("inf"), 1.5]}}, tmp_path / "a/r.json")
    assert json.loads(path.read_text())["metrics"]["x"] == ["inf", 1.5]
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_cli_dry_run_lists_runs(tmp_path, capsys):
    path = write_spec(tmp_path)
    assert main(["experiment", str(path), "--dry-run", "--only", "general"]) == 0
    out = capsys.readouterr().out
    assert "default/general/seed0" in out and "default/general/seed1" in out
    assert "constyle/seed" not in out and "todo" in out
    assert not (tmp_path / "out").exists()
    assert main(["experiment", str(path), "--only", "nope"]) == 1
    assert "unknown arm" in capsys.readouterr().err


def test_parallel_jobs_write_the_same_records(tmp_path, campaign):
    path = write_spec(tmp_path, seeds=[1])
    result = run_experiment(path, progress=False, jobs=2)
    assert sorted(result.ran) == ["default/constyle/seed1", "default/general/seed1"]
    for arm in ("constyle", "general"):
        ours = json.loads((tmp_path / f"out/default/{arm}/seed1.json").read_text())
        ref = json.loads((campaign[0].parent / f"out/default/{arm}/seed1.json").read_text())
        for weights in ("ema", "raw"):
            assert ours["metrics"][weights]["psnr_rgb"] == pytest.approx(
                ref["metrics"][weights]["psnr_rgb"], abs=1e-3)


def test_out_dir_override_writes_elsewhere_with_the_same_spec_hash(tmp_path, campaign):
    """A campaign run from a clean worktree writes outside it (``--out-dir``); the
    record's spec hash says what ran, not where it went, so it equals the file's."""
    path = write_spec(tmp_path, seeds=[1], arms={"general": tiny_spec()["arms"]["general"]})
    elsewhere = tmp_path / "elsewhere"
    assert main(["experiment", str(path), "--out-dir", str(elsewhere), "--no-progress"]) == 0
    assert not (tmp_path / "out").exists()
    ours = json.loads((elsewhere / "default/general/seed1.json").read_text())
    ref = json.loads((campaign[0].parent / "out/default/general/seed1.json").read_text())
    assert ours["experiment"]["spec_sha256"] != ""
    assert ours["metrics"]["ema"]["psnr_rgb"] == ref["metrics"]["ema"]["psnr_rgb"]
    # the recorded command is the one that reproduces the record where it is committed
    assert str(elsewhere) not in ours["provenance"]["command"]
    # seeds differ from the campaign's file, so its hash differs; the same file elsewhere agrees
    again = run_experiment(path, progress=False, out_dir=tmp_path / "third", dry_run=False)
    third = json.loads((tmp_path / "third/default/general/seed1.json").read_text())
    assert again.ran == ["default/general/seed1"]
    assert third["experiment"]["spec_sha256"] == ours["experiment"]["spec_sha256"]


def test_a_pilot_never_scores_the_test_photos(tmp_path, monkeypatch):
    """``score_test: false`` (the learning-rate pilot): the record keeps validation, and
    the test set is never even built, so a choice made from it cannot have seen it."""
    import irconstyle.experiments.runner as runner

    def no_test_set(*args, **kwargs):
        raise AssertionError("the test set was built")

    monkeypatch.setattr(runner, "_test_dataset", no_test_set)
    overrides = [o for o in tiny_spec()["overrides"] if o != "data.val=null"]
    overrides += ["data.val={kind: minibench, split: val, kwargs: {task: denoise, sigma: 25, "
                  "max_side: 48}}", "val_every=3"]
    path = write_spec(tmp_path, seeds=[0], score_test=False, save_codes=True,
                      overrides=overrides, arms={"constyle": {}})
    run_experiment(path, progress=False)
    record = json.loads((tmp_path / "out/default/constyle/seed0.json").read_text())
    assert record["metrics"] is None and record["codes"] is None and record["images"] is None
    assert record["validation"]["metrics"], "validation metrics are what a pilot chooses by"


def test_records_say_whether_the_package_matches_its_commit(tmp_path, monkeypatch):
    """``package_modified``: only the package's files count (a record written next to
    it does not); a changed package file does.  Checked on a throwaway git repository."""
    import shutil
    import subprocess

    import irconstyle.experiments.provenance as prov

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    pkg = repo / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")

    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo,
                       check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "init")
    monkeypatch.setattr(prov, "_PACKAGE", pkg)
    assert prov.package_modified() is False
    (repo / "record.json").write_text("{}")          # outside the package: not counted
    assert prov.package_modified() is False
    (pkg / "a.py").write_text("x = 2\n")
    assert prov.package_modified() is True
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "new.py").write_text("")                   # untracked inside the package: counted
    assert prov.package_modified() is True
    monkeypatch.setattr(prov, "_PACKAGE", tmp_path)   # not a git checkout (a wheel): unknown
    assert prov.package_modified() is None


def test_extra_tests_score_the_same_weights_on_more_sets(tmp_path):
    """Blind denoising's layout: one training (sigma random), scored on the task's test set
    and on each of its extra_tests; the book pairs arms on any of them."""
    from irconstyle.experiments.summary import compare_to_reference

    s50 = {"kind": "minibench", "kwargs": {**TEST_SET["kwargs"], "sigma": 50}}
    path = write_spec(tmp_path, seeds=[0], tasks={"blind": {"extra_tests": {"s50": s50}}})
    run_experiment(path, progress=False)
    records = load_records(tmp_path / "out")
    for r in records:
        extra = r["extra_metrics"]["s50"]
        assert extra["test"]["kwargs"]["sigma"] == 50 and extra["images"] == r["images"]
        # sigma 50 is harder than the primary sigma 25 for every image
        assert all(x < y for x, y in zip(extra["ema"]["psnr_rgb"], r["metrics"]["ema"]["psnr_rgb"]))
    (c,) = compare_to_reference(records, "constyle", test="s50")
    ref = next(r for r in records if r["run"]["arm"] == "constyle")
    assert c.reference_values[0].tolist() == ref["extra_metrics"]["s50"]["ema"]["psnr_rgb"]
    with pytest.raises(KeyError, match="no extra test 's15'"):
        compare_to_reference(records, "constyle", test="s15")
    bad = write_spec(tmp_path, tasks={"blind": {"extra_tests": {"s50": {"kind": "nope"}}}})
    with pytest.raises(ConfigError, match="unknown test set kind 'nope'"):
        plan(load_spec(bad))
    worse = write_spec(tmp_path, tasks={"blind": {"extra_tests": {"s50": {"kidn": "x"}}}})
    with pytest.raises(ConfigError, match="extra_tests.s50.kidn"):
        load_spec(worse)
