"""Choosing a learning rate per arm on validation (issue 23.5): the rate with the best
validation PSNR wins, the default's point comes from the arm's own experiment, a pilot
that trained in another setting is refused, and a pilot never carries test metrics."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from irconstyle.experiments import load_spec
from irconstyle.experiments.lr_choice import choose_rates, pilot_arm, write_choices

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def rec(task, arm, lr, val, *, seed=0, overrides=(), width=16, name="exp"):
    return {"run": {"task": task, "arm": arm, "seed": seed},
            "experiment": {"name": name, "arm": {"overrides": list(overrides)}},
            "config": {"optim": {"lr": lr}, "schedule": {"eta_mins": [lr, 1e-6]},
                       "model": {"name": "m", "kwargs": {"width": width}},
                       "seed": seed, "out_dir": f"runs/{arm}"},
            "validation": {"metrics": {"ema/psnr": val, "raw/psnr": val - 1}}}


def test_the_best_validation_rate_is_chosen_and_ties_keep_the_default():
    home = [rec("derain", "constyle", 3e-4, 20.0), rec("derain", "nafnet", 3e-4, 19.0),
            rec("derain", "constyle", 3e-4, 99.0, seed=1)]   # another seed: never read
    pilot = [rec("derain", "constyle_lr1e-3", 1e-3, 20.4, overrides=["optim.lr=1e-3"]),
             rec("derain", "constyle_lr2e-3", 2e-3, 20.1, overrides=["optim.lr=2e-3"]),
             rec("derain", "nafnet_lr1e-3", 1e-3, 19.0, overrides=["optim.lr=1e-3"])]
    by_arm = {c.arm: c for c in choose_rates(pilot, home)}
    assert by_arm["constyle"].chosen == 1e-3 and by_arm["constyle"].changed
    assert by_arm["constyle"].values == {3e-4: 20.0, 1e-3: 20.4, 2e-3: 20.1}
    assert by_arm["nafnet"].chosen == 3e-4 and not by_arm["nafnet"].changed  # a tie


def test_a_pilot_in_another_setting_or_without_its_default_is_refused(tmp_path):
    home = [rec("derain", "constyle", 3e-4, 20.0)]
    wider = [rec("derain", "constyle_lr1e-3", 1e-3, 21.0, overrides=["optim.lr=1e-3"], width=32)]
    with pytest.raises(ValueError, match="model.kwargs.width"):
        choose_rates(wider, home)
    orphan = [rec("dehaze", "constyle_lr1e-3", 1e-3, 21.0, overrides=["optim.lr=1e-3"])]
    with pytest.raises(KeyError, match="no seed-0 record of arm 'constyle' on 'dehaze'"):
        choose_rates(orphan, home)
    with pytest.raises(ValueError, match="<arm>_lr<rate>"):
        pilot_arm("constyle")
    assert pilot_arm("nafnet_matched_lr2e-3") == ("nafnet_matched", "2e-3")
    out = write_choices(choose_rates([], home), tmp_path / "choice.json", sources={"pilot": []})
    assert json.loads(out.read_text())["choices"] == []


@pytest.mark.parametrize("name", ["lr_pilot", "lr_pilot_guidelines"])
def test_the_pilot_files_score_validation_only(name):
    """The committed pilot files: validation on, the test photos off, seed 0, and every
    arm named <arm>_lr<rate> with the rate it names."""
    spec = load_spec(EXPERIMENTS / f"{name}.yml")
    assert spec.score_test is False and spec.seeds == [0]
    for arm, a in spec.arms.items():
        _, rate = pilot_arm(arm)
        assert f"optim.lr={rate}" in a.overrides
    raw = yaml.safe_load((EXPERIMENTS / f"{name}.yml").read_text())
    assert any(o.startswith("val_every=") for o in raw["overrides"])


def test_the_command_reads_folders_filters_tasks_and_names_its_sources(tmp_path, monkeypatch):
    def put(folder, r):
        p = tmp_path / folder / r["run"]["task"] / r["run"]["arm"] / f"seed{r['run']['seed']}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(r))

    put("home", rec("derain", "constyle", 3e-4, 20.0))
    put("home", rec("derain", "constyle", 3e-4, 25.0, seed=1))   # not the choice's seed
    put("pilot", rec("derain", "constyle_lr1e-3", 1e-3, 20.4, overrides=["optim.lr=1e-3"]))
    put("pilot", rec("dehaze", "constyle_lr1e-3", 1e-3, 21.0, overrides=["optim.lr=1e-3"]))
    monkeypatch.chdir(tmp_path)
    from irconstyle.experiments.lr_choice import main
    # dehaze has no home run: left out by --task, refused without it
    assert main(["--pilot", "pilot", "--home", "home", "--task", "derain", "--out", "c.json"]) == 0
    data = json.loads((tmp_path / "c.json").read_text())
    assert [(c["task"], c["arm"], c["chosen"]) for c in data["choices"]] == [("derain", "constyle", 1e-3)]
    assert data["sources"] == {"pilot": ["pilot/derain/constyle_lr1e-3/seed0.json"],
                               "home": ["home/derain/constyle/seed0.json"]}
    with pytest.raises(KeyError, match="dehaze"):
        main(["--pilot", "pilot", "--home", "home", "--out", "c.json"])
