"""Experiments: experiment files, the runner and its records, statistics, claims, cost, reports.
May import: train, evaluation, checkpoints, nets, method, data, runtime, results.

An experiment file (arms x seeds x tasks), a runner that writes one JSON record per run,
and reading the records back.  Statistics over the records: :mod:`.stats`; the claims
ledger: :mod:`.claims`; training cost: :mod:`.cost`; tables in Markdown: :mod:`.report`.
"""
from .records import load_records, read_record, write_record
from .runner import ExperimentResult, plan, run_experiment
from .spec import ArmSpec, EvalSet, ExperimentSpec, RunKey, TaskSpec, load_spec, run_keys

__all__ = ["ArmSpec", "EvalSet", "ExperimentSpec", "RunKey", "TaskSpec", "ExperimentResult",
           "load_spec", "run_keys", "plan", "run_experiment", "load_records", "read_record",
           "write_record"]
