"""ConStyle's latent space: collect codes, project them to 2-D, and score how well
they separate by degradation.

UMAP (``umap-learn``) is used when installed; PCA (always available) otherwise, and
the projection says which method produced it so plots are never mislabelled.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["collect_codes", "Projection", "project_2d", "separation_scores"]


@torch.no_grad()
def collect_codes(encoder: nn.Module, images: Iterable[tuple[Tensor, str]], *,
                  device: torch.device | str = "cpu", which: Literal["code", "out1"] = "code") -> tuple[np.ndarray, list[str]]:
    """Run ConStyle's query encoder (a ``ConStyle`` or a model with ``.constyle``) in
    eval mode on ``(image CHW or BCHW, label)`` pairs; returns (N, dim) codes and labels."""
    cs = getattr(encoder, "constyle", encoder)
    if cs is None:
        raise ValueError("this model has no ConStyle module: there is no latent code to collect")
    was_training = cs.training
    cs.eval()
    codes, labels = [], []
    try:
        for img, label in images:
            x = img[None] if img.ndim == 3 else img
            enc = cs.encode(x.to(device))
            z = enc.code if which == "code" else enc.out1
            codes.append(z.float().cpu().numpy())
            labels.extend([label] * z.shape[0])
    finally:
        cs.train(was_training)
    if not codes:
        raise ValueError("no images given")
    return np.concatenate(codes), labels


@dataclass
class Projection:
    points: np.ndarray  # (N, 2)
    method: str  # "umap" or "pca"


def project_2d(codes: np.ndarray, *, method: Literal["auto", "umap", "pca"] = "auto",
               seed: int = 0, n_neighbors: int = 15) -> Projection:
    """2-D projection of the codes; ``auto`` uses UMAP when importable, else PCA."""
    x = np.asarray(codes, dtype=np.float64)
    if method in ("auto", "umap"):
        try:
            import umap  # noqa: PLC0415 - optional dependency
        except ImportError:
            if method == "umap":
                raise ImportError("method='umap' needs umap-learn: pip install umap-learn") from None
        else:
            reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(x) - 1),
                                random_state=seed, init="random")
            return Projection(reducer.fit_transform(x), "umap")
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    pts = xc @ vt[:2].T
    # Fix the sign of each axis so the projection is deterministic.
    pts *= np.sign(pts[np.abs(pts).argmax(0), [0, 1]])
    return Projection(pts, "pca")


def separation_scores(codes: np.ndarray, labels: list[str], *, k: int = 5) -> dict[str, float]:
    """Silhouette score (cosine) and leave-one-out k-NN accuracy of the labels in code space:
    how much of the degradation type the code carries."""
    x = np.asarray(codes, dtype=np.float64)
    y = np.asarray(labels)
    if len(set(labels)) < 2:
        raise ValueError("need at least two labels to score separation")
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    dist = 1.0 - xn @ xn.T
    n = len(y)
    sil = []
    for i in range(n):
        same = (y == y[i]) & (np.arange(n) != i)
        if not same.any():
            sil.append(0.0)
            continue
        a = dist[i, same].mean()
        b = min(dist[i, y == other].mean() for other in set(y) - {y[i]})
        sil.append((b - a) / max(a, b, 1e-12))
    order = np.argsort(dist + np.eye(n) * 1e9, axis=1)[:, :k]
    votes = [max(set(y[o]), key=list(y[o]).count) for o in order]
    return {"silhouette": float(np.mean(sil)), "knn_accuracy": float(np.mean(np.asarray(votes) == y))}
