"""The claims ledger (issue 14.7): every verdict in results/claims.yaml is recomputed
from its result files by the rule in its header; the rule itself on synthetic records."""
from __future__ import annotations

from pathlib import Path

import json
from importlib.resources import files

import numpy as np
import pytest
import yaml

import irconstyle.results

from irconstyle.experiments.claims import RULE, check, holm_verdicts, load_ledger, refresh
from irconstyle.experiments.records import write_record
from irconstyle.train import ConfigError

LEDGER = Path(__file__).resolve().parents[1] / "results" / "claims.yaml"


def test_committed_ledger_agrees_with_its_records():
    """Runs whatever records exist (none in a fresh clone, some mid-campaign, all at the end):
    a comparison whose records are missing must read untested with measured: null."""
    assert check(LEDGER) == []
    ledger = load_ledger(LEDGER)
    assert ledger.rule.strip() == RULE.strip()
    for claim in ledger.claims:
        if not claim.comparisons:
            assert claim.verdict == "untested", claim.id
        for comp in claim.comparisons:
            assert (comp.verdict == "untested") == (comp.measured is None), claim.id
        measured = [c for c in claim.comparisons if c.measured is not None]
        assert (claim.verdict == "untested") == (not measured), claim.id


def test_params_claim_reads_the_model_table():
    """The 85% claim: 1 - params(constyle_nafnet) / params(nafnet), read here from the
    model table's JSON directly (not through the ledger's code)."""
    claim = next(c for c in load_ledger(LEDGER).claims if c.id == "nafnet_params_85")
    (comp,) = claim.comparisons
    table = json.loads((files("irconstyle.results") / "model_table.json").read_text())
    params = {r["name"]: r["params"] for r in table["rows"]}
    assert comp.measured["value"] == pytest.approx(1 - params["constyle_nafnet"] / params["nafnet"],
                                                   abs=5e-5)
    assert comp.verdict == ("consistent" if comp.measured["value"] >= 0.85 - comp.tolerance
                            else "inconsistent")


def synthetic_campaign(root: Path, effects: dict[str, float], seeds=(0, 1, 2), n_images=6,
                       with_base: bool = True, overrides: dict[str, list[str]] | None = None,
                       config_edit=None) -> None:
    """Records of a baseline arm and arms whose PSNR is the baseline's + effect + noise;
    ``params`` halves with each arm.  The same values for the same arguments, so a
    baseline written in another folder pairs with the arms."""
    rng = np.random.default_rng(0)
    base = rng.normal(28, 2, size=(len(seeds), n_images))
    arms = {"base": None, **effects}
    for k, (arm, effect) in enumerate(arms.items()):
        for i, s in enumerate(seeds):
            values = base[i] if effect is None else base[i] + effect + rng.normal(0, 0.05, n_images)
            if arm == "base" and not with_base:
                continue
            config = {"model": {"name": "constyle_nafnet", "kwargs": {"width": 16}},
                      "total_iters": 600, "batch_size": 8, "seed": s, "out_dir": f"runs/{arm}",
                      "data": {"train": {"kind": "medium", "split": "train",
                                         "kwargs": {"task": "denoise", "patch_size": 64}}}}
            if config_edit is not None:
                config_edit(arm, config)
            write_record({
                "run": {"task": "denoise", "arm": arm, "seed": s},
                "images": [f"img{j}" for j in range(n_images)],
                "metrics": {"ema": {"psnr_rgb": values.tolist()}},
                "config": config,
                "experiment": {"name": root.name,
                               "arm": {"overrides": (overrides or {}).get(arm, [])},
                               "test": {"kind": "minibench", "kwargs": {}, "benchmark": None},
                               "protocol": "basicsr"},
                "params": 1000 // 2 ** k,
                "provenance": {"git_commit": "abc"},
            }, root / "denoise" / arm / f"seed{s}.json")


def ledger_text(claims: list[dict]) -> str:
    return yaml.safe_dump({"rule": RULE, "level": 0.95, "n_boot": 2000, "seed": 0,
                           "claims": claims}, sort_keys=False)


def comp(arm: str, **extra) -> dict:
    return {"results": "camp", "task": "denoise", "arm": arm, "baseline": "base", **extra}


def test_rule_on_synthetic_records(tmp_path):
    synthetic_campaign(tmp_path / "camp", {"better": 0.5, "worse": -0.5, "same": 0.0})
    path = tmp_path / "claims.yaml"
    path.write_text(ledger_text([
        {"id": "up", "claim": "better is better", "source": "t", "comparisons": [comp("better")]},
        {"id": "down", "claim": "worse is better", "source": "t", "comparisons": [comp("worse")]},
        {"id": "flat", "claim": "same is better", "source": "t", "comparisons": [comp("same")]},
        {"id": "lower", "claim": "worse is worse", "source": "t", "direction": "less",
         "comparisons": [comp("worse")]},
        {"id": "mixed", "claim": "both", "source": "t",
         "comparisons": [comp("better"), comp("same")]},
        {"id": "any_bad", "claim": "both", "source": "t",
         "comparisons": [comp("better"), comp("worse")]},
        {"id": "params", "claim": "half the parameters", "source": "t",
         "comparisons": [comp("better", kind="params_reduction", claimed=0.5, tolerance=0.01),
                         comp("worse", kind="params_reduction", claimed=0.9, tolerance=0.01)]},
        {"id": "none", "claim": "not tested", "source": "t"},
    ]))
    assert check(path)  # the file's verdicts are all "untested": the rule disagrees
    ledger = refresh(path)
    verdicts = {c.id: c.verdict for c in ledger.claims}
    # "same" differs from the baseline by noise of 0.05 dB only: inside the 0.1 dB margin
    assert verdicts == {"up": "consistent", "down": "inconsistent", "flat": "negligible",
                        "lower": "consistent", "mixed": "inconclusive", "any_bad": "inconsistent",
                        "params": "inconsistent", "none": "untested"}
    # the count of difference comparisons (Holm's family) and the adjusted verdicts: the
    # effects here are 10 standard errors wide, so Holm changes none of them
    assert ledger.n_comparisons == 8   # mixed and any_bad have two each
    assert {c.id: c.verdict_holm for c in ledger.claims} == verdicts
    up = ledger.claims[0].comparisons[0].measured
    assert up["lo"] > 0 and up["n_seeds"] == 3 and up["n_images"] == 6
    assert up["method"] == "random_effects" and up["df"] > 0 and up["p_value"] < 0.05
    assert up["bootstrap_interval"][0] > 0 and up["seed_t_interval"][0] > 0
    assert up["recipe_fraction"] == pytest.approx(600 / 703_632, abs=1e-6)
    params = [c.measured["value"] for c in ledger.claims[6].comparisons]
    assert params == [0.5, 0.75]  # 1 - 500/1000 and 1 - 250/1000
    assert check(path) == []      # the rewritten file reads back and agrees
    # a hand edit that contradicts the records is caught: a verdict, a Holm verdict, the count
    good = path.read_text()
    path.write_text(good.replace("verdict: consistent", "verdict: inconclusive", 1))
    assert any("up" in p for p in check(path))
    path.write_text(good.replace("verdict_holm: negligible", "verdict_holm: inconclusive", 1))
    assert any("flat" in p for p in check(path))
    path.write_text(good.replace("n_comparisons: 8", "n_comparisons: 7", 1))
    assert any("n_comparisons" in p for p in check(path))
    # without a margin, the flat arm is merely inconclusive
    path.write_text(good.replace("margin: 0.1", "margin: 0.0", 1))
    assert {c.id: c.verdict for c in refresh(path).claims}["flat"] == "inconclusive"


def test_holm_adjusted_verdicts():
    """Four comparisons that each pass alone (p < 0.05): Holm keeps the smallest
    (0.01 x 4 = 0.04) and leaves the others inconclusive (0.03 x 3 = 0.09); an
    equivalence is adjusted over the family of equivalence tests the same way."""
    def m(p, tost=0.5, diff=0.3):
        return {"p_value": p, "tost_p": tost, "diff": diff}

    family = [(m(0.01), "consistent", "greater"), (m(0.03), "consistent", "greater"),
              (m(0.04, diff=-0.3), "consistent", "less"), (m(0.045), "consistent", "greater"),
              (None, "untested", "greater"), ({"value": 0.5}, "consistent", "greater")]
    assert holm_verdicts(family, level=0.95) == [
        "consistent", "inconclusive", "inconclusive", "inconclusive", "untested", "consistent"]
    two = [(m(0.001, diff=-0.3), "inconsistent", "greater"), (m(0.3, tost=0.01), "negligible", "greater")]
    # equivalence p-values 0.5 and 0.01: the smaller is adjusted to 0.01 x 2 = 0.02 < 0.025
    assert holm_verdicts(two, level=0.95) == ["inconsistent", "negligible"]
    # a third equivalence at 0.01: 0.01 x 3 = 0.03 > 0.025, neither survives
    three = two + [(m(0.3, tost=0.01), "negligible", "greater")]
    assert holm_verdicts(three, level=0.95) == ["inconsistent", "inconclusive", "inconclusive"]


def test_ledger_errors_name_the_file(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text(ledger_text([{"id": "a", "claim": "c", "source": "s", "verdict": "maybe"}]))
    with pytest.raises(ConfigError, match="verdict 'maybe'"):
        load_ledger(path)
    path.write_text(ledger_text([{"id": "a", "claim": "c", "source": "s", "comparisons": [
        {"results": "x", "task": "t", "arm": "a", "baseline": "b", "metrc": "psnr_y"}]}]))
    with pytest.raises(ConfigError, match="metrc"):
        load_ledger(path)
    path.write_text(ledger_text([{"id": "a", "claim": "c", "source": "s"}]).replace(
        "Each comparison", "Every comparison"))
    assert "rule" in check(path)[0]


def test_missing_records_leave_comparisons_untested(tmp_path, monkeypatch):
    """No folder, no arm, no shared seed, no model table: untested with measured null,
    never an error; a refresh then reads back and agrees."""
    synthetic_campaign(tmp_path / "camp", {"better": 0.5}, seeds=(0, 1))
    synthetic_campaign(tmp_path / "late", {"better": 0.5}, seeds=(2,))
    path = tmp_path / "claims.yaml"
    path.write_text(ledger_text([
        {"id": "no_folder", "claim": "c", "source": "t",
         "comparisons": [{**comp("better"), "results": "not_run"}]},
        {"id": "no_arm", "claim": "c", "source": "t", "comparisons": [comp("missing_arm")]},
        {"id": "no_shared_seed", "claim": "c", "source": "t",
         "comparisons": [{**comp("better"), "baseline_results": "late"}]},
        {"id": "partial", "claim": "c", "source": "t",
         "comparisons": [comp("better"), comp("missing_arm")]},
        {"id": "table", "claim": "c", "source": "t", "comparisons": [
            {"results": "model_table.json", "kind": "params_table", "arm": "constyle_nafnet",
             "baseline": "nafnet", "claimed": 0.85}]},
    ]))
    monkeypatch.setattr(irconstyle.results, "load_result", lambda name: None)
    ledger = refresh(path)
    verdicts = {c.id: c.verdict for c in ledger.claims}
    assert verdicts == {"no_folder": "untested", "no_arm": "untested", "no_shared_seed": "untested",
                        "partial": "inconclusive", "table": "untested"}
    partial = ledger.claims[3].comparisons
    assert partial[0].verdict == "consistent" and partial[0].measured["n_seeds"] == 2
    assert partial[1].verdict == "untested" and partial[1].measured is None
    assert all(c.measured is None for claim in ledger.claims if claim.id != "partial"
               for c in claim.comparisons)
    assert check(path) == []


def test_baseline_in_another_folder(tmp_path):
    """Arms in one folder, the baseline in another: paired when the two trained in the same
    setting apart from the arms' overrides; otherwise a clear error naming the difference."""
    overrides = {"better": ["constyle.queue_size=64"]}

    def edit(arm, config):  # the arm's override shows in its config; a default-valued key
        if arm == "better":  # added by a later commit is accepted
            config["constyle"] = {"queue_size": 64, "negatives": "queue"}

    synthetic_campaign(tmp_path / "arms", {"better": 0.5}, with_base=False, overrides=overrides,
                       config_edit=edit)
    synthetic_campaign(tmp_path / "ref", {})
    path = tmp_path / "claims.yaml"
    path.write_text(ledger_text([{"id": "g", "claim": "c", "source": "t", "direction": "less",
                                  "comparisons": [{**comp("better"), "results": "arms",
                                                   "baseline_results": "ref"}]}]))
    ledger = refresh(path)
    m = ledger.claims[0].comparisons[0].measured
    assert ledger.claims[0].verdict == "inconsistent" and m["lo"] > 0 and m["n_seeds"] == 3
    # the same numbers as when both live in one folder
    synthetic_campaign(tmp_path / "camp", {"better": 0.5})
    one = tmp_path / "one.yaml"
    one.write_text(ledger_text([{"id": "g", "claim": "c", "source": "t",
                                 "comparisons": [comp("better")]}]))
    assert refresh(one).claims[0].comparisons[0].measured["diff"] == m["diff"]

    def unexplained(arm, config):  # a learning rate no override explains
        edit(arm, config)
        if arm == "better":
            config["optim"] = {"lr": 1e-3}

    synthetic_campaign(tmp_path / "arms", {"better": 0.5}, with_base=False, overrides=overrides,
                       config_edit=unexplained)
    with pytest.raises(ValueError, match=r"cannot be paired.*optim\.lr"):
        refresh(path)


def test_context_comparisons_are_measured_but_decide_nothing(tmp_path):
    """A comparison with role context (what the template gains without ConStyle) gets its
    measurement and verdict, but neither the claim's verdict nor Holm's family counts it."""
    synthetic_campaign(tmp_path / "camp", {"better": 0.5, "worse": -0.5})
    path = tmp_path / "claims.yaml"
    path.write_text(ledger_text([
        {"id": "up", "claim": "better is better", "source": "t",
         "comparisons": [comp("better"), comp("worse", role="context")]}]))
    ledger = refresh(path)
    (claim,) = ledger.claims
    test, context = claim.comparisons
    assert context.verdict == context.verdict_holm == "inconsistent" and context.measured["hi"] < 0
    assert claim.verdict == claim.verdict_holm == "consistent"
    assert ledger.n_comparisons == 1
    assert check(path) == []
