"""The release's recipe, and the one function that scales it to short runs.

The release trains 703,632 iterations at batch 16 with a 65,760-entry queue, momentum
and EMA decay 0.999, constant lr for 243,312 iterations then a cosine, and ConStyle's
losses for the whole run in every denoising recipe (``ConStyle_iter: 999999``) and for
250,000 iterations in deblurring, deraining and dehazing (one exception: its Restormer
deblurring YAML, which cannot build its dataset, says 999999).  Copied to a 300-step run
those numbers are meaningless: the queue would never hold one real embedding
(65,760 / 16 = 4,110 steps to fill it), and a 0.999 EMA would still be 74% initial
weights.  :func:`scale_recipe` keeps these ratios of the release:

* the task rule: denoising never freezes ConStyle; every other task freezes it after
  ``constyle_iters`` = 35.5% of the steps (250,000 / 703,632); the task comes from the
  config's ``task`` or its training data (:func:`task_of`);
* lr constant for 34.6% of the steps (243,312 / 703,632), then a cosine to the floor.

It cannot keep two others, and departs from them on purpose:

* queue refills while ConStyle trains.  The release refills its queue
  703,632 x 16 / 65,760 = 171.2 times in a denoising run and 250,000 x 16 / 65,760 =
  60.8 (~61) times before the freeze (Restormer at batch 8: 85.6 and 30.4).  At 300
  steps of batch 8 that ratio leaves a queue of 300 x 8 / 171.2 = 14 (denoise) or
  107 x 8 / 60.8 = 14 (frozen) codes: fewer negatives than two batches, the least the
  style loss reads.  The scaled queue is ``K <= B * active / 5`` (refilled at least 5
  times while ConStyle trains, ``active`` = steps before the freeze, or all steps),
  a multiple of the global batch, at least two batches, at most the release's K:
  480 (denoise) and 168 (frozen) at 300 x 8;
* momentum and EMA memory.  The release's 0.999 is a memory ``1/(1-m)`` of 1,000
  iterations, 703,632 / 1,000 = steps/704; at 300 steps that is 0.4 iterations, no
  averaging at all.  The scaled decay is ``1 - 20 / steps`` (memory steps/20, at least
  2 iterations), capped at 0.999: 0.9333 at 300 steps.

Release presets never call it: their values are written out in full and checked by
the tests.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .config import ConfigError, TrainConfig

__all__ = ["Recipe", "RELEASE", "scale_recipe", "resolve_config", "task_of", "freezes_constyle",
           "RELEASE_TOTAL_ITERS", "CONSTANT_FRACTION", "CONSTYLE_FRACTION"]

RELEASE_TOTAL_ITERS = 703_632
RELEASE_PERIODS = (243_312, 460_320)
CONSTANT_FRACTION = RELEASE_PERIODS[0] / RELEASE_TOTAL_ITERS  # 0.34579...
CONSTYLE_FRACTION = 250_000 / RELEASE_TOTAL_ITERS             # 0.35530...
RELEASE_QUEUE_SIZE = 65_760
RELEASE_MOMENTUM = 0.999
TASKS = ("denoise", "deblur", "derain", "dehaze")
# Dataset kinds that name their task (``paired`` serves deblurring and deraining alike).
_KIND_TASKS = {"denoise": "denoise", "derain": "derain", "dehaze": "dehaze"}


@dataclass(frozen=True)
class Recipe:
    """The values a recipe decides (everything else is written in the config)."""

    queue_size: int
    momentum: float
    ema_decay: float
    constyle_iters: int | None  # None = never freeze
    periods: tuple[int, ...]
    eta_mins: tuple[float, ...]
    restart_weights: tuple[float, ...]


RELEASE = Recipe(queue_size=RELEASE_QUEUE_SIZE, momentum=RELEASE_MOMENTUM, ema_decay=0.999,
                 constyle_iters=None, periods=RELEASE_PERIODS, eta_mins=(3e-4, 1e-6),
                 restart_weights=(1.0, 1.0))


def freezes_constyle(task: str) -> bool:
    """The release's task rule: ConStyle trains for the whole run in denoising and is
    frozen after 35.5% of it in deblurring, deraining and dehazing."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    return task != "denoise"


def task_of(cfg: TrainConfig) -> str | None:
    """The config's task: ``cfg.task`` if set, else what its training data names
    (a ``task`` argument, as the mini-benchmark's, or the kinds ``denoise``, ``derain``,
    ``dehaze``); None when neither says (e.g. ``kind: paired``)."""
    train = cfg.data.train
    derived = train.kwargs.get("task", _KIND_TASKS.get(train.kind))
    if cfg.task is not None and derived is not None and derived != cfg.task:
        raise ConfigError(f"task: {cfg.task} but the training data (kind {train.kind}) is "
                          f"{derived}; remove task or make them agree")
    return cfg.task if cfg.task is not None else derived


def scale_recipe(steps: int, batch_size: int, *, world_size: int = 1, freeze: bool = True,
                 constyle_iters: int | None = None, lr: float = 3e-4, lr_min: float = 1e-6,
                 refills: int = 5, memory_fraction: float = 1 / 20) -> Recipe:
    """The release's recipe for a run of ``steps`` iterations at ``batch_size`` per
    process on ``world_size`` processes (the queue receives all of them).

    ``freeze=False`` keeps ConStyle's losses for the whole run (the release's denoise
    recipes, ``ConStyle_iter: 999999``); ``constyle_iters`` replaces the 35.5% default
    switch point (the queue size follows it).
    """
    if steps < 2:
        raise ValueError(f"scale_recipe needs at least 2 steps, got {steps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    total_batch = batch_size * world_size
    if not freeze:
        constyle_iters = None
    elif constyle_iters is None:
        constyle_iters = max(1, round(CONSTYLE_FRACTION * steps))
    active = max(constyle_iters, 1) if constyle_iters is not None else steps
    # Largest multiple of the global batch that is refilled `refills` times while active
    # and is at most the release's K; at least two batches (the style loss reads two slots).
    k = min(RELEASE_QUEUE_SIZE, total_batch * active // refills) // total_batch * total_batch
    k = max(2 * total_batch, k)
    # Memory 1/(1-m) of steps/20 iterations, at least 2 (so tiny runs keep an EMA).
    decay = min(RELEASE_MOMENTUM, 1.0 - 1.0 / max(memory_fraction * steps, 2.0))
    constant = max(1, round(CONSTANT_FRACTION * steps))
    return Recipe(queue_size=k, momentum=decay, ema_decay=decay, constyle_iters=constyle_iters,
                  periods=(constant, steps - constant), eta_mins=(lr, lr_min),
                  restart_weights=(1.0, 1.0))


def resolve_config(cfg: TrainConfig, *, world_size: int = 1) -> TrainConfig:
    """Fill the config's ``None`` fields from its recipe; explicit values always win.

    Resolving a resolved config (for example a checkpoint's saved config) changes
    nothing: the only ``None`` it can keep is the release's ``constyle_iters`` (never
    freeze), which resolves to itself.
    """
    if cfg.recipe == "release":
        recipe = dataclasses.replace(RELEASE, eta_mins=(cfg.optim.lr, RELEASE.eta_mins[1]))
        constyle_iters = cfg.constyle_iters  # missing = never freeze (bug B7)
    else:
        if cfg.constyle_iters is not None:
            # An explicit value >= total_iters (e.g. the release's 999999) means "never".
            freeze = cfg.constyle_iters < cfg.total_iters
        else:
            task = task_of(cfg)
            if task is None:
                raise ConfigError(
                    f"recipe: scaled needs the task to decide when ConStyle freezes (the release "
                    f"never freezes it in denoising, after 35.5% of the run otherwise), and the "
                    f"training data (kind {cfg.data.train.kind}) does not say it: set "
                    f"task: {' | '.join(TASKS)}, or constyle_iters")
            freeze = freezes_constyle(task)
        recipe = scale_recipe(cfg.total_iters, cfg.batch_size, world_size=world_size,
                              freeze=freeze, constyle_iters=cfg.constyle_iters, lr=cfg.optim.lr)
        constyle_iters = cfg.constyle_iters if cfg.constyle_iters is not None else recipe.constyle_iters
    cs, sch, ema = cfg.constyle, cfg.schedule, cfg.ema
    periods = sch.periods if sch.periods is not None else list(recipe.periods)
    return dataclasses.replace(
        cfg,
        constyle=dataclasses.replace(
            cs, queue_size=cs.queue_size if cs.queue_size is not None else recipe.queue_size,
            momentum=cs.momentum if cs.momentum is not None else recipe.momentum),
        schedule=dataclasses.replace(
            sch, periods=periods,
            eta_mins=sch.eta_mins if sch.eta_mins is not None else list(recipe.eta_mins),
            restart_weights=(sch.restart_weights if sch.restart_weights is not None
                             else [1.0] * len(periods))),
        ema=dataclasses.replace(ema, decay=ema.decay if ema.decay is not None else recipe.ema_decay),
        constyle_iters=constyle_iters,
    )
