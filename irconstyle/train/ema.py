"""Exponential moving average of a model, the weights the release validates and ships.

The release averaged parameters only (bug B8): the EMA copy's ConStyle BatchNorm kept
its initial statistics (mean 0, var 1), so every validation and the shipped
``params_ema`` ran ConStyle with statistics it never saw in training.  ``mode="full"``
averages every floating-point buffer too and copies integer buffers
(``num_batches_tracked``); ConStyle's queue and pointer are skipped: they are training
memory, not weights, and an average of queue columns means nothing.
``mode="release"`` keeps the release's behaviour for fidelity experiments.
"""
from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn

from ..method.constyle import ConStyle

__all__ = ["ModelEMA"]


def _memory_buffer_names(model: nn.Module) -> set[str]:
    """Names of ConStyle queue/pointer buffers anywhere in ``model``."""
    names = set()
    for prefix, module in model.named_modules():
        if isinstance(module, ConStyle):
            dot = f"{prefix}." if prefix else ""
            names |= {f"{dot}queue", f"{dot}queue_ptr"}
    return names


class ModelEMA:
    """A frozen eval-mode copy of ``model`` updated by ``update(model)``.

    ``warmup=True`` uses ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so a
    short run's average is not dominated by the random initial weights.
    """

    def __init__(self, model: nn.Module, *, decay: float, mode: Literal["full", "release"] = "full",
                 warmup: bool = False) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        if mode not in ("full", "release"):
            raise ValueError(f"EMA mode must be 'full' or 'release', got {mode!r}")
        self.decay, self.mode, self.warmup = decay, mode, warmup
        self.num_updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._skip = _memory_buffer_names(model)

    def current_decay(self) -> float:
        if self.warmup:
            return min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        params = dict(model.named_parameters())
        for name, e in self.module.named_parameters():
            e.mul_(d).add_(params[name].detach(), alpha=1.0 - d)
        if self.mode == "full":
            buffers = dict(model.named_buffers())
            for name, e in self.module.named_buffers():
                if name in self._skip:
                    continue
                src = buffers[name].detach()
                if e.is_floating_point():
                    e.mul_(d).add_(src, alpha=1.0 - d)
                else:
                    e.copy_(src)
        self.num_updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.num_updates = int(state["num_updates"])
