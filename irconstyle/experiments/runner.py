"""Run an experiment file: every (task, arm, seed) trained with the package's trainer,
scored on the held-out set with EMA and raw weights, one JSON record per run.

    from irconstyle.experiments import run_experiment
    result = run_experiment("experiments/cpu_denoise.yml")

Resuming is by construction: a run whose record exists is skipped; a run without one
trains in ``<out_dir>/runs/<task>/<arm>/seed<k>``, where the trainer resumes from
``last.pt`` if an earlier, killed campaign left one (``resume: auto``), and the record
is written only once training and scoring are complete.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data import build_dataset, dataset_kinds
from ..evaluation.evaluate import METRIC_KEYS, evaluate
from ..nets.model_table import count_parameters
from ..train.config import ConfigError, TrainConfig, config_to_dict
from ..train.recipe import resolve_config
from ..train.trainer import Trainer
from .provenance import run_provenance
from .records import RECORD_VERSION, loss_curves, write_record
from .spec import EvalSet, ExperimentSpec, RunKey, load_spec, run_config, run_keys

__all__ = ["PlannedRun", "ExperimentResult", "plan", "run_experiment", "run_one"]


@dataclass
class PlannedRun:
    key: RunKey
    config: TrainConfig
    status: str          # "done" (record exists), "partial" (a checkpoint exists), "todo"
    step: int = 0        # the checkpoint's step for "partial"


@dataclass
class ExperimentResult:
    out_dir: str
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)      # records that already existed
    not_started: list[str] = field(default_factory=list)  # left out by the time budget
    seconds: float = 0.0


def _checkpoint_step(train_dir: Path) -> int | None:
    last = train_dir / "last.pt"
    if not last.is_file():
        return None
    try:
        return int(torch.load(last, map_location="cpu", weights_only=True)["step"])
    except Exception:  # noqa: BLE001 - only for the plan's display; the trainer will say why
        return -1


def plan(spec: ExperimentSpec, only: str | list[str] | None = None) -> list[PlannedRun]:
    """Every run with its resolved config and status.  Resolves and validates all
    configs (recipe included) and test-set kinds, so errors surface before training."""
    out = []
    for key in run_keys(spec, only):
        cfg = run_config(spec, key)
        resolve_config(cfg)  # recipe errors now, not at the run's turn
        tests = [spec.test_set(key.task), *spec.task_specs()[key.task].extra_tests.values()]
        for test in tests:
            if test.kind not in dataset_kinds():
                raise ConfigError(f"experiment {spec.name!r}, task {key.task!r}: unknown test set "
                                  f"kind {test.kind!r}; choose from {', '.join(dataset_kinds())}")
        if (spec.out_path / key.record_path).is_file():
            out.append(PlannedRun(key, cfg, "done"))
        elif (step := _checkpoint_step(spec.out_path / key.train_dir)) is not None:
            out.append(PlannedRun(key, cfg, "partial", step))
        else:
            out.append(PlannedRun(key, cfg, "todo"))
    return out


def _spec_hash(spec: ExperimentSpec) -> str:
    """What was run, not where it was written: ``root`` and ``out_dir`` are left out."""
    data = dataclasses.asdict(spec)
    data.pop("root")
    data.pop("out_dir")
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _test_dataset(test: EvalSet):
    return build_dataset(test.kind, split="test", **test.kwargs)


def _benchmark(test: EvalSet, task: str) -> str:
    # "minibench_*" selects BasicSR's metrics on the true size: our synthetic sets'
    # convention (irconstyle.evaluation.protocols); a named benchmark selects its own.
    return test.benchmark or f"minibench_{task}"


def _codes(model: torch.nn.Module, data, device: torch.device) -> dict | None:
    if getattr(model, "constyle", None) is None:
        return None
    from ..evaluation.latent import collect_codes

    items = [(item["lq"], str(item.get("name", i))) for i, item in enumerate(data)]
    codes, names = collect_codes(model, items, device=device)
    return {"images": names, "codes": codes.round(6).tolist()}


def _score(weights: dict, data, spec: ExperimentSpec, test: EvalSet,
           task: str) -> tuple[dict, list[str]]:
    """Per-image metrics (and their means) of each set of weights on one held-out set."""
    metrics, names = {}, []
    for tag, model in weights.items():
        res = evaluate(model, data, protocol=spec.protocol, benchmark=_benchmark(test, task),
                       weights=tag)
        names = [r["name"] for r in res["images"]]
        metrics[tag] = {k: [r[k] for r in res["images"]] for k in METRIC_KEYS}
        metrics[tag]["mean"] = {k: res["mean"][k] for k in METRIC_KEYS}
    return metrics, names


def run_one(spec: ExperimentSpec, key: RunKey, cfg: TrainConfig, *, command: str,
            progress: bool = True) -> dict:
    """Train (or resume) one run, score it, write and return its record."""
    out_dir = spec.out_path
    cfg = dataclasses.replace(cfg, log=dataclasses.replace(cfg.log, progress=progress))
    t_start = time.perf_counter()
    trainer = Trainer(cfg)
    resumed_from = trainer.step
    try:
        t0 = time.perf_counter()
        summary = trainer.fit()
        train_seconds = time.perf_counter() - t0
    finally:
        trainer.close()

    t0 = time.perf_counter()
    test = spec.test_set(key.task)
    weights = {"ema": trainer.ema.module} if trainer.ema is not None else {}
    weights["raw"] = trainer.model
    metrics, names, codes, extra_metrics = None, None, None, None
    if spec.score_test:  # a pilot (score_test: false) never touches the test photos
        data = _test_dataset(test)
        metrics, names = _score(weights, data, spec, test, key.task)
        if spec.save_codes:
            codes = _codes(next(iter(weights.values())), data, trainer.device)
        extra = spec.task_specs()[key.task].extra_tests
        if extra:
            extra_metrics = {}
            for name, evalset in extra.items():
                scored, extra_names = _score(weights, _test_dataset(evalset), spec, evalset, key.task)
                extra_metrics[name] = {"test": dataclasses.asdict(evalset), "images": extra_names,
                                       **scored}
    eval_seconds = time.perf_counter() - t0

    params, params_train = count_parameters(trainer.model)
    config = config_to_dict(trainer.cfg)
    config["out_dir"] = key.train_dir.as_posix()  # relative to the experiment's out_dir
    steps = trainer.step - resumed_from
    record = {
        "record_version": RECORD_VERSION,
        "run": {"task": key.task, "arm": key.arm, "seed": key.seed},
        "experiment": {"name": spec.name, "spec_sha256": _spec_hash(spec), "base": spec.base,
                       "overrides": spec.overrides,
                       "task": dataclasses.asdict(spec.task_specs()[key.task]),
                       "arm": dataclasses.asdict(spec.arms[key.arm]),
                       "test": dataclasses.asdict(test), "protocol": spec.protocol,
                       "benchmark": _benchmark(test, key.task)},
        "config": config,
        "images": names,
        "metrics": metrics,
        **({"extra_metrics": extra_metrics} if extra_metrics is not None else {}),
        "codes": codes,
        "loss_curves": loss_curves(Path(cfg.out_dir) / "train.csv"),
        "validation": {k: summary[k] for k in ("metrics", "best_value", "best_step", "best_metric")},
        "params": params, "params_train": params_train,
        "timing": {"train_seconds": train_seconds, "steps_timed": steps,
                   "seconds_per_step": train_seconds / steps if steps else None,
                   "resumed_from_step": resumed_from, "eval_seconds": eval_seconds,
                   "total_seconds": time.perf_counter() - t_start},
        "provenance": run_provenance(command, device=trainer.device, amp_dtype=trainer.amp_dtype),
    }
    write_record(record, out_dir / key.record_path)
    return record


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _run_in_worker(spec: ExperimentSpec, key: RunKey, cfg: TrainConfig, command: str) -> RunKey:
    run_one(spec, key, cfg, command=command, progress=False)
    return key


def _run_parallel(spec: ExperimentSpec, queue: list[PlannedRun], jobs: int, command: str,
                  may_start, finished) -> None:
    """Keep ``jobs`` runs in flight in spawned worker processes (fresh interpreters: no
    inherited threads or CUDA state); a failed run stops new starts and is re-raised
    after the runs in flight have finished and written their records."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(threads,)) as pool:
        pending = {}
        while True:
            while len(pending) < jobs and may_start():
                r = queue.pop(0)
                pending[pool.submit(_run_in_worker, spec, r.key, r.config, command)] = r
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                pending.pop(future)
                finished(future.result())


def _ignore_checkpoints(out_dir: Path) -> None:
    """Training folders hold checkpoints, never meant for git: a ``.gitignore`` there."""
    runs = out_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    ignore = runs / ".gitignore"
    if not ignore.is_file():
        ignore.write_text("# checkpoints and logs of the experiment runner\n*\n")


def run_experiment(spec_or_path: ExperimentSpec | str | Path, *,
                   only: str | list[str] | None = None, progress: bool = True,
                   dry_run: bool = False, command: str | None = None,
                   jobs: int = 1, out_dir: str | Path | None = None) -> ExperimentResult:
    """Run every unfinished run of an experiment in the fixed order of
    :func:`~irconstyle.experiments.spec.run_keys` (``only``: these arms).

    ``dry_run`` prints the plan and trains nothing.  With ``budget_minutes``, no new
    run starts once that much time has passed in this call (a warning names the runs
    left; calling again continues).  ``command`` is recorded as provenance (default:
    ``sys.argv``).  ``jobs > 1`` trains that many runs at once in worker processes, each
    with ``cpu_count // jobs`` torch threads (CPU campaigns of small models; records are
    then written in completion order, each still atomically).  ``out_dir`` replaces the
    file's ``out_dir`` (records and training folders go there; the spec's hash is the same)."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    spec = spec_or_path if isinstance(spec_or_path, ExperimentSpec) else load_spec(spec_or_path)
    if out_dir is not None:
        spec = dataclasses.replace(spec, out_dir=str(Path(out_dir).resolve()))
    command = command if command is not None else " ".join(sys.argv)
    runs = plan(spec, only)
    result = ExperimentResult(out_dir=str(spec.out_path))
    if dry_run:
        print(f"experiment {spec.name}: {len(runs)} runs -> {spec.out_path}")
        for r in runs:
            extra = f" (checkpoint at step {r.step})" if r.status == "partial" else ""
            print(f"  {str(r.key):40s} {r.status}{extra}  total_iters={r.config.total_iters} "
                  f"model={r.config.model.name}")
        return result
    _ignore_checkpoints(spec.out_path)
    started = time.monotonic()
    queue = [r for r in runs if r.status != "done"]
    result.skipped = [str(r.key) for r in runs if r.status == "done"]
    bar = tqdm(total=len(runs), initial=len(result.skipped), desc=f"{spec.name} runs",
               disable=not progress, dynamic_ncols=True)

    def may_start() -> bool:
        elapsed = time.monotonic() - started
        if spec.budget_minutes is None or elapsed <= 60 * spec.budget_minutes or not queue:
            return bool(queue)
        result.not_started = [str(x.key) for x in queue]
        queue.clear()
        warnings.warn(f"experiment {spec.name}: {elapsed / 60:.1f} min elapsed, over the budget "
                      f"of {spec.budget_minutes} min; not started: "
                      f"{', '.join(result.not_started)} (run again to continue)", stacklevel=3)
        return False

    def finished(key: RunKey) -> None:
        result.ran.append(str(key))
        bar.update(1)

    try:
        if jobs == 1:
            while may_start():
                r = queue.pop(0)
                bar.set_postfix_str(str(r.key))
                run_one(spec, r.key, r.config, command=command, progress=progress)
                finished(r.key)
        else:
            _run_parallel(spec, queue, jobs, command, may_start, finished)
    finally:
        bar.close()
    result.seconds = time.monotonic() - started
    return result
