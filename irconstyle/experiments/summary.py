"""The generated summary of an experiment: every arm against a reference arm, per task,
with paired intervals (the two-way random-effects interval by default,
:mod:`irconstyle.experiments.stats`), from whatever records exist.

``irconstyle experiment FILE --summary`` writes it (``summary.md`` for a person,
``summary.json`` for a program) into the experiment's ``out_dir``; the book's notebooks
call :func:`compare_to_reference` for the same numbers.  The reference arm may live in
another experiment's folder (the guidelines experiment is compared with the CPU campaign's
``constyle`` arm): its records are then paired only after
:func:`~irconstyle.experiments.pairing.check_pairable` agreed the runs trained in the same
setting.  Differences are *arm minus reference*; only the seeds both arms finished are
paired, and every interval carries its number of seeds and images, so a summary of a
campaign still running is correct for what it has.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .report import Table
from .stats import Method, PairedCI, classify, paired_ci
from .cost import RECIPE_STEPS
from .pairing import check_pairable
from .records import load_records
from .spec import load_spec, run_keys

__all__ = ["ArmComparison", "compare_to_reference", "describe_difference", "comparison_table",
           "conclusions", "scale_line",
           "experiment_summary", "format_summary", "write_summary"]


@dataclass(frozen=True)
class ArmComparison:
    """One arm against the reference on one task: per-image differences (seeds x images,
    over the paired seeds) and their interval (None: no paired seed).  The differences are
    arm minus reference, or reference minus arm when ``reference_first`` (the book's
    convention: the paper's choice minus the alternative, where the reference is the
    paper's choice); ``ci.mean_a`` is then the reference's mean."""

    task: str
    arm: str
    reference: str
    metric: str
    weights: str
    seeds: tuple[int, ...]
    images: tuple[str, ...]
    arm_values: np.ndarray        # (seeds, images)
    reference_values: np.ndarray  # (seeds, images)
    ci: PairedCI | None
    reference_first: bool = False

    @property
    def diffs(self) -> np.ndarray:
        d = self.arm_values - self.reference_values
        return -d if self.reference_first else d


def _extra(record: dict, test: str) -> dict:
    """The scores of one of the task's extra_tests (e.g. sigma 50 of blind denoising)."""
    extra = record.get("extra_metrics") or {}
    if test not in extra:
        r = record["run"]
        raise KeyError(f"{r['task']}/{r['arm']}/seed{r['seed']}: no extra test {test!r} in "
                       f"the record (has {', '.join(extra) or 'none'})")
    return extra[test]


def _values(record: dict, weights: str, metric: str, test: str | None = None) -> list[float]:
    r = record["run"]
    m = record["metrics"] if test is None else _extra(record, test)
    if m is None or weights not in m or metric not in m[weights]:
        raise KeyError(f"{r['task']}/{r['arm']}/seed{r['seed']}: no {weights}/{metric} in the record")
    return [float(v) for v in m[weights][metric]]


def _images(record: dict, test: str | None) -> list[str]:
    return record["images"] if test is None else _extra(record, test)["images"]


def _by_task_arm(records: Sequence[dict]) -> dict[str, dict[str, dict[int, dict]]]:
    out: dict[str, dict[str, dict[int, dict]]] = {}
    for r in records:
        run = r["run"]
        out.setdefault(run["task"], {}).setdefault(run["arm"], {})[run["seed"]] = r
    return out


def compare_to_reference(records: Sequence[dict], reference: str, *,
                         reference_records: Sequence[dict] | None = None,
                         metric: str = "psnr_rgb", weights: str = "ema",
                         arms: Sequence[str] | None = None, method: Method = "random_effects",
                         n_boot: int = 10_000, level: float = 0.95, seed: int = 0,
                         test: str | None = None,
                         reference_first: bool = False) -> list[ArmComparison]:
    """Every arm of ``records`` (in ``arms`` order when given) against ``reference`` on each
    task, with the interval of ``method`` (:func:`irconstyle.experiments.stats.paired_ci`), on the
    task's test set or (``test``) one of its ``extra_tests``: arm minus reference, or
    reference minus arm with ``reference_first``.  The reference's records come from ``reference_records`` when given (another
    experiment: each pair is checked by ``check_pairable``), else from ``records``.  A task
    without reference records yields comparisons with no seeds and ``ci=None``."""
    ours = _by_task_arm(records)
    external = reference_records is not None
    refs = _by_task_arm([r for r in (reference_records if external else records)
                         if r["run"]["arm"] == reference])
    out = []
    for task, by_arm in ours.items():
        ref = refs.get(task, {}).get(reference, {})
        names = [a for a in (arms or sorted(by_arm)) if a in by_arm and a != reference]
        for arm in names:
            recs = by_arm[arm]
            seeds = tuple(sorted(set(recs) & set(ref)))
            for s in seeds:
                if external:
                    check_pairable(recs[s], ref[s])
                if _images(recs[s], test) != _images(ref[s], test):
                    raise ValueError(f"{task}: arms {arm!r} and {reference!r} (seed {s}) were "
                                     "scored on different images; they cannot be paired")
            images = tuple(_images(recs[seeds[0]], test)) if seeds else ()
            shape = (len(seeds), len(images))
            a = np.array([_values(recs[s], weights, metric, test) for s in seeds]).reshape(shape)
            b = np.array([_values(ref[s], weights, metric, test) for s in seeds]).reshape(shape)
            first, second = (b, a) if reference_first else (a, b)
            ci = (paired_ci(first, second, method=method, n_boot=n_boot, level=level, seed=seed)
                  if seeds else None)
            out.append(ArmComparison(task, arm, reference, metric, weights, seeds, images, a, b,
                                     ci, reference_first))
    return out


def describe_difference(ci: PairedCI | None, *, arm: str, reference: str,
                        unit: str = "dB", margin: float = 0.1) -> str:
    """What the interval of ``arm - reference`` lets a reader conclude, in words generated
    from the interval itself (so the sentence stays true whatever the records say), by the
    ledger's rule (:func:`irconstyle.experiments.stats.classify`): an interval inside ``(-margin,
    +margin)`` is a negligible effect, whatever its sign; otherwise its side of 0 decides,
    and an interval across 0 resolves nothing (it is not evidence of no effect)."""
    if ci is None:
        return f"{arm}: no seed paired with {reference} yet, nothing to conclude."
    pct = round(100 * ci.level)
    interval = f"{pct}% interval [{ci.lo:+.2f}, {ci.hi:+.2f}] {unit}"
    n = f"{ci.n_seeds} seed{'s' if ci.n_seeds != 1 else ''} x {ci.n_images} images"
    outcome = classify(ci, margin)
    if outcome == "negligible":
        text = (f"{arm} against {reference}: negligible at this scale, the {interval} lies "
                f"within ±{margin:g} {unit} ({n}).")
    elif outcome == "above":
        text = f"{arm} scores higher than {reference}: the {interval} lies above 0 ({n})."
    elif outcome == "below":
        text = f"{arm} scores lower than {reference}: the {interval} lies below 0 ({n})."
    else:
        text = (f"{arm} against {reference}: unresolved at this scale, the {interval} contains "
                f"0 and reaches beyond ±{margin:g} {unit} ({n}).")
    if ci.n_seeds == 1:
        text += (" With one seed the interval covers image-to-image variation only, not "
                 "training randomness.")
    return text


def comparison_table(comparisons: Sequence[ArmComparison], *, caption: str | None = None,
                     label: str | None = None, names: dict[str, str] | None = None,
                     params: dict[str, str] | None = None) -> Table:
    """The comparisons as a table, one row per (task, arm): both means, their difference in
    the comparisons' direction (the column says which), its interval, seeds and images.
    Means and differences come from deterministic records: two decimals."""
    if not comparisons:
        raise ValueError("comparison_table: no comparison to show")
    names = names or {}
    first = comparisons[0]
    ref = names.get(first.reference, first.reference)
    rows = []
    for c in comparisons:
        arm = names.get(c.arm, c.arm)
        row = {"task": c.task, "arm": arm}
        if c.ci is None:
            row |= {f"{ref} dB": "", "arm dB": "", "difference": "no paired seed", "95% CI": ""}
        else:
            ref_mean, arm_mean = ((c.ci.mean_a, c.ci.mean_b) if c.reference_first
                                  else (c.ci.mean_b, c.ci.mean_a))
            row |= {f"{ref} dB": f"{ref_mean:.2f}", "arm dB": f"{arm_mean:.2f}",
                    "difference": f"{c.ci.diff:+.2f}", "95% CI": f"[{c.ci.lo:+.2f}, {c.ci.hi:+.2f}]"}
        row |= {"seeds": str(len(c.seeds)), "images": str(len(c.images))}
        if params is not None:
            row["params"] = params.get(c.arm, "")
        rows.append(row)
    sign = f"{ref} - arm" if first.reference_first else f"arm - {ref}"
    caption = (caption + f" Difference: {sign}, dB; 95% two-way random-effects interval "
               "over seeds and images." if caption else None)
    return Table(rows, caption=caption, label=label)


def conclusions(comparisons: Sequence[ArmComparison], *, names: dict[str, str] | None = None,
                margin: float = 0.1) -> str:
    """One sentence per comparison (:func:`describe_difference`), in its direction: with
    ``reference_first`` the reference is the subject ("full ConStyle scores higher than
    ...")."""
    names = names or {}
    lines = []
    for c in comparisons:
        arm, ref = names.get(c.arm, c.arm), names.get(c.reference, c.reference)
        first, second = (ref, arm) if c.reference_first else (arm, ref)
        lines.append(f"[{c.task}] " + describe_difference(c.ci, arm=first, reference=second,
                                                          margin=margin))
    return "\n".join(lines)


def scale_line(record: dict) -> str:
    """The setting of a run in one line: model, steps as a fraction of the release's, batch,
    patches, training data, test set, scoring protocol."""
    cfg, exp = record["config"], record["experiment"]
    train = cfg["data"]["train"]
    kw = cfg["model"]["kwargs"]
    model = cfg["model"]["name"] + (f" (width {kw['width']})" if "width" in kw else "")
    patch = train["kwargs"].get("patch_size")
    test = exp["test"]
    test_kw = ", ".join(f"{k}={v}" for k, v in test["kwargs"].items())
    return (f"{model}, {cfg['total_iters']} steps ({cfg['total_iters'] / RECIPE_STEPS:.3%} of the "
            f"release's {RECIPE_STEPS:,}), batch {cfg['batch_size']}, "
            f"{f'{patch}x{patch} patches' if patch else 'full images'}, trained on "
            f"{train['kind']}/{train['split']} ({train['kwargs'].get('task', '?')}), tested on "
            f"{test['kind']}/test ({test_kw}), protocol {exp.get('protocol', '?')}")


def _records_or_none(folder: Path) -> list[dict]:
    return load_records(folder) if folder.is_dir() else []


def experiment_summary(path: str | os.PathLike, *, reference: str | None = None,
                       reference_results: str | os.PathLike | None = None,
                       metric: str = "psnr_rgb", method: Method = "random_effects",
                       n_boot: int = 10_000, seed: int = 0) -> dict:
    """The summary of experiment file ``path`` from the records in its ``out_dir``:
    per task, each arm against ``reference`` (default: the file's first arm) on EMA and raw
    weights.  ``reference_results``: the folder holding the reference's records when they
    are another experiment's."""
    spec = load_spec(path)
    reference = reference or next(iter(spec.arms))
    if reference_results is None and reference not in spec.arms:
        raise ValueError(f"{path}: reference arm {reference!r} is not an arm of this experiment "
                         f"({', '.join(spec.arms)}); give the folder of its records "
                         "(reference_results / --reference-results)")
    records = _records_or_none(spec.out_path)
    ref_folder = Path(reference_results) if reference_results is not None else None
    ref_records = _records_or_none(ref_folder) if ref_folder is not None else None
    if ref_folder is not None and not ref_folder.is_dir():
        raise FileNotFoundError(f"{ref_folder}: no such results folder (the reference's records)")
    planned = run_keys(spec)
    done = {(r["run"]["task"], r["run"]["arm"], r["run"]["seed"]) for r in records}
    tasks: dict[str, dict] = {}
    for weights in ("ema", "raw"):
        for c in compare_to_reference(records, reference, reference_records=ref_records,
                                      metric=metric, weights=weights, arms=list(spec.arms),
                                      method=method, n_boot=n_boot, seed=seed):
            t = tasks.setdefault(c.task, {"scale": None, "rows": []})
            row = {"arm": c.arm, "weights": weights, "seeds": list(c.seeds),
                   "n_seeds": len(c.seeds), "n_images": len(c.images)}
            if c.ci is not None:
                row.update(mean_arm=round(c.ci.mean_a, 4), mean_reference=round(c.ci.mean_b, 4),
                           diff=round(c.ci.diff, 4), lo=round(c.ci.lo, 4), hi=round(c.ci.hi, 4),
                           level=c.ci.level, method=c.ci.method,
                           df=None if c.ci.df is None else round(c.ci.df, 2))
            t["rows"].append(row)
    pool = (ref_records or []) + records
    for task, t in tasks.items():
        ref_recs = [r for r in pool if r["run"]["task"] == task and r["run"]["arm"] == reference]
        t["scale"] = scale_line(ref_recs[0]) if ref_recs else None
    return {"experiment": spec.name, "file": str(path), "metric": metric,
            "reference": {"arm": reference,
                          "results": str(ref_folder) if ref_folder is not None else spec.out_dir},
            "difference": "arm minus reference, paired by seed and image",
            "method": method, "n_boot": n_boot, "bootstrap_seed": seed,
            "runs": {"planned": len(planned),
                     "finished": sum((k.task, k.arm, k.seed) in done for k in planned)},
            "tasks": tasks}


_METHOD_TEXT = {
    "random_effects": "95% two-way random-effects interval over seeds and images with "
                      "Satterthwaite's degrees of freedom (irconstyle.experiments.stats.random_effects_ci).",
    "seed_t": "95% t interval over the per-seed mean differences (irconstyle.experiments.stats.seed_t_ci).",
    "bootstrap": "95% paired two-way bootstrap interval (irconstyle.experiments.stats.paired_bootstrap_ci, "
                 "{n_boot} replicates, seed {bootstrap_seed}).",
}


def _f(v: float | None, signed: bool = False) -> str:
    return "" if v is None else (f"{v:+.2f}" if signed else f"{v:.2f}")


def format_summary(summary: dict) -> str:
    """Markdown: one table per task, the scale line above it."""
    ref = summary["reference"]
    lines = [f"# {summary['experiment']}: each arm against `{ref['arm']}`", "",
             f"Generated by `irconstyle experiment {summary['file']} --summary` from the run "
             f"records ({summary['runs']['finished']} of {summary['runs']['planned']} runs "
             f"finished; reference records: `{ref['results']}`). {summary['metric']} in dB; "
             f"difference = {summary['difference']}; "
             f"{_METHOD_TEXT[summary.get('method', 'bootstrap')].format(**summary)}", ""]
    for task, t in summary["tasks"].items():
        lines += [f"## {task}", "", f"Scale: {t['scale'] or '(no reference records yet)'}", "",
                  "| arm | weights | mean arm | mean reference | difference | 95% CI | seeds | images |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in t["rows"]:
            ci = f"[{_f(r.get('lo'), True)}, {_f(r.get('hi'), True)}]" if "lo" in r else "no paired seed yet"
            lines.append(f"| {r['arm']} | {r['weights']} | {_f(r.get('mean_arm'))} | "
                         f"{_f(r.get('mean_reference'))} | {_f(r.get('diff'), True)} | {ci} | "
                         f"{r['n_seeds']} ({', '.join(map(str, r['seeds']))}) | {r['n_images']} |")
        lines.append("")
    return "\n".join(lines)


def write_summary(summary: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``summary.md`` and ``summary.json`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "summary.md", out / "summary.json"
    md.write_text(format_summary(summary))
    js.write_text(json.dumps(summary, indent=1) + "\n")
    return md, js
