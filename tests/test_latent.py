"""Latent-space analysis: codes, projection, separation scores."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from irconstyle import ConStyle
from irconstyle.evaluation.latent import collect_codes, project_2d, separation_scores


def test_collect_codes_restores_mode_and_shapes() -> None:
    cs = ConStyle(queue_size=8).train()
    imgs = [(torch.rand(3, 16, 16), "a"), (torch.rand(2, 3, 16, 16), "b")]
    codes, labels = collect_codes(cs, imgs)
    assert codes.shape == (3, 128) and labels == ["a", "b", "b"]
    assert cs.training  # mode restored


def test_separation_scores_tell_separable_from_mixed() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 16)) * 5
    x = np.concatenate([centres[0] + rng.normal(size=(20, 16)), centres[1] + rng.normal(size=(20, 16))])
    labels = ["noise"] * 20 + ["blur"] * 20
    good = separation_scores(x, labels)
    mixed = separation_scores(x, list(rng.permutation(labels)))
    assert good["knn_accuracy"] > 0.9 and good["silhouette"] > 0.3
    assert mixed["knn_accuracy"] < 0.8 and mixed["silhouette"] < good["silhouette"]
    with pytest.raises(ValueError):
        separation_scores(x, ["a"] * 40)


def test_pca_projection_is_deterministic_and_2d() -> None:
    x = np.random.default_rng(1).normal(size=(30, 8))
    p1, p2 = project_2d(x, method="pca"), project_2d(x, method="pca")
    assert p1.method == "pca" and p1.points.shape == (30, 2)
    assert np.array_equal(p1.points, p2.points)
