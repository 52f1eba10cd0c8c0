"""May two run records be paired?  Only when they trained in the same setting except for
what their arms change.

Within one experiment this holds by construction (one base, one list of common and task
overrides).  Across experiments it must be checked: the guidelines experiment compares its
arms with the CPU campaign's ``constyle`` arm, trained by another file, possibly by another
commit whose configs gained keys.  :func:`check_pairable` compares the two records' resolved
training configs key by key and refuses any difference not explained by one of the two
arms' overrides; a key present in only one record is accepted when it holds the
:class:`~irconstyle.train.TrainConfig` default (a switch added after the other run, left at
the behaviour that run had).  Test set, scoring protocol, images and seed must be equal.
"""
from __future__ import annotations

from typing import Any

from ..train.config import TrainConfig, config_to_dict

__all__ = ["flatten", "override_keys", "config_differences", "check_pairable"]

_MISSING = object()
RUN_SPECIFIC = ("out_dir",)  # differs between any two runs, by design


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b.c": leaf}`` (lists are leaves)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def override_keys(overrides: list[str]) -> list[str]:
    """The dotted keys ``a.b=value`` overrides set."""
    return [o.split("=", 1)[0].strip() for o in overrides]


def _covered(path: str, keys: list[str]) -> bool:
    return any(path == k or path.startswith(k + ".") for k in keys)


def _where(record: dict) -> str:
    r = record["run"]
    return f"{record.get('experiment', {}).get('name', '?')}:{r['task']}/{r['arm']}/seed{r['seed']}"


def config_differences(a: dict, b: dict, *, allowed: list[str] = ()) -> list[str]:
    """Dotted config keys where ``a`` and ``b`` differ, other than those under ``allowed``,
    :data:`RUN_SPECIFIC`, and one-sided keys that hold the TrainConfig default."""
    fa, fb = flatten(a), flatten(b)
    defaults = flatten(config_to_dict(TrainConfig()))
    out = []
    for path in sorted(set(fa) | set(fb)):
        va, vb = fa.get(path, _MISSING), fb.get(path, _MISSING)
        if va == vb or _covered(path, [*allowed, *RUN_SPECIFIC]):
            continue
        one_sided = vb if va is _MISSING else va if vb is _MISSING else _MISSING
        if one_sided is not _MISSING and path in defaults and defaults[path] == one_sided:
            continue
        out.append(f"{path}: {'(absent)' if va is _MISSING else repr(va)} vs "
                   f"{'(absent)' if vb is _MISSING else repr(vb)}")
    return out


def check_pairable(a: dict, b: dict) -> None:
    """Raise ``ValueError`` (naming both runs and every difference) unless records ``a``
    and ``b`` trained and were scored in the same setting apart from their arms' overrides."""
    allowed = [*override_keys(a["experiment"]["arm"]["overrides"]),
               *override_keys(b["experiment"]["arm"]["overrides"])]
    if "optim.lr" in allowed:  # the scaled recipe starts its cosine at the rate: it moves with it
        allowed.append("schedule.eta_mins")
    problems = [f"config {d}" for d in config_differences(a["config"], b["config"],
                                                          allowed=allowed)]
    for key in ("test", "protocol"):
        if a["experiment"].get(key) != b["experiment"].get(key):
            problems.append(f"experiment.{key}: {a['experiment'].get(key)!r} vs "
                            f"{b['experiment'].get(key)!r}")
    if a["images"] != b["images"]:
        problems.append("scored on different test images")
    if a["run"]["seed"] != b["run"]["seed"]:
        problems.append(f"seeds {a['run']['seed']} and {b['run']['seed']}")
    if problems:
        raise ValueError(f"{_where(a)} and {_where(b)} cannot be paired: they differ in more than "
                         f"their arms' overrides ({allowed or 'none'}): " + "; ".join(problems))
