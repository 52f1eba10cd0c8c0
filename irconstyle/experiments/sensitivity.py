"""Do the verdicts survive a change of learning rate? (issue 23.5)

Every arm of the campaign trained at the release's rate, 3e-4.  An arm that does better at
another rate could win or lose a comparison for that reason alone, so each arm also picks
its rate on validation photos (:mod:`irconstyle.experiments.lr_choice`) and the test
comparison is run again at the chosen rates.  This module pairs the two measurements of
each gap (arm minus baseline on one task) and says, by the ledger's rule
(:func:`irconstyle.experiments.stats.classify`), whether its outcome changed.

    gaps = [("derain", "constyle", "nafnet_compute"), ...]
    rows = rate_verdicts(gaps, release=campaign_records, chosen=lr_chosen_records,
                         choice=evidence.read_json("lr_pilot/choice.json"))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from .report import interval
from .stats import PairedCI, classify
from .summary import compare_to_reference

__all__ = ["RATE_GAPS", "RELEASE_EXPERIMENTS", "CHOSEN_EXPERIMENTS", "TREND_GAPS",
           "TREND_EXPERIMENTS", "TREND_SCORED", "gap_ci", "RateVerdict", "rate_verdicts",
           "chosen_rates", "describe_choice", "describe_rate_verdicts", "OUTCOME_WORDS"]

Gap = tuple[str, str, str]  # (task, arm, baseline): arm minus baseline on task

# What the book asks of the campaign's records (the sensitivity chapter and its key results):
# the ledger's comparisons of ConStyle-NAFNet with its controls, and the template's own lead,
# then the guideline claims' comparisons (denoising, sigma 25)
RATE_GAPS: tuple[Gap, ...] = tuple(
    (task, arm, baseline) for task in ("denoise25", "derain", "dehaze")
    for arm, baseline in (("constyle", "nafnet_matched"), ("constyle", "nafnet_compute"),
                          ("constyle", "ablated"), ("ablated", "nafnet_compute"))) + tuple(
    ("denoise25", "constyle", alternative) for alternative in ("inbatch", "code_only", "instance"))
# every arm at the release's rate / each arm at its chosen rate (experiments/<name>.yml)
RELEASE_EXPERIMENTS = ("cpu_campaign", "dehaze", "dehaze_template", "guidelines")
CHOSEN_EXPERIMENTS = ("lr_chosen_denoise25", "lr_chosen_derain", "lr_chosen_dehaze",
                      "lr_chosen_guidelines")
# The trend with training length (issue 23.6): the gaps, and per task the experiment of each
# length (the 600-step deraining point is the CPU campaign's) and the test sets scored
# (None: the task's test set; else one of its extra_tests), with their names.
TREND_GAPS = (("constyle", "ablated"), ("constyle", "nafnet_compute"), ("ablated", "nafnet_compute"))
TREND_EXPERIMENTS = {
    "derain": {600: "cpu_campaign", 2400: "trend_derain_2400", 9600: "trend_derain_9600"},
    "blind": {600: "trend_blind_600", 2400: "trend_blind_2400", 9600: "trend_blind_9600"}}
TREND_SCORED = {"derain": {None: "rain"},
                "blind": {"s15": "sigma 15", None: "sigma 25", "s50": "sigma 50"}}


def _key(r: dict) -> tuple[str, str, int]:
    return r["run"]["task"], r["run"]["arm"], r["run"]["seed"]


def gap_ci(pool: Sequence[dict], *, task: str, arm: str, baseline: str,
           test: str | None = None, weights: str = "ema", metric: str = "psnr_rgb",
           level: float = 0.95) -> PairedCI | None:
    """The interval of ``arm - baseline`` on ``task`` from the records of ``pool`` (one or
    several experiments: a pair from two experiments is checked by ``check_pairable``);
    None while either arm has no record or the two share no seed.  A run present twice in
    the pool (two experiments with the same task, arm and seed) is refused: which one
    counts would be a silent choice."""
    mine = [r for r in pool if r["run"]["task"] == task and r["run"]["arm"] in (arm, baseline)]
    seen: dict[tuple, str] = {}
    for r in mine:
        where = r.get("experiment", {}).get("name", "?")
        if _key(r) in seen:
            raise ValueError(f"{task}/{r['run']['arm']}/seed{r['run']['seed']} is in two experiments "
                             f"({seen[_key(r)]}, {where}): give one of them")
        seen[_key(r)] = where
    ours = [r for r in mine if r["run"]["arm"] == arm]
    refs = [r for r in mine if r["run"]["arm"] == baseline]
    if not ours or not refs:
        return None
    names = {r.get("experiment", {}).get("name") for r in mine}
    external = refs if len(names) > 1 else None
    comps = compare_to_reference(ours if external else mine, baseline, reference_records=external,
                                 arms=[arm], metric=metric, weights=weights, level=level, test=test)
    return comps[0].ci if comps else None


def chosen_rates(choice: Mapping) -> dict[tuple[str, str], float]:
    """``{(task, arm): rate}`` from a ``choice.json`` (:func:`lr_choice.write_choices`)."""
    return {(c["task"], c["arm"]): float(c["chosen"]) for c in choice["choices"]}


def describe_choice(choice: Mapping, *, names: Mapping[str, str] | None = None) -> str:
    """The pilot's outcome in sentences generated from ``choice.json``: per task, which arms
    took which rate, and a warning for every choice at an end of the grid (a better rate
    may lie beyond it)."""
    names = names or {}
    rows = choice.get("choices") or []
    if not rows:
        return "The pilot has chosen no rate yet."
    parts = []
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        by_rate: dict[float, list[str]] = {}
        for r in mine:
            by_rate.setdefault(float(r["chosen"]), []).append(names.get(r["arm"], r["arm"]))
        said = (f"every arm {next(iter(by_rate)):g}" if len(by_rate) == 1 and len(mine) > 1 else
                "; ".join(f"{', '.join(arms)} {rate:g}" for rate, arms in sorted(by_rate.items())))
        grid = sorted({float(k) for r in mine for k in r["values"]})
        edge = [names.get(r["arm"], r["arm"]) for r in mine
                if float(r["chosen"]) == grid[-1] and float(r["chosen"]) != float(r["default"])]
        text = f"{task}: {said}"
        if edge:
            who = "every arm" if len(edge) == len(mine) > 1 else ", ".join(edge)
            text += f" (the top of the grid for {who}: a higher rate was not tried and might do better)"
        parts.append(text)
    return "Chosen on validation, seed 0: " + "; ".join(parts) + "."


@dataclass(frozen=True)
class RateVerdict:
    """One gap measured twice: every arm at the release's rate, and each at its own."""

    task: str
    arm: str
    baseline: str
    release: PairedCI | None      # both arms at the release's 3e-4
    chosen: PairedCI | None       # each arm at the rate it chose on validation
    rate_arm: float | None        # the chosen rates (None: no choice for that arm yet)
    rate_baseline: float | None
    margin: float
    release_rate: float | None = None   # the rate every arm had in the release-rate runs

    @property
    def release_outcome(self) -> str | None:
        return None if self.release is None else classify(self.release, self.margin)

    @property
    def chosen_outcome(self) -> str | None:
        return None if self.chosen is None else classify(self.chosen, self.margin)

    @property
    def changed(self) -> bool | None:
        """Whether the outcome differs; None until both are measured."""
        if self.release is None or self.chosen is None:
            return None
        return self.release_outcome != self.chosen_outcome


def rate_verdicts(gaps: Sequence[Gap], *, release: Sequence[dict], chosen: Sequence[dict],
                  choice: Mapping, margin: float = 0.1, level: float = 0.95) -> list[RateVerdict]:
    """One :class:`RateVerdict` per gap, from the records at the release's rate
    (``release``) and at the chosen rates (``chosen``); a gap whose records are missing on
    one side keeps None there.  An arm whose chosen rate is its default is not trained
    again: its chosen-rate runs are its ``release`` records (the same configuration).  The
    chosen records must have trained at the rates of ``choice``: a record at another rate is
    refused, naming it."""
    rates = chosen_rates(choice)
    kept = {(c["task"], c["arm"]) for c in choice["choices"]
            if float(c["chosen"]) == float(c["default"])}
    defaults = {(c["task"], c["arm"]): float(c["default"]) for c in choice["choices"]}
    for r in chosen:
        want = rates.get((r["run"]["task"], r["run"]["arm"]))
        got = float(r["config"]["optim"]["lr"])
        if want is not None and got != want:
            raise ValueError(f"{r.get('experiment', {}).get('name', '?')}:{r['run']['task']}/"
                             f"{r['run']['arm']}/seed{r['run']['seed']} trained at {got:g}, "
                             f"but the choice for that arm is {want:g}")
    def side(task: str, name: str) -> list[dict]:
        pool = release if (task, name) in kept else chosen
        return [r for r in pool if r["run"]["task"] == task and r["run"]["arm"] == name]

    out = []
    for task, arm, baseline in gaps:
        kw = dict(task=task, arm=arm, baseline=baseline, level=level)
        at_chosen = side(task, arm) + side(task, baseline)
        out.append(RateVerdict(task, arm, baseline, gap_ci(release, **kw), gap_ci(at_chosen, **kw),
                               rates.get((task, arm)), rates.get((task, baseline)), margin,
                               defaults.get((task, arm), defaults.get((task, baseline)))))
    return out


# The ledger rule's outcomes (stats.classify) as a sentence says them.
OUTCOME_WORDS = {"above": "above 0", "below": "below 0", "unresolved": "unresolved",
                 "negligible": "negligible"}


def describe_rate_verdicts(verdicts: Sequence[RateVerdict], *, names: Mapping[str, str] | None = None,
                           unit: str = "dB") -> str:
    """What changed, in sentences generated from the intervals: how many gaps were measured
    at both rates, which changed outcome (from what to what, with both intervals), and
    which are still waiting for records."""
    names = names or {}
    both = [v for v in verdicts if v.changed is not None]
    waiting = [v for v in verdicts if v.changed is None]

    def label(v: RateVerdict) -> str:
        return f"{names.get(v.arm, v.arm)} minus {names.get(v.baseline, v.baseline)} ({v.task})"

    def shown(ci: PairedCI) -> str:
        return f"{interval(ci.diff, ci.lo, ci.hi)} {unit}"

    if not both:
        text = "No gap has been measured at the chosen rates yet: nothing can be said about them."
    else:
        moved = [v for v in both if v.changed]
        text = (f"{len(both)} gap{'s' if len(both) != 1 else ''} measured at both rates; "
                f"{len(moved)} changed outcome by the ledger's rule.")
        for v in moved:
            rate = f"{v.release_rate:g}" if v.release_rate else "the release's rate"
            text += (f" {label(v)}: {OUTCOME_WORDS[v.release_outcome]} at {rate} ({shown(v.release)}), "
                     f"{OUTCOME_WORDS[v.chosen_outcome]} at the chosen rates ({shown(v.chosen)}).")
        kept = [v for v in both if not v.changed]
        if kept:
            text += " Unchanged: " + "; ".join(f"{label(v)}, {OUTCOME_WORDS[v.release_outcome]}" for v in kept) + "."
    if waiting:
        per_task: dict[str, int] = {}
        for v in waiting:
            per_task[v.task] = per_task.get(v.task, 0) + 1
        text += (" Not yet measured at both rates, the campaign's records still to come: "
                 + ", ".join(f"{n} gap{'s' if n != 1 else ''} on {t}" for t, n in per_task.items())
                 + ".")
    return text
