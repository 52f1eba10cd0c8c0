"""The sensitivity chapter's box: the learning rate each arm chose, whether the ledger's
gaps keep their outcome at those rates, the drift between the commits that trained them, and
ConStyle's gap over its ablation against the length of training."""
from __future__ import annotations

from ....experiments.sensitivity import (CHOSEN_EXPERIMENTS, RATE_GAPS, RELEASE_EXPERIMENTS,
                                         OUTCOME_WORDS, TREND_EXPERIMENTS, TREND_SCORED,
                                         rate_verdicts)
from ....experiments.stats import PairedCI, classify
from ....experiments.trend import gap_change, gap_trend
from ._common import Sources, _code, _db, _header, _interval, _preamble


def _ci(ci: PairedCI, level: float) -> str:
    return _interval(ci.diff, ci.lo, ci.hi, level)


def _choice_line(choice: dict | None) -> str:
    if choice is None:
        return ("- **Learning rate per arm**: no rate has been chosen yet "
                "(`results/lr_pilot/choice.json` is not in this installation).")
    rows = choice["choices"]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    said = "; ".join(f"{_code(t)} " + ", ".join(f"{_code(r['arm'])} {r['chosen']:g}"
                                               for r in rows if r["task"] == t) for t in tasks)
    grid = max(float(k) for r in rows for k in r["values"])
    edge = sum(float(r["chosen"]) == grid and r["chosen"] != r["default"] for r in rows)
    return (f"- **Learning rate per arm** (validation photos, seed 0, `results/lr_pilot/choice.json`): "
            f"{said}; {edge} of the {len(rows)} choices sit at the top of the grid, where a higher "
            "rate was not tried.")


def _rate_lines(src: Sources, choice: dict | None) -> list[str]:
    if choice is None:
        return []
    led = src.ledger()
    verdicts = _verdicts(src, choice)
    out = []
    for task in dict.fromkeys(v.task for v in verdicts):
        mine = [v for v in verdicts if v.task == task]
        both = [v for v in mine if v.changed is not None]
        if not both:
            out.append(f"- **At the chosen rates, {_code(task)}**: not measured yet (its chosen-rate "
                       "runs are still to come), so no verdict can be compared.")
            continue
        parts = []
        for v in both:
            parts.append(f"{_code(v.arm)} − {_code(v.baseline)} {_ci(v.chosen, led.level)}, "
                         f"{OUTCOME_WORDS[v.chosen_outcome]}, against {_ci(v.release, led.level)}, "
                         f"{OUTCOME_WORDS[v.release_outcome]}, with every arm at {v.release_rate:g}: "
                         + ("**changed**" if v.changed else "unchanged"))
        waiting = len(mine) - len(both)
        tail = f"; {waiting} more gap{'s' if waiting != 1 else ''} still to come" if waiting else ""
        out.append(f"- **At the chosen rates, {_code(task)}**: " + "; ".join(parts) + tail + ".")
    return out


def _verdicts(src: Sources, choice: dict) -> list:
    led = src.ledger()
    release = [r for name in RELEASE_EXPERIMENTS for r in src.records(name)]
    chosen = [r for name in CHOSEN_EXPERIMENTS for r in src.records(name)]
    return rate_verdicts(RATE_GAPS, release=release, chosen=chosen, choice=choice,
                         margin=led.margin, level=led.level)


def rate_summary_line(src: Sources, where: str) -> str | None:
    """One bullet for the intro: how many gaps keep their outcome at the chosen rates, and
    each one that changes with both intervals (``where``: the sensitivity chapter's doc)."""
    choice = src.json("lr_pilot/choice.json")
    if choice is None:
        return None
    level = src.ledger().level
    verdicts = _verdicts(src, choice)
    both = [v for v in verdicts if v.changed is not None]
    head = (f"- **At each arm's own learning rate** (chosen on validation photos, {{doc}}`{where}`): ")
    if not both:
        return head + f"none of the {len(verdicts)} gaps has been measured at the chosen rates yet."
    moved = [v for v in both if v.changed]
    text = (f"of the {len(both)} gaps measured at both rates, {len(both) - len(moved)} keep their "
            f"outcome and {len(moved)} change{'s' if len(moved) == 1 else ''}")
    text += "".join(f"; {_code(v.arm)} − {_code(v.baseline)} on {_code(v.task)} is "
                    f"{OUTCOME_WORDS[v.release_outcome]} at {v.release_rate:g} ({_ci(v.release, level)}) "
                    f"and {OUTCOME_WORDS[v.chosen_outcome]} at the chosen rates ({_ci(v.chosen, level)})"
                    for v in moved)
    waiting = len(verdicts) - len(both)
    return head + text + (f"; {waiting} gaps still to come." if waiting else ".")


def _versions_line(src: Sources) -> str | None:
    runs = src.drift()
    if not runs:
        return None
    same = [d for d in runs if d["identical"]]
    worst = max(m["max_abs_per_image"] for d in runs for m in d["test"].values())
    return (f"- **Code versions**: {len(same)} of {len(runs)} runs re-trained at a later commit "
            f"reproduce their records bit for bit (`results/drift/`; largest per-image test "
            f"difference {worst:.2g} dB), so pairing runs across those commits compares arms and "
            "rates, not code.")


def _trend_line(src: Sources, task: str) -> str:
    led = src.ledger()
    by_length = {steps: src.records(name) for steps, name in TREND_EXPERIMENTS[task].items()}
    where = TREND_SCORED[task][None]
    points = gap_trend(by_length, task=task, arm="constyle", baseline="ablated")
    head = f"- **With training length, {_code(task)} ({where})**, `constyle` − `ablated`: "
    if not points:
        return head + "no length has both arms yet, so nothing can be read."
    said = "; ".join(f"{p.steps:,} steps {_ci(p.ci, led.level)}, {OUTCOME_WORDS[classify(p.ci, led.margin)]} "
                     f"({p.ci.n_seeds} seeds)" for p in points)
    missing = [f"{s:,}" for s in TREND_EXPERIMENTS[task] if s not in {p.steps for p in points}]
    if len(points) < 2:
        return head + said + f"; {', '.join(missing)} steps still to come, so no trend can be read yet."
    change = gap_change(points[0], points[-1], level=led.level)
    span = (f"from {change.first:,} to {change.last:,} steps the gap moved {_db(change.diff)} dB "
            f"([{_db(change.lo)}, {_db(change.hi)}])")
    trend = ("it grows with training" if change.lo > 0 else
             "it shrinks with training" if change.hi < 0 else "no change with training is resolved")
    rest = f"; {', '.join(missing)} steps still to come" if missing else ""
    return head + said + f"; {span}: {trend}{rest}."


def _sensitivity(src: Sources) -> str:
    choice = src.json("lr_pilot/choice.json")
    lines = _header() + [_preamble(src, "../notation"), "", _choice_line(choice)]
    lines += _rate_lines(src, choice)
    drift = _versions_line(src)
    if drift:
        lines.append(drift)
    lines += [_trend_line(src, task) for task in TREND_EXPERIMENTS]
    return "\n".join(lines + ["```"])
