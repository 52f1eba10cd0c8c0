"""The generated summary of an experiment (issue 14.5): every arm against the reference,
from whatever records exist, the reference possibly another experiment's."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from irconstyle.cli import main
from irconstyle.experiments.records import write_record
from irconstyle.experiments.summary import (compare_to_reference, describe_difference,
                                            experiment_summary)
from irconstyle.experiments.stats import paired_bootstrap_ci, random_effects_ci

N_IMAGES = 5


def spec_file(folder: Path, name: str, arms: list[str], out_dir: str) -> Path:
    path = folder / f"{name}.yml"
    arm_lines = "\n".join(f"  {a}: {{description: {a}}}" for a in arms)
    path.write_text(f"name: {name}\nbase: smoke/constyle_nafnet\narms:\n{arm_lines}\n"
                    f"seeds: [0, 1, 2]\nout_dir: {out_dir}\ntasks: {{denoise25: {{}}}}\n"
                    "test: {kind: medium, kwargs: {task: denoise, sigma: 25}}\n")
    return path


def record(out: Path, arm: str, seed: int, psnr: np.ndarray, *, raw_shift: float = 0.0,
           overrides: list[str] = (), lr: float = 3e-4, name: str = "exp") -> dict:
    r = {"run": {"task": "denoise25", "arm": arm, "seed": seed},
         "images": [f"img{i}" for i in range(N_IMAGES)],
         "metrics": {"ema": {"psnr_rgb": psnr.tolist()},
                     "raw": {"psnr_rgb": (psnr + raw_shift).tolist()}},
         "config": {"model": {"name": "constyle_nafnet", "kwargs": {"width": 16}},
                    "total_iters": 600, "batch_size": 8, "seed": seed, "optim": {"lr": lr},
                    "out_dir": f"runs/{arm}",
                    "data": {"train": {"kind": "medium", "split": "train",
                                       "kwargs": {"task": "denoise", "patch_size": 64}}}},
         "experiment": {"name": name, "arm": {"overrides": list(overrides)},
                        "test": {"kind": "medium", "kwargs": {"task": "denoise", "sigma": 25}},
                        "protocol": "basicsr"}}
    write_record(r, out / "denoise25" / arm / f"seed{seed}.json")
    return r


@pytest.fixture
def campaign(tmp_path):
    """Reference ``ref`` at seeds 0-2, arm ``up`` (+0.4 dB and noise) at seeds 0 and 1 only
    (a campaign still running), arm ``late`` with no record yet."""
    rng = np.random.default_rng(1)
    values = {}
    for s in range(3):
        base = rng.normal(28, 1.5, N_IMAGES)
        values[("ref", s)] = base
        record(tmp_path / "camp", "ref", s, base, raw_shift=0.1)
        if s < 2:
            values[("up", s)] = base + 0.4 + rng.normal(0, 0.05, N_IMAGES)
            record(tmp_path / "camp", "up", s, values[("up", s)], raw_shift=-0.2)
    path = spec_file(tmp_path, "exp", ["ref", "up", "late"], "camp")
    return path, values


def test_summary_pairs_the_seeds_both_arms_have(campaign):
    path, values = campaign
    summary = experiment_summary(path, n_boot=2000)
    assert summary["reference"]["arm"] == "ref"          # the file's first arm
    assert summary["runs"] == {"planned": 9, "finished": 5}
    rows = {(r["arm"], r["weights"]): r for r in summary["tasks"]["denoise25"]["rows"]}
    assert set(rows) == {("up", "ema"), ("up", "raw")}   # "late" has no record: no row
    up = rows[("up", "ema")]
    a = np.array([values[("up", s)] for s in (0, 1)])
    b = np.array([values[("ref", s)] for s in (0, 1)])
    assert up["seeds"] == [0, 1] and up["n_seeds"] == 2 and up["n_images"] == N_IMAGES
    assert up["diff"] == pytest.approx((a - b).mean(), abs=1e-4)
    assert up["mean_reference"] == pytest.approx(b.mean(), abs=1e-4)  # over the paired seeds
    ci = random_effects_ci(a, b)                          # the default interval
    assert up["method"] == "random_effects" and up["df"] == pytest.approx(round(ci.df, 2))
    assert (up["lo"], up["hi"]) == (pytest.approx(ci.lo, abs=1e-4), pytest.approx(ci.hi, abs=1e-4))
    assert up["lo"] > 0
    boot = experiment_summary(path, method="bootstrap", n_boot=2000)  # kept, on request
    bci = paired_bootstrap_ci(a, b, n_boot=2000, seed=0)
    brow = next(r for r in boot["tasks"]["denoise25"]["rows"] if r["weights"] == "ema")
    assert (brow["lo"], brow["hi"]) == (pytest.approx(bci.lo, abs=1e-4), pytest.approx(bci.hi, abs=1e-4))
    # raw weights: the raw values were shifted by -0.2 (arm) and +0.1 (reference)
    assert rows[("up", "raw")]["diff"] == pytest.approx((a - b).mean() - 0.3, abs=1e-4)
    assert "600 steps (0.085% of the release's 703,632)" in summary["tasks"]["denoise25"]["scale"]


def test_cli_writes_markdown_and_json(campaign):
    path, _ = campaign
    assert main(["experiment", str(path), "--summary"]) == 0
    out = path.parent / "camp"
    data = json.loads((out / "summary.json").read_text())
    md = (out / "summary.md").read_text()
    up = next(r for r in data["tasks"]["denoise25"]["rows"] if r["weights"] == "ema")
    assert f"| up | ema | {up['mean_arm']:.2f} |" in md
    assert f"[{up['lo']:+.2f}, {up['hi']:+.2f}] | 2 (0, 1) | {N_IMAGES} |" in md
    assert "5 of 9 runs finished" in md


def test_reference_from_another_experiment(campaign, tmp_path):
    """The guidelines layout: arms here, the reference in another experiment's folder,
    paired only when the two trained in the same setting apart from the arms' overrides."""
    _, values = campaign
    for s in (0, 1):
        record(tmp_path / "other", "queue64", s, values[("up", s)],
               overrides=["constyle.queue_size=64"], name="other")
    other = spec_file(tmp_path, "other", ["queue64"], "other")
    with pytest.raises(ValueError, match="not an arm of this experiment"):
        experiment_summary(other, reference="ref")
    summary = experiment_summary(other, reference="ref", reference_results=tmp_path / "camp",
                                 n_boot=500)
    row = next(r for r in summary["tasks"]["denoise25"]["rows"] if r["weights"] == "ema")
    a = np.array([values[("up", s)] for s in (0, 1)])
    b = np.array([values[("ref", s)] for s in (0, 1)])
    assert row["diff"] == pytest.approx((a - b).mean(), abs=1e-4) and row["n_seeds"] == 2
    # a setting no override explains: refused, naming the key
    record(tmp_path / "other", "queue64", 0, values[("up", 0)], lr=1e-3,
           overrides=["constyle.queue_size=64"], name="other")
    with pytest.raises(ValueError, match=r"cannot be paired.*optim\.lr"):
        experiment_summary(other, reference="ref", reference_results=tmp_path / "camp")


def test_no_reference_records_yet(tmp_path):
    rng = np.random.default_rng(0)
    record(tmp_path / "camp", "up", 0, rng.normal(28, 1, N_IMAGES))
    (c,) = compare_to_reference([json.loads(p.read_text()) for p in
                                 (tmp_path / "camp").rglob("seed*.json")],
                                "ref")
    assert c.ci is None and c.seeds == () and c.diffs.shape == (0, 0)


@pytest.mark.parametrize("effect, noise, word", [
    (0.5, 0.02, "higher"), (-0.5, 0.02, "lower"), (0.0, 0.02, "negligible"),
    (0.0, 0.5, "unresolved")])
def test_sentence_follows_the_interval(effect, noise, word):
    """The words are the ledger's rule applied to the interval shown (the margin first)."""
    rng = np.random.default_rng(3)
    b = rng.normal(28, 1, (3, 8))
    a = b + effect + rng.normal(0, noise, (3, 8))
    ci = random_effects_ci(a, b)
    text = describe_difference(ci, arm="x", reference="y")
    assert word in text and f"[{ci.lo:+.2f}, {ci.hi:+.2f}] dB" in text and "3 seeds x 8 images" in text
    assert ("within ±0.1 dB" in text) == ci.inside(0.1)
    wide = describe_difference(ci, arm="x", reference="y", margin=10.0)
    assert "negligible" in wide and "within ±10 dB" in wide
    one = describe_difference(random_effects_ci(a[:1], b[:1]), arm="x", reference="y")
    assert "1 seed x 8 images" in one and "training randomness" in one
    assert "nothing to conclude" in describe_difference(None, arm="x", reference="y")


def reference_and_ablated(out: Path, *, shift: float, noise: float, seed: int) -> list[dict]:
    """Records of a reference ``constyle`` and an ``ablated`` arm ``shift`` dB off it (plus
    per-image noise), seeds 0-2."""
    rng = np.random.default_rng(seed)
    recs = []
    for s in range(3):
        base = rng.normal(25, 1.0, N_IMAGES)
        recs.append(record(out, "constyle", s, base))
        recs.append(record(out, "ablated", s, base + shift + rng.normal(0, noise, N_IMAGES)))
    return recs


def test_reference_first_reverses_the_difference_and_nothing_else(tmp_path) -> None:
    """The book's convention (the paper's choice minus the alternative) is the same
    comparison read the other way: every number changes sign, the interval mirrors."""
    recs = reference_and_ablated(tmp_path, shift=-0.4, noise=0.3, seed=3)
    (fwd,) = compare_to_reference(recs, "constyle", arms=["ablated"])
    (rev,) = compare_to_reference(recs, "constyle", arms=["ablated"], reference_first=True)
    assert rev.arm == fwd.arm == "ablated" and rev.reference_first and not fwd.reference_first
    np.testing.assert_allclose(rev.diffs, -fwd.diffs)
    assert rev.ci.diff == pytest.approx(-fwd.ci.diff)
    assert (rev.ci.lo, rev.ci.hi) == pytest.approx((-fwd.ci.hi, -fwd.ci.lo))
    assert (rev.ci.mean_a, rev.ci.mean_b) == pytest.approx((fwd.ci.mean_b, fwd.ci.mean_a))
    assert rev.ci.p_value == pytest.approx(fwd.ci.p_value)


def test_comparison_table_and_conclusions_follow_the_direction(tmp_path) -> None:
    from irconstyle.experiments.summary import comparison_table, conclusions
    recs = reference_and_ablated(tmp_path, shift=-1.0, noise=0.05, seed=4)
    (rev,) = compare_to_reference(recs, "constyle", arms=["ablated"], reference_first=True)
    md = comparison_table([rev], caption="Ablation.", names={"constyle": "ConStyle"}).to_markdown()
    assert "Difference: ConStyle - arm" in md and f"{rev.ci.diff:+.2f}" in md
    assert rev.ci.diff > 0 and f"| {rev.ci.mean_a:.2f} | {rev.ci.mean_b:.2f} |" in md
    text = conclusions([rev], names={"constyle": "ConStyle"})
    assert text.startswith("[denoise25] ConStyle scores higher than ablated")
    (fwd,) = compare_to_reference(recs, "constyle", arms=["ablated"])
    assert conclusions([fwd]).startswith("[denoise25] ablated scores lower than constyle")
