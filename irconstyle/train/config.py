"""Training configuration: one dataclass tree whose YAML keys equal its field names.

``load_config("release/constyle_nafnet_denoise", ["optim.lr=1e-4"])`` reads a preset
shipped in ``irconstyle/configs/`` (or any YAML file path) and applies ``a.b.c=value``
overrides (values are YAML-parsed).  Unknown keys are errors that name the key and the
file, so a typo never silently falls back to a default.

Fields left ``None`` (queue size, momentum, EMA decay, LR periods, ``constyle_iters``)
are filled by the recipe named in ``recipe`` when the trainer starts
(:func:`irconstyle.train.recipe.resolve_config`): ``release`` gives the authors'
values, ``scaled`` derives them from ``total_iters`` and ``batch_size``.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Sequence, Union

import yaml

from ..method.losses import LossWeights

__all__ = [
    "ModelConfig", "ConStyleConfig", "HoldOutConfig", "DataConfig", "DataSplits", "OptimConfig",
    "ScheduleConfig", "EMAConfig", "LogConfig", "TrainConfig", "ConfigError",
    "load_config", "config_from_dict", "config_to_dict", "config_to_yaml",
    "config_from_yaml_text", "list_presets",
]


class ConfigError(ValueError):
    """A configuration problem; the message names the file (or override) and the key."""


@dataclass
class ModelConfig:
    """``irconstyle.build_model(name, **kwargs)``."""

    name: str = "constyle_nafnet"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConStyleConfig:
    """The queue and momentum encoder; ``None`` = from the recipe (release: 65760, 0.999).
    Ignored for models without ConStyle.

    Two switches test the paper's guidelines (defaults: the release):

    * ``negatives``: ``queue`` (the release, guideline 1's "additional data structure")
      or ``batch`` (in-batch negatives, no queue: :class:`irconstyle.method.constyle.ConStyle`);
    * ``pretext``: ``restoration`` (the release, guideline 3: the momentum encoder sees
      the clean image, the positive of the degraded query) or ``instance`` (instance
      discrimination as DASR / AirNet: the momentum encoder sees another view of the same
      degraded patch; the view is made by the trainer, :meth:`Trainer.key_input`).
    """

    queue_size: int | None = None
    momentum: float | None = None
    negatives: Literal["queue", "batch"] = "queue"
    pretext: Literal["restoration", "instance"] = "restoration"


@dataclass
class HoldOutConfig:
    """A validation split carved out of a training folder
    (:class:`irconstyle.data.holdout.HeldOut`): the sources' group keys (``group``'s
    first regex group on each name; default the whole name) are sorted and every
    ``every``-th is held out: the train split skips them, the val split reads only them.
    Give the train and val entries the same folders and the same ``hold_out``."""

    every: int = 100
    group: str = "(.*)"


@dataclass
class DataConfig:
    """``irconstyle.data.build_dataset(kind, split=split, **kwargs)``, optionally
    restricted by ``hold_out``."""

    kind: str = "minibench"
    split: str = "train"
    kwargs: dict[str, Any] = field(default_factory=dict)
    hold_out: HoldOutConfig | None = None


@dataclass
class DataSplits:
    """Training patches, and full images for validation (``val: null`` = no validation).
    Model selection uses ``val``, never a test set (bug B18): the release presets hold
    their validation images out of the training folder (``hold_out``)."""

    train: DataConfig = field(default_factory=DataConfig)
    val: DataConfig | None = field(default_factory=lambda: DataConfig(split="val"))


@dataclass
class OptimConfig:
    """AdamW, as every release YAML: lr 3e-4, weight decay 1e-4, betas (0.9, 0.999)."""

    lr: float = 3e-4
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    # AdamW's fused kernel: None = where the device has one (CUDA; CPU from torch 2.4).
    # Same update rule as the loop, different rounding order (within the golden tests'
    # tolerance).
    fused: bool | None = None


@dataclass
class ScheduleConfig:
    """Cyclic cosine (see ``schedule.py``); ``None`` = from the recipe."""

    periods: list[int] | None = None
    eta_mins: list[float] | None = None
    restart_weights: list[float] | None = None
    warmup_iters: int = 0


@dataclass
class EMAConfig:
    """Exponential moving average of the weights, validated next to the raw weights.

    ``mode: full`` averages every floating-point parameter *and buffer* (BatchNorm
    statistics included) except ConStyle's queue and pointer, after the optimizer step
    (fixes B8, B9).  ``mode: release`` reproduces the release: parameters only, buffers
    left at their initial values, updated before the optimizer step.
    ``decay: 0`` disables the EMA; ``warmup`` uses ``min(decay, (1+n)/(10+n))``.
    """

    decay: float | None = None
    mode: Literal["full", "release"] = "full"
    warmup: bool = False


@dataclass
class LogConfig:
    """CSV logs in ``out_dir`` (train.csv every ``every`` steps, val.csv), tqdm progress,
    optional TensorBoard (needs the ``tensorboard`` package)."""

    every: int = 100
    csv: bool = True
    tensorboard: bool = False
    progress: bool = True


@dataclass
class TrainConfig:
    """Everything one training run needs.  ``batch_size`` is per process (per GPU)."""

    recipe: Literal["release", "scaled"] = "release"
    model: ModelConfig = field(default_factory=ModelConfig)
    constyle: ConStyleConfig = field(default_factory=ConStyleConfig)
    data: DataSplits = field(default_factory=DataSplits)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    # What is restored; None = what data.train names (minibench's task; the kinds denoise,
    # derain, dehaze).  The scaled recipe reads it for the release's freeze rule.
    task: Literal["denoise", "deblur", "derain", "dehaze"] | None = None
    # Last iteration trained with the ConStyle losses; after it ConStyle is frozen.
    # None = from the recipe (release: never; scaled: never for denoising, else 35.5%
    # of total_iters, the release's task rule).
    constyle_iters: int | None = None
    # After constyle_iters: "full" (our fix) puts the whole encoder in eval mode, so its
    # BatchNorm1d heads use their running statistics; "release" keeps those BatchNorm1d
    # in train mode (batch statistics, running statistics still updated), as the release
    # did (B5).  Everything else is frozen either way.  See Trainer._freeze_constyle.
    freeze_mode: Literal["full", "release"] = "full"
    loss: LossWeights = field(default_factory=LossWeights)
    ema: EMAConfig = field(default_factory=EMAConfig)
    amp: bool = True            # CUDA only: bf16 where supported, else fp16 + GradScaler
    channels_last: bool = True  # where it pays: CUDA and CPU (devices.channels_last_pays)
    compile: bool = False
    grad_clip: float = 0.0      # max global grad norm; 0 = off (the release does not clip)
    batch_size: int = 16
    num_workers: int = 8
    seed: int = 10
    total_iters: int = 703632
    val_every: int = 5000
    ckpt_every: int = 5000
    best_metric: Literal["psnr", "psnr_y"] = "psnr"  # on EMA weights when the EMA is on
    out_dir: str = "runs/default"
    resume: str = "auto"        # "auto" (out_dir/last.pt if present), "never", or a path
    device: str = "auto"        # auto = cuda > mps > cpu
    find_unused_parameters: bool = False  # DDP, for models with parameters that get no grad
    log: LogConfig = field(default_factory=LogConfig)


# ---------------------------------------------------------------------------- dict <-> dataclass
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert only the lossless cases
    YAML gets wrong (``3e-4`` parses as a string in YAML 1.1)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: key '{key}' must not be null")
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: key '{key}' must be one of "
                              f"{list(typing.get_args(tp))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(tp, type) and isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key '{key}' must be a mapping, got {value!r}")
        return _from_dict(tp, value, where, prefix=f"{key}.")
    if origin in (list, Sequence, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: key '{key}' must be a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key '{key}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: key '{key}' must be true or false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: key '{key}' must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: key '{key}' must be a number, got {value!r}") from None
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: key '{key}' must be an integer, got {value!r}")
        try:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and number.is_integer():
                number = int(number)
        except ValueError:
            number = value
        if not isinstance(number, int):
            raise ConfigError(f"{where}: key '{key}' must be an integer, got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: key '{key}' must be a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: key '{key}' has an unsupported type {_type_name(tp)}")


def _from_dict(cls: type, data: dict, where: str, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            raise ConfigError(f"{where}: unknown key '{prefix}{key}'{hint} "
                              f"(valid keys here: {', '.join(names)})")
        kwargs[key] = _coerce(value, hints[key], f"{prefix}{key}", where)
    return cls(**kwargs)


def config_from_dict(data: dict, where: str = "<dict>") -> TrainConfig:
    """Build a :class:`TrainConfig` from a nested dict (keys = field names)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping, got {type(data).__name__}")
    return _from_dict(TrainConfig, data, where)


def config_to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def config_to_yaml(cfg: TrainConfig) -> str:
    """YAML text that :func:`config_from_yaml_text` reads back to an equal config."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def config_from_yaml_text(text: str, where: str = "<yaml text>") -> TrainConfig:
    return config_from_dict(yaml.safe_load(text) or {}, where)


# ---------------------------------------------------------------------------- presets and files
def _configs_root() -> resources.abc.Traversable:
    return resources.files("irconstyle").joinpath("configs")


def list_presets() -> list[str]:
    """Names of the shipped presets, e.g. ``release/constyle_nafnet_denoise``."""
    out: list[str] = []

    def walk(node, parts: tuple[str, ...]) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, parts + (child.name,))
            elif child.name.endswith((".yml", ".yaml")):
                out.append("/".join(parts + (child.name.rsplit(".", 1)[0],)))

    walk(_configs_root(), ())
    return sorted(out)


def _read_source(path_or_name: str) -> tuple[str, str]:
    """(YAML text, a name for error messages) from a file path or a preset name."""
    path = Path(path_or_name)
    if path.is_file():
        return path.read_text(), str(path)
    name = path_or_name if path_or_name.endswith((".yml", ".yaml")) else path_or_name + ".yml"
    node = _configs_root().joinpath(*name.split("/"))
    if node.is_file():
        return node.read_text(), f"preset {name}"
    presets = list_presets()
    close = difflib.get_close_matches(path_or_name, presets, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"{path_or_name!r} is neither a YAML file nor a shipped preset{hint} "
                      f"({len(presets)} presets: see irconstyle.train.list_presets())")


def _apply_override(data: dict, override: str) -> None:
    if "=" not in override:
        raise ConfigError(f"override {override!r}: expected key.path=value")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {override!r}: empty key component")
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = yaml.safe_load(raw)


def load_config(path_or_preset_name: str, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML file or shipped preset, apply ``a.b.c=value`` overrides.

    The file is validated on its own first, so an unknown key is reported with the
    file's name; a bad override is reported with the override's text.
    """
    text, where = _read_source(path_or_preset_name)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {exc}") from None
    config_from_dict(data, where)
    for override in overrides:
        _apply_override(data, override)
        config_from_dict(data, f"override {override!r} (on {where})")
    return config_from_dict(data, where)
