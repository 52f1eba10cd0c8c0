"""A learning rate per arm, chosen on validation photos (issue 23.5).

Every arm of the campaign trained with the release's rate (3e-4); an arm that would do
better at another rate could lose a comparison for that reason alone.  The pilot
(``experiments/lr_pilot*.yml``) trains each arm of the ledger's comparisons at 1e-3 and
2e-3, seed 0, at the campaign's scale, and scores only the validation photos
(``score_test: false``).  The 3e-4 point is the seed-0 run of the arm's own experiment
(its config must equal the pilot's but for the rate: checked).  Each arm takes the rate
with the highest validation PSNR of its EMA weights at the last step, the weights the
campaign scores; the test comparison is then run at the chosen rates.

    from irconstyle.experiments.lr_choice import choose_rates
    choices = choose_rates(pilot_records, home_records)
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from .pairing import config_differences, override_keys

__all__ = ["RateChoice", "pilot_arm", "choose_rates", "write_choices"]

_PILOT_ARM = re.compile(r"^(?P<arm>.+)_lr(?P<rate>[0-9.eE+-]+)$")
SELECT_BY = "ema/psnr"  # the validation metric of the weights the campaign scores


@dataclass(frozen=True)
class RateChoice:
    """One arm on one task: validation PSNR at each rate and the rate chosen."""

    task: str
    arm: str
    values: dict[float, float]   # rate -> validation ema/psnr at the last step (dB)
    chosen: float
    default: float               # the rate of the arm's own experiment

    @property
    def changed(self) -> bool:
        return self.chosen != self.default


def pilot_arm(name: str) -> tuple[str, str]:
    """``"constyle_lr1e-3"`` -> ``("constyle", "1e-3")``; a name without the suffix is refused."""
    m = _PILOT_ARM.match(name)
    if m is None:
        raise ValueError(f"pilot arm {name!r} is not named <arm>_lr<rate>")
    return m["arm"], m["rate"]


def _where(r: dict) -> str:
    run = r["run"]
    return f"{r.get('experiment', {}).get('name', '?')}:{run['task']}/{run['arm']}/seed{run['seed']}"


def _last_validation(r: dict) -> float:
    metrics = (r.get("validation") or {}).get("metrics") or {}
    if SELECT_BY not in metrics:
        raise KeyError(f"{_where(r)}: no validation {SELECT_BY!r} (validation off?)")
    return float(metrics[SELECT_BY])


def choose_rates(pilot: Sequence[dict], home: Sequence[dict], *, seed: int = 0) -> list[RateChoice]:
    """One :class:`RateChoice` per (task, arm) of the pilot records ``pilot``, whose default
    rate's run is found among ``home`` (the seed-``seed`` records of the arms' own
    experiments).  A pilot record whose config differs from its home run in more than
    the rate and the arms' overrides is refused, naming both runs and the keys."""
    homes = {(r["run"]["task"], r["run"]["arm"]): r for r in home if r["run"]["seed"] == seed}
    grouped: dict[tuple[str, str], dict[float, float]] = {}
    for r in pilot:
        if r["run"]["seed"] != seed:
            continue
        arm, _ = pilot_arm(r["run"]["arm"])
        task = r["run"]["task"]
        base = homes.get((task, arm))
        if base is None:
            raise KeyError(f"{_where(r)}: no seed-{seed} record of arm {arm!r} on {task!r} "
                           "among the home experiments' records (the default rate's point)")
        # the scaled recipe starts its cosine at the rate (schedule.eta_mins), so both move
        allowed = ["optim.lr", "schedule.eta_mins", *override_keys(r["experiment"]["arm"]["overrides"]),
                   *override_keys(base["experiment"]["arm"]["overrides"])]
        diffs = config_differences(r["config"], base["config"], allowed=allowed)
        if diffs:
            raise ValueError(f"{_where(r)} and {_where(base)} differ in more than the rate: "
                             + "; ".join(diffs))
        values = grouped.setdefault((task, arm), {float(base["config"]["optim"]["lr"]):
                                                  _last_validation(base)})
        values[float(r["config"]["optim"]["lr"])] = _last_validation(r)
    out = []
    for (task, arm), values in grouped.items():
        default = float(homes[(task, arm)]["config"]["optim"]["lr"])
        best = max(values, key=lambda lr: (values[lr], lr == default))  # ties keep the default
        out.append(RateChoice(task, arm, dict(sorted(values.items())), best, default))
    return sorted(out, key=lambda c: (c.task, c.arm))


def write_choices(choices: Sequence[RateChoice], path: str | os.PathLike, *,
                  sources: dict[str, list[str]]) -> Path:
    """``choice.json``: the table, the metric chosen by and where the records came from."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"select_by": f"validation {SELECT_BY} at the last step, seed 0",
            "sources": sources,
            "choices": [{**asdict(c), "values": {f"{k:g}": round(v, 4) for k, v in c.values.items()},
                         "changed": c.changed} for c in choices]}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m irconstyle.experiments.lr_choice --pilot DIR --home DIR ... --out FILE``:
    the choice from record folders (paths written as given: run it from the repository
    root with relative paths, so the file names no machine)."""
    import argparse

    from .records import load_records

    parser = argparse.ArgumentParser(description="choose a learning rate per arm on validation")
    parser.add_argument("--pilot", action="append", required=True, help="a pilot's records folder")
    parser.add_argument("--home", action="append", required=True,
                        help="a folder of the arms' own experiments (their seed-0 runs)")
    parser.add_argument("--task", action="append", help="only these tasks (default: all the pilot's)")
    parser.add_argument("--out", required=True, help="where to write choice.json")
    args = parser.parse_args(argv)

    def gather(folders: list[str]) -> tuple[list[dict], list[str]]:
        recs, names = [], []
        for folder in folders:
            for path in sorted(Path(folder).glob("*/*/seed*.json")):
                if "runs" in path.parts:
                    continue
                rec = json.loads(path.read_text())
                if args.task and rec["run"]["task"] not in args.task:
                    continue
                recs.append(rec)
                names.append(path.as_posix())
        return recs, names

    pilot, pilot_files = gather(args.pilot)
    home, home_files = gather(args.home)
    choices = choose_rates(pilot, home)
    # the sources: every pilot record, and the home runs that gave a 3e-4 point
    used = {(c.task, c.arm) for c in choices}
    home_used = [f for f, r in zip(home_files, home)
                 if r["run"]["seed"] == 0 and (r["run"]["task"], r["run"]["arm"]) in used]
    write_choices(choices, args.out, sources={"pilot": pilot_files, "home": home_used})
    for c in choices:
        print(f"{c.task:10s} {c.arm:16s} " + "  ".join(f"{k:g}: {v:.2f}" for k, v in c.values.items())
              + f"  -> {c.chosen:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
