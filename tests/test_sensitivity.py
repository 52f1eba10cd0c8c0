"""Verdicts at the release's learning rate and at each arm's chosen one (issue 23.5): the
two intervals of a gap, whether its outcome changed, the sentence generated from them, the
refusals (a run in two experiments, a chosen record at another rate), and the figures."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest

from irconstyle.experiments.pairing import check_pairable
from irconstyle.experiments.sensitivity import describe_rate_verdicts, gap_ci, rate_verdicts

matplotlib.use("Agg")
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
IMAGES = [f"img{i}" for i in range(8)]
CHOICE = {"choices": [
    {"task": "derain", "arm": "constyle", "values": {"0.0003": 19.4, "0.001": 21.2, "0.002": 20.9},
     "chosen": 0.001, "default": 0.0003},
    {"task": "derain", "arm": "nafnet", "values": {"0.0003": 18.2, "0.001": 21.0, "0.002": 21.5},
     "chosen": 0.002, "default": 0.0003}]}


def records(gap: float, *, name: str, rates=(3e-4, 3e-4), seeds=range(5), seed=0,
            arms=("constyle", "nafnet")) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for s in seeds:
        base = rng.normal(22, 1, len(IMAGES))
        values = {arms[0]: base + gap + rng.normal(0, 0.03, len(IMAGES)), arms[1]: base}
        for arm, lr in zip(arms, rates):
            out.append({"run": {"task": "derain", "arm": arm, "seed": s}, "images": IMAGES,
                        "experiment": {"name": name, "arm": {"overrides": [f"optim.lr={lr:g}"]},
                                       "test": {"kind": "medium"}, "protocol": "basicsr"},
                        "config": {"optim": {"lr": lr}, "schedule": {"eta_mins": [lr, 1e-6]},
                                   "seed": s, "out_dir": f"runs/{arm}/seed{s}"},
                        "metrics": {"ema": {"psnr_rgb": values[arm].tolist()}}})
    return out


def test_an_outcome_that_changes_is_reported_with_both_intervals():
    release = records(0.6, name="campaign")
    chosen = records(0.0, name="lr_chosen", rates=(1e-3, 2e-3), seed=1)
    (v,) = rate_verdicts([("derain", "constyle", "nafnet")], release=release, chosen=chosen,
                         choice=CHOICE)
    assert v.release_outcome == "above" and v.chosen_outcome == "negligible" and v.changed
    assert (v.rate_arm, v.rate_baseline) == (1e-3, 2e-3)
    assert v.release.diff == pytest.approx(0.6, abs=0.05) and v.chosen.n_seeds == 5
    text = describe_rate_verdicts([v], names={"constyle": "ConStyle-NAFNet"})
    assert "1 gap measured at both rates; 1 changed outcome" in text
    assert "ConStyle-NAFNet minus nafnet (derain): above 0 at 0.0003" in text  # the choice's default
    assert "negligible at the chosen rates" in text


def test_a_gap_without_chosen_records_waits_and_says_so():
    release = records(0.6, name="campaign")
    (v,) = rate_verdicts([("derain", "constyle", "nafnet")], release=release, chosen=[],
                         choice=CHOICE)
    assert v.chosen is None and v.changed is None and v.release_outcome == "above"
    text = describe_rate_verdicts([v])
    assert text.startswith("No gap has been measured at the chosen rates yet")
    assert text.endswith("Not yet measured at both rates, the campaign's records still to come: "
                         "1 gap on derain.")


def test_refusals_name_the_run():
    wrong_rate = records(0.0, name="lr_chosen", rates=(2e-3, 2e-3))
    with pytest.raises(ValueError, match="trained at 0.002, but the choice for that arm is 0.001"):
        rate_verdicts([("derain", "constyle", "nafnet")], release=[], chosen=wrong_rate, choice=CHOICE)
    twice = records(0.2, name="a") + records(0.2, name="b")
    with pytest.raises(ValueError, match=r"derain/constyle/seed0 is in two experiments \(a, b\)"):
        gap_ci(twice, task="derain", arm="constyle", baseline="nafnet")


def test_arms_from_two_experiments_pair_and_a_rate_moves_its_schedule():
    a = [r for r in records(0.4, name="one") if r["run"]["arm"] == "constyle"]
    b = [r for r in records(0.4, name="two") if r["run"]["arm"] == "nafnet"]
    ci = gap_ci(a + b, task="derain", arm="constyle", baseline="nafnet")
    assert ci is not None and ci.diff == pytest.approx(0.4, abs=0.05)
    # the scaled recipe starts its cosine at the rate: an arm's rate override explains both
    x, y = records(0.0, name="c", rates=(1e-3, 2e-3))[:2]
    check_pairable(x, y)
    y["config"]["schedule"]["eta_mins"] = [5e-4, 1e-6]
    y["experiment"]["arm"]["overrides"] = []
    x["experiment"]["arm"]["overrides"] = []
    with pytest.raises(ValueError, match="schedule.eta_mins"):
        check_pairable(x, y)


def test_the_figures_draw_what_was_measured():
    from irconstyle.book.plots import rate_pilot_figure, rate_verdict_figure

    verdicts = rate_verdicts([("derain", "constyle", "nafnet")], release=records(0.6, name="c"),
                             chosen=[], choice=CHOICE)
    fig = rate_verdict_figure(verdicts)
    assert len(fig.axes[0].lines) >= 1 and fig.get_figwidth() <= 10
    with pytest.raises(ValueError, match="no gap measured"):
        rate_verdict_figure(rate_verdicts([("derain", "constyle", "nafnet")], release=[], chosen=[],
                                          choice=CHOICE))
    fig = rate_pilot_figure(CHOICE)
    assert [ax.get_title() for ax in fig.axes] == ["derain"] and fig.get_figwidth() <= 10
    with pytest.raises(ValueError, match="holds no arm"):
        rate_pilot_figure({"choices": []})


def test_the_choice_is_described_with_its_grid_edge():
    from irconstyle.experiments.sensitivity import describe_choice

    text = describe_choice(CHOICE, names={"constyle": "ConStyle-NAFNet"})
    assert text == ("Chosen on validation, seed 0: derain: ConStyle-NAFNet 0.001; nafnet 0.002 "
                    "(the top of the grid for nafnet: a higher rate was not tried and might "
                    "do better).")
    same = {"choices": [{**c, "chosen": 0.002} for c in CHOICE["choices"]]}
    assert describe_choice(same) == ("Chosen on validation, seed 0: derain: every arm 0.002 (the top "
                                     "of the grid for every arm: a higher rate was not tried and "
                                     "might do better).")
    assert describe_choice({"choices": []}) == "The pilot has chosen no rate yet."


def test_an_arm_that_keeps_the_default_rate_pairs_its_release_runs():
    keep = {"choices": [CHOICE["choices"][0], {**CHOICE["choices"][1], "chosen": 0.0003}]}
    release = records(0.6, name="campaign")
    chosen = [r for r in records(0.2, name="lr_chosen", rates=(1e-3, 3e-4), seed=0)
              if r["run"]["arm"] == "constyle"]                  # the baseline is not re-run
    (v,) = rate_verdicts([("derain", "constyle", "nafnet")], release=release, chosen=chosen, choice=keep)
    assert v.chosen is not None and v.chosen.n_seeds == 5
    assert v.chosen.diff == pytest.approx(0.2, abs=0.05) and v.rate_baseline == 3e-4


def test_the_chosen_rate_files_follow_the_choice():
    """The lr_chosen files of a task together train every arm whose choice moved, each in
    one file only and at its chosen rate, and no arm that kept the release's (its release
    runs stand for it)."""
    from irconstyle.book import evidence
    from irconstyle.experiments import load_spec

    choice = evidence.read_json("lr_pilot/choice.json")["choices"]
    trained: dict[tuple[str, str], list[str]] = {}
    for path in sorted(EXPERIMENTS.glob("lr_chosen_*.yml")):
        spec = load_spec(path)
        (task,) = spec.tasks
        moved = {c["arm"]: c["chosen"] for c in choice
                 if c["task"] == task and c["chosen"] != c["default"]}
        assert moved, f"{path.name}: no choice for {task}"
        for arm, a in spec.arms.items():
            assert arm in moved, f"{path.name}: {arm} kept the release's rate, or has no choice"
            rates = [float(o.split("=", 1)[1]) for o in a.overrides if o.startswith("optim.lr=")]
            assert rates == [moved[arm]], (path.name, arm, a.overrides)
            trained.setdefault((task, arm), []).append(path.name)
    wanted = {(c["task"], c["arm"]) for c in choice if c["chosen"] != c["default"]}
    assert set(trained) == wanted, sorted(wanted ^ set(trained))
    assert all(len(files) == 1 for files in trained.values()), trained


def test_the_trend_table_names_the_experiment_files_that_train_it():
    """Each length of TREND_EXPERIMENTS is an experiment file that trains that many steps on
    that task, with the trend's arms and the extra test sets the chapter scores."""
    from irconstyle.experiments import load_spec
    from irconstyle.experiments.sensitivity import TREND_EXPERIMENTS, TREND_GAPS, TREND_SCORED

    arms = {a for gap in TREND_GAPS for a in gap}
    for task, lengths in TREND_EXPERIMENTS.items():
        for steps, name in lengths.items():
            spec = load_spec(EXPERIMENTS / f"{name}.yml")
            assert task in spec.tasks and arms <= set(spec.arms), name
            iters = [o for o in spec.overrides + spec.tasks[task].overrides if o.startswith("total_iters=")]
            assert int(iters[-1].split("=")[1]) == steps, name
            extra = {k for k in TREND_SCORED[task] if k is not None}
            assert extra <= set(spec.tasks[task].extra_tests or {}), name
