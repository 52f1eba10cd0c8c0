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

__all__ = ["collect_codes", "Projection", "project_2d", "separation_scores", "silhouette",
           "knn_accuracy_by_group", "own_clean_distances"]


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
    dist = _distances(x, "cosine")
    n = len(y)
    order = np.argsort(dist + np.eye(n) * 1e9, axis=1)[:, :k]
    votes = [max(set(y[o]), key=list(y[o]).count) for o in order]
    return {"silhouette": _silhouette(dist, y), "knn_accuracy": float(np.mean(np.asarray(votes) == y))}


def _distances(x: np.ndarray, metric: Literal["euclidean", "cosine"]) -> np.ndarray:
    """All pairwise distances of the rows of ``x`` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return 1.0 - xn @ xn.T
    if metric == "euclidean":
        return np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)
    raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")


def _silhouette(dist: np.ndarray, y: np.ndarray) -> float:
    """Mean silhouette (b - a) / max(a, b) over the points; 0 for a point alone in its
    label (Rousseeuw's convention, as scikit-learn)."""
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
    return float(np.mean(sil))


def silhouette(codes: np.ndarray, labels: list[str], *,
               metric: Literal["euclidean", "cosine"] = "euclidean") -> float:
    """Mean silhouette of ``labels`` in the codes' own space (never a 2-D projection):
    near 1 when each label forms a tight, distant cluster, near 0 when labels overlap."""
    y = np.asarray(labels)
    if len(set(labels)) < 2:
        raise ValueError("need at least two labels for a silhouette")
    return _silhouette(_distances(codes, metric), y)


def knn_accuracy_by_group(codes: np.ndarray, labels: list[str], groups: list[str], *, k: int = 5,
                          metric: Literal["euclidean", "cosine"] = "euclidean") -> float:
    """k-NN accuracy of ``labels``, cross-validated leaving one group out at a time (e.g.
    one photo: its clean and degraded codes are predicted from the other photos' codes
    only, so a code cannot be classified by recognising its scene).  The vote is the most
    frequent label among the k nearest; a tie goes to the tied label met first in order
    of distance."""
    y, gr = np.asarray(labels), np.asarray(groups)
    if len(y) != len(codes) or len(gr) != len(codes):
        raise ValueError(f"{len(codes)} codes, {len(y)} labels and {len(gr)} groups differ in number")
    if len(set(groups)) < 2:
        raise ValueError("need at least two groups to leave one out")
    dist = _distances(codes, metric)
    correct = 0
    for i in range(len(y)):
        pool = np.flatnonzero(gr != gr[i])
        nearest = pool[np.argsort(dist[i, pool], kind="stable")[:k]]
        ranked = list(y[nearest])
        counts = {lab: ranked.count(lab) for lab in ranked}
        top = max(counts.values())
        vote = next(lab for lab in ranked if counts[lab] == top)
        correct += vote == y[i]
    return correct / len(y)


def own_clean_distances(codes: np.ndarray, photos: list[str], is_clean: list[bool], *,
                        metric: Literal["euclidean", "cosine"] = "euclidean") -> dict[str, np.ndarray]:
    """For each degraded code (``is_clean`` False): the distance to its own photo's clean
    code, the distance to the nearest other photo's clean code and the mean distance to
    the other photos' clean codes.  Does a degraded image stay nearer its own scene than
    any other scene?  Each photo needs exactly one clean code."""
    ph, clean = np.asarray(photos), np.asarray(is_clean, dtype=bool)
    clean_idx = {p: np.flatnonzero(clean & (ph == p)) for p in set(photos)}
    bad = sorted(p for p, idx in clean_idx.items() if len(idx) != 1)
    if bad:
        raise ValueError(f"each photo needs exactly one clean code; not so for {bad}")
    if len(clean_idx) < 2:
        raise ValueError("need at least two photos to compare with another photo's clean code")
    dist = _distances(codes, metric)
    own, nearest_other, mean_other = [], [], []
    for i in np.flatnonzero(~clean):
        others = [clean_idx[p][0] for p in clean_idx if p != ph[i]]
        own.append(dist[i, clean_idx[ph[i]][0]])
        nearest_other.append(dist[i, others].min())
        mean_other.append(dist[i, others].mean())
    return {"index": np.flatnonzero(~clean), "own": np.asarray(own),
            "nearest_other": np.asarray(nearest_other), "mean_other": np.asarray(mean_other)}
