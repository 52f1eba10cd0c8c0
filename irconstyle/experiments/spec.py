"""The experiment file: arms x seeds (x tasks) over one base training config.

An experiment file is YAML whose keys are the fields of :class:`ExperimentSpec`
(unknown keys are errors naming the file).  A *run* is one (task, arm, seed); its
training config is the base config with, in this order, the common ``overrides``,
the task's ``overrides``, the arm's ``overrides``, then ``seed=<seed>``.  Everything
is resolved (and validated) before any run starts, so a typo in the last arm fails
in the first second, not after hours of training.

Relative paths (``base`` when it is a file, ``out_dir``) are read from the experiment
file's folder, so the CLI and a notebook started elsewhere write to the same place.

    name: cpu_constyle_vs_general
    base: smoke/constyle_nafnet            # preset name or YAML path
    overrides: [total_iters=600, num_workers=0, data.val=null]
    arms:
      constyle_nafnet: {description: "ConStyle-NAFNet"}
      general_nafnet:
        description: "ConStyle removed, topology kept: isolates ConStyle"
        overrides: [model.name=general_nafnet]
    seeds: [0, 1, 2]                       # fixed before anything runs
    tasks:                                 # optional; none = one task "default"
      denoise25: {overrides: ["data.train.kwargs.task=denoise"]}
      derain:
        overrides: ["data.train.kwargs={task: derain, patch_size: 64, repeats: 128}"]
        test: {kind: minibench, kwargs: {task: derain}}
    test: {kind: minibench, kwargs: {task: denoise, sigma: 25}}   # split is always "test"
    budget_minutes: 90
    out_dir: ../results/cpu_campaign
    save_codes: false
    protocol: basicsr
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..train.config import ConfigError, TrainConfig, _from_dict, load_config

__all__ = ["EvalSet", "ArmSpec", "TaskSpec", "ExperimentSpec", "RunKey", "load_spec",
           "spec_from_dict", "run_keys", "run_config"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class EvalSet:
    """The held-out evaluation set: ``build_dataset(kind, split="test", **kwargs)``.

    ``benchmark`` names the scoring convention (:func:`irconstyle.evaluation.protocols.convention`);
    ``None`` = BasicSR's metrics on the true size, the convention of our synthetic sets."""

    kind: str = "minibench"
    kwargs: dict[str, Any] = field(default_factory=dict)
    benchmark: str | None = None


@dataclass
class ArmSpec:
    """One arm: config overrides (``a.b=value``, as ``irconstyle train`` accepts them,
    e.g. ``model.name=general_nafnet``) and what the arm is for."""

    description: str = ""
    overrides: list[str] = field(default_factory=list)


@dataclass
class TaskSpec:
    """One task: data overrides (e.g. ``data.train.kwargs.task=derain``) and its test set
    (``None`` = the experiment's ``test``).  ``extra_tests``: more held-out sets the same
    trained weights are also scored on, by name (blind denoising: one training, scored at
    sigma 15, 25 and 50), recorded under the record's ``extra_metrics``."""

    description: str = ""
    overrides: list[str] = field(default_factory=list)
    test: EvalSet | None = None
    extra_tests: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentSpec:
    """Everything an experiment file says; see the module docstring for the run order."""

    name: str
    base: str                     # a preset name (smoke/constyle_nafnet) or a YAML path
    arms: dict[str, ArmSpec]
    seeds: list[int]
    out_dir: str
    overrides: list[str] = field(default_factory=list)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)  # empty = one task "default"
    test: EvalSet | None = None
    budget_minutes: float | None = None  # stop before starting a run past this
    save_codes: bool = False      # ConStyle codes of the test images in each record
    score_test: bool = True       # False: a pilot scored on validation only (no test metrics)
    protocol: str = "basicsr"     # irconstyle.evaluation.protocols.PROTOCOLS
    description: str = ""
    root: str = "."               # folder relative paths are read from (the file's)

    def task_specs(self) -> dict[str, TaskSpec]:
        return self.tasks or {"default": TaskSpec()}

    def test_set(self, task: str) -> EvalSet:
        t = self.task_specs()[task].test or self.test
        if t is None:  # load_spec checks this; a spec built in code may not have been
            raise ConfigError(f"experiment {self.name!r}: task {task!r} has no test set "
                              "(give `test:` at the top level or in the task)")
        return t

    def resolve(self, path: str) -> str:
        """``path`` read from :attr:`root` when relative (preset names pass through)."""
        p = Path(path)
        return str(p if p.is_absolute() else Path(self.root) / p)

    @property
    def out_path(self) -> Path:
        return Path(self.resolve(self.out_dir))


@dataclass(frozen=True, order=True)
class RunKey:
    """One run; :attr:`record_path` and :attr:`train_dir` are relative to ``out_dir``."""

    task: str
    arm: str
    seed: int

    @property
    def record_path(self) -> Path:
        return Path(self.task) / self.arm / f"seed{self.seed}.json"

    @property
    def train_dir(self) -> Path:
        return Path("runs") / self.task / self.arm / f"seed{self.seed}"

    def __str__(self) -> str:
        return f"{self.task}/{self.arm}/seed{self.seed}"


def _check_name(name: Any, what: str, where: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: {what} name {name!r} must be letters, digits, '_', '.' "
                          "or '-' (it becomes a folder name)")


def spec_from_dict(data: dict, where: str = "<dict>", root: str | Path = ".") -> ExperimentSpec:
    """Validate a parsed experiment file; ``root`` is the folder relative paths start from."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping, got {type(data).__name__}")
    if "root" in data:
        raise ConfigError(f"{where}: 'root' is set from the file's location, not in the file")
    for key in ("name", "base", "arms", "seeds", "out_dir"):
        if key not in data:
            raise ConfigError(f"{where}: missing required key '{key}'")
    spec = _from_dict(ExperimentSpec, {**data, "root": str(root)}, where)
    if not isinstance(spec.arms, dict) or not spec.arms:
        raise ConfigError(f"{where}: 'arms' must be a non-empty mapping of arm name -> "
                          "{description, overrides}")
    arms = {}
    for name, arm in spec.arms.items():
        _check_name(name, "arm", where)
        arms[name] = _from_dict(ArmSpec, arm or {}, where, prefix=f"arms.{name}.") \
            if not isinstance(arm, ArmSpec) else arm
    tasks = {}
    for name, task in (spec.tasks or {}).items():
        _check_name(name, "task", where)
        if name == "runs":
            raise ConfigError(f"{where}: a task cannot be named 'runs' (the training folders' name)")
        task = _from_dict(TaskSpec, task or {}, where, prefix=f"tasks.{name}.") \
            if not isinstance(task, TaskSpec) else task
        extra = {}
        for test_name, test in (task.extra_tests or {}).items():
            _check_name(test_name, f"tasks.{name}.extra_tests", where)
            extra[test_name] = test if isinstance(test, EvalSet) else _from_dict(
                EvalSet, test or {}, where, prefix=f"tasks.{name}.extra_tests.{test_name}.")
        tasks[name] = dataclasses.replace(task, extra_tests=extra)
    spec = dataclasses.replace(spec, arms=arms, tasks=tasks)
    if not spec.seeds or len(set(spec.seeds)) != len(spec.seeds):
        raise ConfigError(f"{where}: 'seeds' must be a non-empty list of distinct integers, "
                          f"got {spec.seeds}")
    for task in spec.task_specs():
        if spec.task_specs()[task].test is None and spec.test is None:
            raise ConfigError(f"{where}: task {task!r} has no test set (give `test:` at the top "
                              "level or in the task)")
    if spec.budget_minutes is not None and spec.budget_minutes <= 0:
        raise ConfigError(f"{where}: budget_minutes must be > 0, got {spec.budget_minutes}")
    from ..evaluation.protocols import PROTOCOLS
    if spec.protocol not in PROTOCOLS:
        raise ConfigError(f"{where}: protocol must be one of {list(PROTOCOLS)}, got {spec.protocol!r}")
    return spec


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate an experiment file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such experiment file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    return spec_from_dict(data, str(path), root=path.resolve().parent)


def run_keys(spec: ExperimentSpec, only: str | list[str] | None = None) -> list[RunKey]:
    """The runs in their fixed order: task, then seed, then arm (so a campaign cut short
    by its budget has every arm at the seeds it reached: complete pairs)."""
    arms = list(spec.arms)
    if only is not None:
        chosen = [only] if isinstance(only, str) else list(only)
        unknown = [a for a in chosen if a not in spec.arms]
        if unknown:
            raise ConfigError(f"experiment {spec.name!r}: unknown arm(s) {unknown}; "
                              f"arms: {', '.join(arms)}")
        arms = [a for a in arms if a in chosen]
    return [RunKey(t, a, s) for t in spec.task_specs() for s in spec.seeds for a in arms]


def _base(spec: ExperimentSpec) -> str:
    """The base as given when it is a preset name, else the file from :attr:`root`."""
    candidate = Path(spec.resolve(spec.base))
    return str(candidate) if candidate.is_file() else spec.base


def run_config(spec: ExperimentSpec, key: RunKey) -> TrainConfig:
    """The training config of one run (out_dir = its training folder, resume = auto)."""
    overrides = [*spec.overrides, *spec.task_specs()[key.task].overrides,
                 *spec.arms[key.arm].overrides, f"seed={key.seed}"]
    cfg = load_config(_base(spec), overrides)
    if "seed" in cfg.data.train.kwargs:
        raise ConfigError(f"run {key}: data.train.kwargs sets its own seed "
                          f"({cfg.data.train.kwargs['seed']}), so the run's seed would not drive "
                          "the training degradations; remove it")
    return dataclasses.replace(cfg, out_dir=str(spec.out_path / key.train_dir), resume="auto",
                               log=dataclasses.replace(cfg.log, csv=True))
