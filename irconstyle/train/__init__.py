"""Training: config, the release's recipe and schedule, EMA, checkpoints, DDP, the training loop.
May import: evaluation, checkpoints, nets, method, data, runtime.

    from irconstyle.train import load_config, run
    result = run(load_config("smoke/constyle_nafnet", ["total_iters=100"]))
"""
from .checkpoint import load_checkpoint, load_weights, save_checkpoint, save_weights
from .config import (ConfigError, TrainConfig, config_from_dict, config_to_yaml, list_presets,
                     load_config)
from .ema import ModelEMA
from .recipe import RELEASE, Recipe, resolve_config, scale_recipe
from .schedule import CyclicCosine, cyclic_cosine_lr
from .trainer import Trainer, run

__all__ = [
    "TrainConfig", "ConfigError", "load_config", "config_from_dict", "config_to_yaml",
    "list_presets", "Recipe", "RELEASE", "scale_recipe", "resolve_config",
    "cyclic_cosine_lr", "CyclicCosine", "ModelEMA",
    "save_checkpoint", "load_checkpoint", "save_weights", "load_weights",
    "Trainer", "run",
]
