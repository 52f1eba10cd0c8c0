"""Losses of IRConStyle, exactly as the release computes them (``losses/basic_loss.py``).

All weights default to 1.0 as in every release YAML.  The style loss is negative and
unbounded below by design (it *maximises* the distance between the current batch's
similarity structure and the queue's); ``style_bound="log"`` offers a logarithmic ablation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .constyle import ConStyleOutput, full_precision

__all__ = ["infonce_loss", "content_loss", "style_loss", "gram", "LossWeights", "LossTerms",
           "restoration_loss"]


def infonce_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy over (positive, K negatives); the positive is column 0."""
    return F.cross_entropy(logits, labels)


def content_loss(query: Tensor, key: Tensor) -> Tensor:
    """mean((q2 - k2)^2) over B x dim: pulls the degraded code towards the clean one."""
    return F.mse_loss(query, key)


def gram(x: Tensor, n: int) -> Tensor:
    """Batch similarity matrix x x^T / n (B x B), the release's 'style' statistic."""
    return (x @ x.t()) / n


def style_loss(out1: Tensor, code: Tensor, negatives: tuple[Tensor, Tensor],
               bound: Literal["none", "log"] = "none") -> Tensor:
    """-MSE(S(out1), S(next slot)) - MSE(S(out2), S(current slot)), n = dim * B.

    The release compares the out1 Gram with the *next* queue slot and the out2 Gram
    with the slot being overwritten; both slots hold past out2 codes.
    ``bound="log"`` is an ablation: -log(1 + distance), still unbounded below but growing
    only logarithmically, with a vanishing gradient for large distances.
    """
    nxt, cur = negatives
    n = out1.shape[0] * out1.shape[1]
    d1 = F.mse_loss(gram(out1, n), gram(nxt, n))
    d2 = F.mse_loss(gram(code, n), gram(cur, n))
    if bound == "log":
        return -torch.log1p(d1) - torch.log1p(d2)
    return -d1 - d2


@dataclass
class LossWeights:
    """Weights of the four terms; the release uses 1.0 for all."""

    pixel: float = 1.0
    infonce: float = 1.0
    content: float = 1.0
    style: float = 1.0
    style_bound: Literal["none", "log"] = "none"


class LossTerms(NamedTuple):
    total: Tensor
    pixel: Tensor
    infonce: Tensor | None
    content: Tensor | None
    style: Tensor | None


def restoration_loss(output: Tensor, gt: Tensor, cs: ConStyleOutput | None,
                     weights: LossWeights | None = None, *, use_constyle: bool = True) -> LossTerms:
    """L1 plus, while ConStyle trains (``use_constyle`` and a training forward),
    InfoNCE + content + style."""
    w = weights or LossWeights()
    pixel = F.l1_loss(output, gt)
    total = w.pixel * pixel
    if not use_constyle or cs is None or cs.logits is None:
        return LossTerms(total, pixel, None, None, None)
    # In fp32 even under AMP: the style term is ~1e-6 once the queue is refilled, below
    # bf16's resolution.
    with full_precision(cs.logits.device):
        # query/key/out1: the codes as the losses see them (L2-normalised with ConStyle's
        # normalize=True, like the queue's entries), not the raw code the network consumes.
        query = cs.query if cs.query is not None else cs.code
        nce = infonce_loss(cs.logits.float(), cs.labels)
        cont = content_loss(query.float(), cs.key.float())
        negatives = (cs.negatives[0].float(), cs.negatives[1].float())
        sty = style_loss(cs.out1.float(), query.float(), negatives, bound=w.style_bound)
    total = total + w.infonce * nce + w.content * cont + w.style * sty
    return LossTerms(total, pixel, nce, cont, sty)
