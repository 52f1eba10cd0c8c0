"""The drift measure between a committed record and its rerun at another commit."""
from __future__ import annotations

import copy
import json

import pytest

from irconstyle.experiments.drift import main, record_drift


def _record(commit: str = "a" * 40) -> dict:
    return {"run": {"task": "derain", "arm": "constyle", "seed": 0},
            "experiment": {"name": "cpu_campaign"},
            "config": {"optim": {"lr": 3e-4}, "seed": 0, "out_dir": "runs/derain/constyle/seed0"},
            "images": ["astronaut", "sail"],
            "metrics": {"ema": {"psnr_rgb": [20.5, 24.25], "mean": {"psnr_rgb": 22.375}},
                        "raw": {"psnr_rgb": [20.0, 24.0], "mean": {"psnr_rgb": 22.0}}},
            "validation": {"metrics": {"ema/psnr": 19.37}},
            "loss_curves": {"step": [10, 20], "pixel": [0.30, 0.25], "infonce": ["nan", 5.1]},
            "provenance": {"git_commit": commit}}


def test_a_bitwise_rerun_is_identical():
    old, new = _record(), _record("b" * 40)
    new["config"]["out_dir"] = "elsewhere"  # bookkeeping, not numerics
    drift = record_drift(old, new)
    assert drift["identical"] is True
    assert drift["test"]["ema/psnr_rgb"]["max_abs_per_image"] == 0.0
    assert (drift["old_commit"], drift["new_commit"]) == ("a" * 40, "b" * 40)


def test_differences_are_measured_per_image_and_in_the_mean():
    old, new = _record(), _record()
    new["metrics"]["ema"]["psnr_rgb"] = [20.5, 24.45]
    new["validation"]["metrics"]["ema/psnr"] = 19.41
    new["loss_curves"]["pixel"] = [0.30, 0.26]
    drift = record_drift(old, new)
    assert drift["identical"] is False
    assert drift["test"]["ema/psnr_rgb"]["max_abs_per_image"] == pytest.approx(0.2)
    assert drift["test"]["ema/psnr_rgb"]["mean_diff"] == pytest.approx(0.1)
    assert drift["test"]["raw/psnr_rgb"]["max_abs_per_image"] == 0.0
    assert drift["validation"]["ema/psnr"] == pytest.approx(0.04)
    assert drift["loss_curves_max_abs"]["pixel"] == pytest.approx(0.01)


def test_a_different_configuration_is_not_drift():
    old, new = _record(), _record()
    new["config"]["optim"]["lr"] = 1e-3
    with pytest.raises(ValueError, match=r"optim\.lr"):
        record_drift(old, new)
    other = _record()
    other["run"]["seed"] = 1
    with pytest.raises(ValueError, match="seed"):
        record_drift(old, other)


def test_cli_writes_the_measure(tmp_path, capsys):
    old, new = _record(), copy.deepcopy(_record())
    new["metrics"]["ema"]["psnr_rgb"][0] += 0.5
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    out = tmp_path / "drift" / "d.json"
    assert main([str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["test"]["ema/psnr_rgb"]["max_abs_per_image"] == pytest.approx(0.5)
    assert "drift" in capsys.readouterr().out
