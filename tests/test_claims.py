"""The claims ledger (issue 14.7): every verdict in results/claims.yaml is recomputed
from its result files by the rule in its header; the rule itself on synthetic records."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from irconstyle.experiments.claims import RULE, check, load_ledger, refresh
from irconstyle.experiments.records import write_record
from irconstyle.train import ConfigError

LEDGER = Path(__file__).resolve().parents[1] / "results" / "claims.yaml"


def test_committed_ledger_agrees_with_its_records():
    assert check(LEDGER) == []
    ledger = load_ledger(LEDGER)
    assert ledger.rule.strip() == RULE.strip()
    for claim in ledger.claims:
        assert (claim.verdict == "untested") == (not claim.comparisons), claim.id


def synthetic_campaign(root: Path, effects: dict[str, float], seeds=(0, 1, 2), n_images=6) -> None:
    """Records of a baseline arm and arms whose PSNR is the baseline's + effect + noise;
    ``params`` halves with each arm."""
    rng = np.random.default_rng(0)
    base = rng.normal(28, 2, size=(len(seeds), n_images))
    for k, (arm, effect) in enumerate({"base": None, **effects}.items()):
        for i, s in enumerate(seeds):
            values = base[i] if effect is None else base[i] + effect + rng.normal(0, 0.05, n_images)
            write_record({
                "run": {"task": "denoise", "arm": arm, "seed": s},
                "images": [f"img{j}" for j in range(n_images)],
                "metrics": {"ema": {"psnr_rgb": values.tolist()}},
                "config": {"model": {"name": arm, "kwargs": {"width": 16}}, "total_iters": 600,
                           "batch_size": 8},
                "experiment": {"test": {"kind": "minibench", "kwargs": {}, "benchmark": None}},
                "params": 1000 // 2 ** k,
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
    assert verdicts == {"up": "consistent", "down": "inconsistent", "flat": "inconclusive",
                        "lower": "consistent", "mixed": "inconclusive", "any_bad": "inconsistent",
                        "params": "inconsistent", "none": "untested"}
    up = ledger.claims[0].comparisons[0].measured
    assert up["lo"] > 0 and up["n_seeds"] == 3 and up["n_images"] == 6
    assert up["recipe_fraction"] == pytest.approx(600 / 703_632, abs=1e-6)
    params = [c.measured["value"] for c in ledger.claims[6].comparisons]
    assert params == [0.5, 0.75]  # 1 - 500/1000 and 1 - 250/1000
    assert check(path) == []      # the rewritten file reads back and agrees
    # a hand edit that contradicts the records is caught
    text = path.read_text().replace("verdict: consistent", "verdict: inconclusive", 1)
    path.write_text(text)
    assert any("up" in p for p in check(path))


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
