"""Latent measures in the codes' own space, and the degraded-codes collection, checked
against scikit-learn and hand-computed cases."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from irconstyle.evaluation.degraded_codes import (STRENGTHS, degrade, encode_degraded,
                                                encoder_from_weights, load_codes, measures,
                                                save_codes, untrained_encoder)
from irconstyle.evaluation.latent import knn_accuracy_by_group, own_clean_distances, silhouette


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_silhouette_equals_scikit_learn(metric: str) -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (7, 5)), rng.normal(2, 1, (6, 5)), rng.normal(-1, 2, (5, 5))])
    y = ["a"] * 7 + ["b"] * 6 + ["c"] * 5
    assert silhouette(x, y, metric=metric) == pytest.approx(sk.silhouette_score(x, y, metric=metric),
                                                            rel=1e-9)


def test_silhouette_by_hand_on_four_points() -> None:
    # a = {0, 1}, b = {10, 12} on a line: s(0) = (11 - 1) / 11, s(1) = (10 - 1) / 10,
    # s(10) = (9.5 - 2) / 9.5, s(12) = (11.5 - 2) / 11.5
    x = np.array([[0.0], [1.0], [10.0], [12.0]])
    expected = np.mean([10 / 11, 9 / 10, 7.5 / 9.5, 9.5 / 11.5])
    assert silhouette(x, ["a", "a", "b", "b"]) == pytest.approx(expected)


def test_knn_leaves_the_whole_photo_out() -> None:
    # Photo p's two codes sit on top of each other, so leave-one-out k-NN would classify
    # each by its twin; leaving the photo out, the nearest code is the other photo's.
    x = np.array([[0.0], [0.0], [5.0], [5.1], [5.2]])
    labels = ["noise", "noise", "rain", "rain", "noise"]
    groups = ["p", "p", "q", "q", "q"]
    # k = 1: 0 -> nearest outside p is 5.0 (rain, wrong); 1 same; 5.0 -> 0 (noise, wrong);
    # 5.1 -> 0 (wrong); 5.2 (noise) -> 0 (noise, right): 1 of 5
    assert knn_accuracy_by_group(x, labels, groups, k=1) == pytest.approx(1 / 5)


def test_own_clean_distances_by_hand() -> None:
    x = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [4.0, 0.0], [3.0, 4.0]])
    photos = ["p", "p", "q", "q", "r"]
    clean = [True, False, True, False, True]
    d = own_clean_distances(x, photos, clean)
    assert d["index"].tolist() == [1, 3]
    assert d["own"].tolist() == pytest.approx([1.0, 6.0])
    # code 1 (p): q's clean at 9, r's at sqrt(4 + 16); code 3 (q): p's at 4, r's at sqrt(1 + 16)
    assert d["nearest_other"].tolist() == pytest.approx([math.sqrt(20), 4.0])
    assert d["mean_other"].tolist() == pytest.approx([(9 + math.sqrt(20)) / 2, (4 + math.sqrt(17)) / 2])
    with pytest.raises(ValueError, match="exactly one clean code"):
        own_clean_distances(x, photos, [False, False, True, False, True])


def _photos(n: int = 2, size: int = 32) -> tuple[list[torch.Tensor], list[str]]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, size, size, generator=g) for _ in range(n)], [f"photo{i}" for i in range(n)]


def test_degradations_are_seeded_by_name_and_grow_with_strength() -> None:
    clean = _photos(1, 48)[0][0]
    a = degrade("noise", clean, 25, name="x")
    assert torch.equal(a, degrade("noise", clean, 25, name="x"))
    assert not torch.equal(a, degrade("noise", clean, 25, name="y"))
    for kind, values in STRENGTHS.items():
        errors = [float((degrade(kind, clean, v, name="x") - clean).abs().mean()) for v in values]
        assert errors == sorted(errors) and errors[0] > 0, (kind, errors)
    # the same noise field at every sigma: only the scale changes
    torch.testing.assert_close((degrade("noise", clean, 50, name="x") - clean) / 50,
                               (degrade("noise", clean, 15, name="x") - clean) / 15)


def test_encode_save_and_measure(tmp_path) -> None:
    encoder = untrained_encoder(0)
    codes = encode_degraded(encoder, photos=_photos())
    per_photo = 1 + sum(len(v) for v in STRENGTHS.values())
    assert codes.codes.shape == (2 * per_photo, 128)
    assert codes.degradation[:2] == ["clean", "noise"] and math.isnan(codes.strength[0])
    # the first code is the untrained encoder's of the clean photo, computed independently
    with torch.no_grad():
        ref = untrained_encoder(0).encode(_photos()[0][0][None]).code[0].numpy()
    np.testing.assert_allclose(codes.codes[0], ref, rtol=1e-5, atol=1e-6)
    path = save_codes(tmp_path / "codes.npz", {"untrained": codes}, provenance={"command": "test"})
    back = load_codes(path)["untrained"]
    np.testing.assert_array_equal(back.codes, codes.codes)
    assert back.degradation == codes.degradation
    report = json.loads(path.with_suffix(".json").read_text())
    raw = report["encoders"]["untrained"]["raw"]
    assert raw["n_codes"] == 2 * per_photo and raw["space"].startswith("128-d raw")
    assert raw["silhouette_degradation"] == pytest.approx(silhouette(codes.codes, codes.degradation))
    assert raw["own_clean"]["all"]["n"] == 2 * (per_photo - 1)
    assert report["encoders"]["untrained"]["normalized"]["space"].startswith("128-d L2-normalised")


def test_encoder_from_a_training_checkpoint(tmp_path) -> None:
    from irconstyle.train import Trainer
    from test_trainer import SynthPairs, tiny_config

    tr = Trainer(tiny_config(tmp_path, total_iters=2, ckpt_every=2), train_set=SynthPairs())
    tr.fit()
    for variant, model in (("raw", tr.model), ("ema", tr.ema.module)):
        enc = encoder_from_weights(tmp_path / "last.pt", variant)
        x = torch.rand(1, 3, 16, 16)
        model.constyle.eval()
        with torch.no_grad():
            torch.testing.assert_close(enc.encode(x).code, model.constyle.encode(x).code)
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(ValueError, match="no ConStyle encoder"):
        encoder_from_weights(plain)


def test_encoder_of_reads_the_names_irconstyle_latent_gives() -> None:
    from irconstyle.evaluation.degraded_codes import encoder_of
    assert encoder_of("untrained_seed2") == ("untrained", 2)
    assert encoder_of("/work/x/results/cpu_campaign/runs/denoise25/constyle/seed1/last.pt") == ("constyle", 1)
    assert encoder_of("runs/denoise25/code_only/seed0/last.safetensors") == ("code_only", 0)
    with pytest.raises(ValueError, match="neither"):
        encoder_of("last.pt")


def test_measure_rows_one_row_per_encoder_and_space() -> None:
    from irconstyle.evaluation.degraded_codes import measure_rows
    m = {"silhouette_degradation": -0.1, "knn_accuracy_degradation_leave_photo_out": 0.4,
         "own_clean": {"all": {"own_nearer_than_every_other": 0.9}}}
    report = {"encoders": {"untrained_seed0": {"raw": m, "normalized": {**m, "silhouette_degradation": 0.2}},
                           "a/constyle/seed3/last.pt": {"raw": m, "normalized": m}}}
    rows = measure_rows(report)
    assert [(r["arm"], r["seed"], r["codes"]) for r in rows] == [
        ("untrained", 0, "raw"), ("untrained", 0, "normalised"),
        ("constyle", 3, "raw"), ("constyle", 3, "normalised")]
    assert rows[1]["silhouette"] == 0.2 and rows[0]["kNN accuracy"] == 0.4
    assert rows[0]["own clean nearest"] == 0.9 and "mean |z|" not in rows[0]
