"""The release's learning-rate schedule: a cyclic cosine with restarts.

``CosineAnnealingRestartCyclicLR(periods=[243312, 460320], eta_mins=[3e-4, 1e-6],
restart_weights=[1, 1])`` from BasicSR, as the release configures it: the first period
has ``eta_min == base lr``, so the lr is *constant* 3e-4 for 243,312 iterations, then a
cosine takes it to 1e-6 at iteration 703,632.

The schedule is a pure function of the 1-based iteration, so a resumed run gets exactly
the same learning rates; :class:`CyclicCosine` wraps it for ``LambdaLR``.
"""
from __future__ import annotations

import math
from typing import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["cyclic_cosine_lr", "CyclicCosine", "build_scheduler"]


def cyclic_cosine_lr(step: int, *, base_lr: float, periods: Sequence[int],
                     eta_mins: Sequence[float], restart_weights: Sequence[float] | None = None,
                     warmup_iters: int = 0) -> float:
    """Learning rate used by iteration ``step`` (1-based, as the release counts).

    Iteration ``t`` uses scheduler position ``e = t - 1`` (the release steps its
    scheduler only for ``t > 1``); position ``e`` belongs to the first period whose
    cumulative end is ``>= e``; inside it the lr is
    ``eta + w * (base - eta) * (1 + cos(pi * (e - start) / period)) / 2``.
    Past the last period the lr stays at the last ``eta_min``.

    ``warmup_iters > 0`` multiplies the lr by ``t / warmup_iters`` for the first
    iterations (the release's warm-up crashed, bug B14; its YAMLs disable it).
    """
    if len(periods) != len(eta_mins):
        raise ValueError(f"periods ({len(periods)}) and eta_mins ({len(eta_mins)}) differ in length")
    weights = list(restart_weights) if restart_weights is not None else [1.0] * len(periods)
    if len(weights) != len(periods):
        raise ValueError(f"restart_weights ({len(weights)}) and periods ({len(periods)}) differ in length")
    e = max(step - 1, 0)
    start = 0
    lr = float(eta_mins[-1])
    for period, eta, w in zip(periods, eta_mins, weights):
        if e <= start + period:
            lr = eta + w * 0.5 * (base_lr - eta) * (1.0 + math.cos(math.pi * (e - start) / period))
            break
        start += period
    if warmup_iters > 0 and step < warmup_iters:
        lr *= max(step, 1) / warmup_iters
    return lr


class CyclicCosine:
    """``LambdaLR`` factor for :func:`cyclic_cosine_lr`.

    A callable object (not a lambda) so ``LambdaLR.state_dict()`` stores its plain
    attributes, which load with ``torch.load(weights_only=True)``.  ``LambdaLR``
    evaluates it at ``last_epoch`` = number of completed iterations, so the factor at
    ``epoch`` is that of iteration ``epoch + 1``.
    """

    def __init__(self, *, base_lr: float, periods: Sequence[int], eta_mins: Sequence[float],
                 restart_weights: Sequence[float] | None = None, warmup_iters: int = 0) -> None:
        if base_lr <= 0:
            raise ValueError(f"base_lr must be positive, got {base_lr}")
        self.base_lr = float(base_lr)
        self.periods = [int(p) for p in periods]
        self.eta_mins = [float(x) for x in eta_mins]
        self.restart_weights = ([float(x) for x in restart_weights]
                                if restart_weights is not None else [1.0] * len(self.periods))
        self.warmup_iters = int(warmup_iters)
        self.lr(1)  # validate the lengths now rather than at the first step

    def lr(self, step: int) -> float:
        return cyclic_cosine_lr(step, base_lr=self.base_lr, periods=self.periods,
                                eta_mins=self.eta_mins, restart_weights=self.restart_weights,
                                warmup_iters=self.warmup_iters)

    def __call__(self, epoch: int) -> float:
        return self.lr(epoch + 1) / self.base_lr


def build_scheduler(optimizer: Optimizer, schedule: CyclicCosine) -> LambdaLR:
    """One shared factor for every parameter group (they all start at the same lr)."""
    return LambdaLR(optimizer, schedule)
