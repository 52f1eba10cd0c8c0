"""Key-results boxes: for the intro page and the end of each science chapter, what the paper
says, what was measured, at what scale and with what confidence, one sentence a finding.

Every number in a box is formatted here from the committed evidence (the claims ledger, the
run records, the latent measures), never typed, so a box cannot drift from its records:
``python -m irconstyle.book.evidence.synthesis --write`` puts the boxes into ``book/intro.md``
(between :data:`START` and :data:`END`) and into each chapter's markdown cell tagged
:data:`TAG`, and tests/test_synthesis.py fails when the book holds anything else.

One sign convention everywhere: the paper's choice minus the alternative (a chapter that
prints "arm minus ConStyle" is turned round here), PSNR on RGB in dB of the EMA weights, the
mean over seeds and test photos with its 95% interval over both (the seed is the unit that
repeats), words by the ledger's rule (:data:`irconstyle.experiments.claims.RULE`).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...experiments.claims import VERDICTS, Claim, Comparison, Ledger
from ...experiments.cost import RECIPE_STEPS
from ...experiments.summary import ArmComparison, compare_to_reference
from ...experiments.report import fmt
from ...experiments.stats import PairedCI, classify, random_effects_ci, seed_t_ci
from ...train.config import ConStyleConfig

if TYPE_CHECKING:  # pandas is a dependency of the book, not of the package
    import pandas as pd

__all__ = ["CHAPTERS", "NOTEBOOKS", "TAG", "START", "END", "SUMMARY_HEADINGS", "Sources",
           "box", "boxes", "ledger_frame", "ledger_notes", "styled", "write_intro",
           "write_notebook", "write", "stale", "main"]

CHAPTERS = ("intro", "guidelines", "latent_space", "ablations", "results",
            "training_small_scale", "evaluation")
NOTEBOOKS = CHAPTERS[1:]  # book/notebooks/<key>.ipynb
TAG = "key-results"       # the tag (and the id, when the writer inserts it) of a chapter's box cell
START, END = "<!-- key-results:start -->", "<!-- key-results:end -->"
# The writer inserts a missing box cell before the last markdown cell opening with one of
# these (the chapter's closing summary, which the box then introduces), else at the end.
SUMMARY_HEADINGS = ("## Summary", "## What we found")
# The paper's three U-Nets (ConStyle-X against X), by the package's model names.
BACKBONES = {"nafnet": "NAFNet", "restormer": "Restormer", "maxim": "MAXIM"}
# Training task -> the degradation type of the latent measures it trains on.
TRAINED_ON = {"denoise": "noise", "deblur": "blur", "derain": "rain", "dehaze": "haze"}


class Sources:
    """What the boxes read: the committed evidence (:mod:`irconstyle.book.evidence`) unless a test
    hands in its own ledger, records (by experiment folder) or latent measures."""

    def __init__(self, *, ledger: Ledger | None = None,
                 records: Mapping[str, list[dict]] | None = None,
                 latent: Mapping[str, dict] | None = None) -> None:
        self._ledger = ledger
        self._records = dict(records or {})
        self._latent = dict(latent or {})
        self._given = set(self._records)

    def ledger(self) -> Ledger:
        if self._ledger is None:
            from . import ledger
            self._ledger = ledger()
        return self._ledger

    def records(self, name: str) -> list[dict]:
        """``results/<name>/``'s run records; none for an experiment not run yet."""
        if name not in self._records:
            from . import exists, records
            self._records[name] = records(name) if exists(name) else []
        return self._records[name]

    def latent(self, name: str = "codes") -> dict:
        if name not in self._latent:
            from . import latent
            self._latent[name] = latent(name)
        return self._latent[name]

    def experiments(self) -> list[str]:
        """Every experiment folder with records (the committed ones and any handed in)."""
        from . import experiment_names
        return sorted(set(experiment_names()) | self._given)

    def planned(self, name: str) -> tuple[list[str], list[int]] | None:
        """(arms, seeds) of ``experiments/<name>.yml``; None without that file."""
        from . import EvidenceMissing, spec
        try:
            s = spec(name)
        except EvidenceMissing:
            return None
        return list(s.arms), list(s.seeds)


# --------------------------------------------------------------------------- formatting
def _db(value: float) -> str:
    """A signed PSNR difference at 0.01 dB, the finest a few CPU seeds support."""
    text = fmt(value, 2)
    return text if text.startswith("-") or float(text) == 0 else "+" + text


def _val(value: float) -> str:
    """A latent measure (silhouette, accuracy, share) at two decimals."""
    return fmt(value, 2)


def _interval(diff: float, lo: float, hi: float, level: float, unit: str = " dB",
              show=_db) -> str:
    return f"{show(diff)}{unit} ({fmt(100 * level, 0)}% CI [{show(lo)}, {show(hi)}])"


def _device(records: Sequence[dict]) -> str:
    kinds = {str(r.get("provenance", {}).get("device") or "unknown device") for r in records}
    return "/".join(sorted("GPU" if k.startswith("cuda") else k.upper() if k == "cpu" else k
                           for k in kinds))


def _scale(*, n_seeds: int, n_images: int, test: str, width: Any, steps: int, batch: int,
           patch: Any, device: str) -> str:
    """The setting of a measurement in one clause, as a fraction of the release's steps."""
    parts = [f"{n_seeds} seeds × {n_images} {test}-set test photos",
             f"width {width}" if width is not None else "the release's width",
             f"{steps:,} steps ({steps / RECIPE_STEPS:.3%} of the release's)", f"batch {batch}"]
    if patch:
        parts.append(f"{patch}×{patch} patches")
    return ", ".join(parts + ([device] if device else []))


def _record_scale(record: dict, n_seeds: int, n_images: int, device: str) -> str:
    cfg = record["config"]
    return _scale(n_seeds=n_seeds, n_images=n_images, test=record["experiment"]["test"]["kind"],
                  width=cfg["model"]["kwargs"].get("width"), steps=cfg["total_iters"],
                  batch=cfg["batch_size"], patch=cfg["data"]["train"]["kwargs"].get("patch_size"),
                  device=device)


def _source(text: str) -> str:
    """A claim's source without its address (the ledger and the results chapter keep it)."""
    return re.sub(r",?\s*https?://[^\s;,]+", "", text).strip()


def _quote(text: str) -> str:
    return "“" + text.strip().rstrip(".") + "”"


def _code(name: str) -> str:
    return f"`{name}`"


def _header(title: str = "Key results") -> list[str]:
    return [f"```{{admonition}} {title}", ":class: tip"]


def _preamble(src: Sources, notation: str) -> str:
    led = src.ledger()
    return ("Generated from the committed records by `python -m irconstyle.book.evidence.synthesis "
            "--write`. Differences are the paper's choice minus the alternative (notation: "
            f"{{doc}}`{notation}`): PSNR on RGB in dB of the EMA weights, the mean over seeds and "
            f"test photos with its {fmt(100 * led.level, 0)}% interval over both (the seed is the "
            "unit that repeats); verdicts by the claims ledger's rule, where an interval inside "
            f"±{led.margin:g} dB is negligible.")


def _outcome(ci: PairedCI, margin: float, choice: str, alternative: str) -> str:
    """The ledger's rule in words for a comparison the ledger does not hold (no Holm)."""
    return {"negligible": f"negligible (inside ±{margin:g} dB)",
            "above": f"favours {choice}", "below": f"favours {alternative}",
            "unresolved": "unresolved"}[classify(ci, margin)]


def _finding(label: str, ci: PairedCI, led: Ledger, choice: str, alternative: str) -> str:
    """``label``, the difference with its interval, and the ledger's rule in words."""
    return (f"{label} {_interval(ci.diff, ci.lo, ci.hi, led.level)}, "
            f"{_outcome(ci, led.margin, choice, alternative)}")


def _shift(ci: PairedCI, margin: float) -> str:
    """The ledger's rule in words for a change of protocol (no side is anyone's choice)."""
    return {"negligible": f"negligible (inside ±{margin:g} dB)", "above": "a resolved rise",
            "below": "a resolved fall", "unresolved": "unresolved"}[classify(ci, margin)]


# --------------------------------------------------------------------------- the ledger
def _comparison_records(src: Sources, comp: Comparison) -> list[dict]:
    if comp.kind == "params_table":
        return []
    return [r for r in src.records(comp.results)
            if r["run"]["task"] == comp.task and r["run"]["arm"] == comp.arm]


def _ledger_scale(src: Sources, comp: Comparison) -> str | None:
    m = comp.measured
    if m is None or comp.kind == "params_table":
        return None
    return _scale(n_seeds=m["n_seeds"], n_images=m["n_images"], test=m["test"]["kind"],
                  width=m["model"]["kwargs"].get("width"), steps=m["total_iters"],
                  batch=m["batch_size"], patch=m.get("patch_size"),
                  device=_device(_comparison_records(src, comp)))


def _pair_label(comp: Comparison) -> str:
    on = f" on {_code(comp.task)}" if comp.task else ""
    return f"{_code(comp.arm)} − {_code(comp.baseline)}{on}"


def _measured(comp: Comparison, level: float) -> str:
    m = comp.measured
    if m is None:
        return f"{_pair_label(comp)} untested (no committed records)"
    if comp.kind == "difference":
        return f"{_pair_label(comp)} {_interval(m['diff'], m['lo'], m['hi'], level)}"
    macs = (f"; {m['macs_arm'] / m['macs_baseline']:.0%} of the baseline's multiply-accumulates "
            f"per {'×'.join(str(s) for s in m['input_size'][-2:])} image"
            if m.get("macs_arm") and m.get("macs_baseline") and m.get("input_size") else "")
    return (f"{_code(comp.arm)} against {_code(comp.baseline)} {m['value']:.1%} fewer inference "
            f"parameters ({m['params_arm'] / 1e6:.2f}M against {m['params_baseline'] / 1e6:.2f}M"
            f"{macs}), from `{m['source']}`, no training involved")


def _trained_backbones(src: Sources) -> set[str]:
    """The package's model names that some committed record trained."""
    return {r["config"]["model"]["name"] for name in src.experiments() for r in src.records(name)}


def _backbone_gap(src: Sources, claim: Claim) -> str:
    """The backbones a claim names that no record trained ConStyle on."""
    trained = _trained_backbones(src)
    missing = [label for key, label in BACKBONES.items()
               if re.search(rf"\b{label}\b", claim.claim, re.IGNORECASE)
               and f"constyle_{key}" not in trained]
    if not missing:
        return ""
    names = " or ".join(_code(f"constyle_{k}") for k, v in BACKBONES.items() if v in missing)
    return f"; {' and '.join(missing)} untested: no committed record trains {names}"


def _claim_line(src: Sources, claim: Claim) -> str:
    level = src.ledger().level
    tests = [c for c in claim.comparisons if c.role == "test"]
    done = [c for c in tests if c.measured is not None]
    texts = [_measured(c, level) + (f", {c.verdict}" if len(done) > 1 else "") for c in done]
    scales = [_ledger_scale(src, c) for c in done]
    if len(set(scales)) == 1 and scales[0]:  # one scale: said once, after the measurements
        texts = ["; ".join(texts) + f" at {scales[0]}"]
    else:
        texts = [t + (f" at {s}" if s else "") for t, s in zip(texts, scales)]
    texts += [_measured(c, level) for c in tests if c.measured is None]
    ours = "; ".join(texts) or "no comparison tests it"
    return (f"- **{_code(claim.id)}**: the paper, {_quote(claim.claim)} ({_source(claim.source)}); "
            f"ours, {ours}{_backbone_gap(src, claim)}; verdict **{claim.verdict}** "
            f"(Holm: {claim.verdict_holm}).")


def _context_line(src: Sources, claim: Claim) -> str | None:
    """What the U-Net template without ConStyle accounts for (the ledger's context rows)."""
    ctx = [c for c in claim.comparisons if c.role == "context"]
    if not ctx:
        return None
    level = src.ledger().level
    measured = [c for c in ctx if c.measured is not None]
    parts = [f"{_measured(c, level)}, {c.verdict}" for c in measured]
    untested = [c for c in ctx if c.measured is None]
    if untested:
        parts.append("untested: " + ", ".join(_pair_label(c) for c in untested)
                     + " (no committed records)")
    own = [c for c in claim.comparisons if c.role == "test" and c.measured is not None
           and c.kind == "difference"]
    verdict = ""
    for test in own:
        same = [c for c in measured if c.task == test.task and c.baseline == test.baseline]
        if not same:
            continue
        bigger = [c.measured["diff"] >= test.measured["diff"] for c in same]
        ref = (f"{_code(test.arm)}'s own {_db(test.measured['diff'])} dB "
               f"on {_code(test.task)}")
        if all(bigger):
            verdict += (f"; each point estimate is at least {ref}: at this scale the gap comes "
                        "with the U-Net template, not with ConStyle")
        elif not any(bigger):
            verdict += f"; each point estimate is below {ref}: ConStyle adds to the template's gap"
        else:
            verdict += f"; the point estimates lie on both sides of {ref}"
    return (f"- **What the template accounts for** ({_code(claim.id)}'s context comparisons, part "
            f"of no verdict): " + "; ".join(parts) + verdict + ".")


def _untested_line(src: Sources) -> str:
    led = src.ledger()
    missing: dict[str, list[str]] = {}
    for claim in led.claims:
        for c in claim.comparisons:
            if c.measured is None:
                missing.setdefault(f"{_code(c.arm)} − {_code(c.baseline)}", []).append(
                    _code(c.task) if c.task else "")
    parts = [f"{pair}{' on ' + ', '.join(t for t in tasks if t) if any(tasks) else ''}"
             for pair, tasks in missing.items()]
    bare = [_code(c.id) for c in led.claims if not c.comparisons]
    text = []
    if parts:
        text.append("; ".join(parts) + " (no committed records yet)")
    if bare:
        text.append(", ".join(bare) + " (no comparison)")
    trained = _trained_backbones(src)
    absent = [label for key, label in BACKBONES.items() if f"constyle_{key}" not in trained]
    if absent:
        text.append(f"ConStyle on {' and '.join(absent)} (no committed record trains "
                    f"{'them' if len(absent) > 1 else 'it'})")
    devices = {_device([r]) for name in src.experiments() for r in src.records(name)}
    if "GPU" not in devices:
        gpu = src.planned("gpu_campaign")
        text.append("anything on a GPU: every committed record ran on "
                    + (" and ".join(f"a {d}" for d in sorted(devices)) or "no device")
                    + ("; the GPU campaign (`experiments/gpu_campaign.yml`) has no records"
                       if gpu is not None and not src.records("gpu_campaign") else ""))
    return "- **Untested**: " + "; ".join(text) + "."


def _tally(claims: Sequence[Claim]) -> str:
    def count(attr: str) -> str:
        c = Counter(getattr(x, attr) for x in claims)
        return ", ".join(f"{c[v]} {v}" for v in VERDICTS if c[v])
    return (f"The ledger's {len(claims)} claims: {count('verdict')} "
            f"(after Holm's adjustment: {count('verdict_holm')}).")


def _ledger_box(src: Sources, notation: str, *, more: str | None = None) -> str:
    led = src.ledger()
    lines = [*_header(), _preamble(src, notation) + " " + _tally(led.claims), ""]
    lines += [_claim_line(src, c) for c in led.claims]
    lines += [x for x in (_context_line(src, c) for c in led.claims) if x]
    lines.append(_untested_line(src))
    if more:
        lines += ["", more]
    return "\n".join(lines + ["```"])


# --------------------------------------------------------------------------- from records
def _compare(src: Sources, name: str, arms: Sequence[str], *, reference: str = "constyle",
             reference_name: str | None = None, metric: str = "psnr_rgb",
             weights: str = "ema") -> list[ArmComparison]:
    """The reference (the paper's choice) minus each arm, as the chapters compare them."""
    records = src.records(name)
    ref = src.records(reference_name) if reference_name else None
    if not records or (reference_name and not ref):
        return []
    level = src.ledger().level
    return [c for c in compare_to_reference(records, reference, reference_records=ref, arms=arms,
                                            metric=metric, weights=weights, level=level,
                                            reference_first=True)
            if c.arm in arms and c.ci is not None]


def _ref_records(src: Sources, name: str, reference_name: str | None, task: str,
                 reference: str = "constyle") -> list[dict]:
    return [r for r in src.records(reference_name or name)
            if r["run"]["task"] == task and r["run"]["arm"] == reference]


def _group_line(src: Sources, title: str, name: str, arms: Sequence[str], *,
                reference_name: str | None = None, choice: str = "full ConStyle",
                note: str = "") -> str:
    comps = _compare(src, name, arms, reference_name=reference_name)
    if not comps:
        return (f"- **{title}** ({', '.join(_code(a) for a in arms)}): untested, no committed "
                f"records in `results/{name}/`.")
    items = [_finding(f"minus {_code(c.arm)} on {_code(c.task)}", c.ci, src.ledger(), choice,
                      "the alternative") for c in comps]
    ref = _ref_records(src, name, reference_name, comps[0].task)
    scales = {_record_scale(ref[0], len(c.seeds), len(c.images), _device(ref)) for c in comps}
    against = (f"the reference re-run in `results/{reference_name}/`" if reference_name
               else f"the `constyle` arm of `results/{name}/`")
    missing = [a for a in arms if a not in {c.arm for c in comps}]
    gap = (f"; no paired records for {', '.join(_code(a) for a in missing)}" if missing else "")
    return (f"- **{title}** ({choice} against {against}{note}): " + "; ".join(items) + gap
            + f"; scale: {'; '.join(sorted(scales))}.")


def _planned_gap(src: Sources, name: str) -> str:
    """Arms and seeds an experiment file plans that have no committed records."""
    plan = src.planned(name)
    if plan is None:
        return ""
    arms, seeds = plan
    recs = src.records(name)
    have_arms = {r["run"]["arm"] for r in recs}
    have_seeds = {r["run"]["seed"] for r in recs}
    parts = []
    no_arms = [a for a in arms if a not in have_arms]
    if no_arms:
        parts.append(f"arm{'s' if len(no_arms) > 1 else ''} {', '.join(_code(a) for a in no_arms)}")
    no_seeds = [s for s in seeds if s not in have_seeds]
    if no_seeds:
        parts.append(f"seed{'s' if len(no_seeds) > 1 else ''} {', '.join(map(str, no_seeds))}")
    if not parts:
        return ""
    return (f"`experiments/{name}.yml` plans {' and '.join(parts)}, with no committed records "
            "yet")


# --------------------------------------------------------------------------- the chapters
def _intro(src: Sources) -> str:
    more = ("Each claim is taken apart in {doc}`notebooks/results`; the guidelines in "
            "{doc}`notebooks/guidelines`, the parts of ConStyle in {doc}`notebooks/ablations`, "
            "the codes in {doc}`notebooks/latent_space`.")
    return _ledger_box(src, "notation", more=more)


def _results(src: Sources) -> str:
    return _ledger_box(src, "../notation")


def _guidelines(src: Sources) -> str:
    led = src.ledger()
    lines = [*_header(), _preamble(src, "../notation"), ""]
    claims = [c for c in led.claims if c.id.startswith("guideline_")]
    lines += [_claim_line(src, c) for c in claims]
    sweep = _compare(src, "guidelines", ["k64", "k3840"], reference_name="cpu_campaign")
    if sweep:
        ref = _ref_records(src, "guidelines", "cpu_campaign", sweep[0].task)
        k_ref = ref[0]["config"]["constyle"].get("queue_size")
        by_arm = {r["run"]["arm"]: r["config"]["constyle"].get("queue_size")
                  for r in src.records("guidelines")}
        items = [_finding(f"K = {by_arm.get(c.arm)} ({_code(c.arm)})", c.ci, led, f"K = {k_ref}",
                          "the alternative") for c in sweep]
        scale = _record_scale(ref[0], len(sweep[0].seeds), len(sweep[0].images), _device(ref))
        lines.append(f"- **The queue's size** (guideline 1 asks for enough negatives, not for a "
                     f"size: no verdict), the reference's K = {k_ref} minus " + "; ".join(items)
                     + f"; scale: {scale}.")
    tasks = sorted({r["run"]["task"] for r in src.records("guidelines")})
    gap = _planned_gap(src, "guidelines")
    lines.append("- **Untested**: every guideline on any task but "
                 + " and ".join(_code(t) for t in tasks)
                 + " (no guideline arm trained on another)" + (f"; {gap}" if gap else "") + ".")
    return "\n".join(lines + ["```"])


_ENCODER = re.compile(r"results/(?P<exp>[^/]+)/runs/(?P<task>[^/]+)/(?P<arm>[^/]+)/"
                      r"seed(?P<seed>\d+)/[^/]+$")
_MEASURES = {"silhouette": ("silhouette of the degradation type",
                            lambda m: m["silhouette_degradation"]),
             "knn": ("k-NN accuracy of the type from other photos' codes",
                     lambda m: m["knn_accuracy_degradation_leave_photo_out"]),
             "own": ("share of degraded codes nearest their own clean photo's",
                     lambda m: m["own_clean"]["all"]["own_nearer_than_every_other"])}


def _encoders(src: Sources, report: dict) -> dict[str, dict[int, tuple[dict, dict | None]]]:
    """label -> seed -> (the encoder's measures, its run record; None when untrained)."""
    out: dict[str, dict[int, tuple[dict, dict | None]]] = {}
    for name, enc in report["encoders"].items():
        m = _ENCODER.search(name)
        if m is None:  # an untrained encoder, "untrained_seed<s>"
            out.setdefault("untrained", {})[int(enc["seed"])] = (enc, None)
            continue
        exp, task, arm, seed = m["exp"], m["task"], m["arm"], int(m["seed"])
        rec = next((r for r in src.records(exp) if r["run"] == {"task": task, "arm": arm,
                                                                 "seed": seed}), None)
        out.setdefault(arm, {})[seed] = (enc, rec)
    return out


def _seed_ci(values: Sequence[float], level: float) -> PairedCI:
    """The t interval over seeds of one measure (one value per seed)."""
    return seed_t_ci([[v] for v in values], [[0.0] for _ in values], level=level)


def _latent_space(src: Sources) -> str:
    led = src.ledger()
    report = src.latent("codes")
    encs = _encoders(src, report)
    lines = [*_header(), _preamble(src, "../notation"), ""]
    g3 = next((c for c in led.claims if "pretext" in c.id), None)
    if g3 is not None:
        lines.append(f"- **The paper**: the ledger holds no claim on the codes themselves; the "
                     f"nearest is {_code(g3.id)}, {_quote(g3.claim)} ({_source(g3.source)}), "
                     f"judged on restored PSNR: **{g3.verdict}** (Holm: {g3.verdict_holm}).")
    first = next(iter(report["encoders"].values()))["raw"]
    counts = [1] + [len(v) for v in report["strengths"].values()]
    n_cond, n_types = sum(counts), len(counts)
    chance = sum(c * c for c in counts) / n_cond ** 2
    pretext = {arm: (next(iter(s.values()))[1] or {}).get("config", {}).get("constyle", {})
               .get("pretext", ConStyleConfig().pretext) for arm, s in encs.items()
               if arm != "untrained"}
    label = {arm: (f"{_code(arm)} ({pretext[arm]} pretext)" if arm in pretext else "untrained")
             for arm in encs}
    raw_all = [e[sp]["silhouette_degradation"] for s in encs.values() for e, _ in s.values()
               for sp in ("raw", "normalized")]
    for key, (what, get) in _MEASURES.items():
        parts = []
        for arm, seeds in encs.items():
            vals = [get(seeds[s][0]["raw"]) for s in sorted(seeds)]
            ci = _seed_ci(vals, led.level)
            parts.append(f"{label[arm]} {_interval(ci.diff, ci.lo, ci.hi, led.level, '', _val)}")
        tail = {"silhouette": (f"; {sum(v < 0 for v in raw_all)} of {len(raw_all)} silhouettes "
                               "(every encoder and seed, raw and L2-normalised codes) are negative"
                               + (": no encoder's codes cluster by degradation type"
                                  if all(v < 0 for v in raw_all) else "")),
                "knn": f"; guessing by the types' frequencies scores {_val(chance)}",
                "own": f"; a code that kept nothing of its scene scores 1/{first['n_photos']}, "
                       f"{_val(1 / first['n_photos'])}"}[key]
        lines.append(f"- **{what[0].upper() + what[1:]}** ({first['n_codes']} raw codes of "
                     f"{first['n_photos']} test photos × {n_cond} conditions, {n_types} types; "
                     f"mean over seeds, interval over seeds): " + "; ".join(parts) + tail + ".")
    choice = next((a for a, p in pretext.items() if p == ConStyleConfig().pretext), None)
    others = [a for a in pretext if a != choice]
    for alt in others:
        seeds = sorted(set(encs[choice]) & set(encs[alt]))
        parts = []
        for key, (what, get) in _MEASURES.items():
            a = [[get(encs[choice][s][0]["raw"])] for s in seeds]
            b = [[get(encs[alt][s][0]["raw"])] for s in seeds]
            ci = seed_t_ci(a, b, level=led.level)
            word = {1: "above 0", -1: "below 0", 0: "unresolved"}[ci.excludes_zero()]
            parts.append(f"{what} {_interval(ci.diff, ci.lo, ci.hi, led.level, '', _val)}, {word}")
        lines.append(f"- **The paper's pretext minus the alternative** ({_code(choice)} − "
                     f"{_code(alt)}, paired by seed over {len(seeds)} seeds; no margin is defined "
                     "for these measures, so only an interval that excludes 0 says anything): "
                     + "; ".join(parts) + ".")
    recs = [r for s in encs.values() for _, r in s.values() if r is not None]
    if recs:
        trained = sorted({r["config"]["data"]["train"]["kwargs"].get("task") for r in recs})
        sigma = sorted({r["config"]["data"]["train"]["kwargs"].get("sigma") for r in recs} - {None})
        types = [t for t in report["strengths"] if t not in {TRAINED_ON.get(x) for x in trained}]
        n_seeds = sorted({len(s) for a, s in encs.items() if a != "untrained"})
        scale = _record_scale(recs[0], n_seeds[0], len(recs[0]["images"]), _device(recs))
        on = " and ".join(_code(t) for t in trained) + (
            f" (sigma {', '.join(f'{s:g}' for s in sigma)})" if sigma else "")
        lines.append(f"- **Scale, and what is untested**: the trained encoders are the last "
                     f"checkpoints of runs trained on {on} only, at {scale}; "
                     f"{', '.join(types)} never appeared in their training data, and no encoder "
                     "trained on another task was encoded.")
    return "\n".join(lines + ["```"])


def _ablations(src: Sources) -> str:
    led = src.ledger()
    lines = [*_header(), _preamble(src, "../notation"), ""]
    enc = next((c for c in led.claims if any(x.baseline == "ablated" for x in c.comparisons)), None)
    if enc is not None:
        lines.append(f"- **The paper**: of ConStyle's parts the ledger holds a claim on one, the "
                     f"encoder, {_code(enc.id)} ({_quote(enc.claim)}): **{enc.verdict}** (Holm: "
                     f"{enc.verdict_holm}); the other parts below have no claim, and the paper's "
                     "choice is full ConStyle as released.")
    lines.append(_group_line(src, "ConStyle's three losses together", "cpu_campaign",
                             ["constyle_nolosses"]))
    for title, arms, note in (
            ("Each loss alone", ["no_infonce", "no_content", "no_style"], ""),
            ("The switch point", ["switch_never", "switch_early"], ""),
            ("Raw against normalised codes", ["normalized"], ""),
            ("The release's freeze and EMA", ["freeze_release", "ema_release"],
             "; here the alternative is the release's own behaviour, the reference the "
             "package's fixed default")):
        lines.append(_group_line(src, title, "ablations", arms, reference_name="reference_rerun",
                                 note=note))
    lines.append(_group_line(src, "The controls", "cpu_campaign",
                             ["ablated", "general", "nafnet_matched"]))
    drift = _drift_line(src)
    if drift:
        lines.append(drift)
    gap = _planned_gap(src, "ablations")
    if gap:
        lines.append(f"- **Untested**: {gap}.")
    return "\n".join(lines + ["```"])


def _drift_line(src: Sources) -> str | None:
    """The reference re-run at the ablations' code against the campaign's own records."""
    rerun = [{**r, "run": {**r["run"], "arm": "constyle_rerun"}}
             for r in src.records("reference_rerun") if r["run"]["arm"] == "constyle"]
    if not rerun or not src.records("cpu_campaign"):
        return None
    led = src.ledger()
    comps = [c for c in compare_to_reference(rerun, "constyle", level=led.level,
                                             reference_records=src.records("cpu_campaign"))
             if c.ci is not None]
    items = [_finding(f"on {_code(c.task)}", c.ci, led, "the re-run", "the original")
             + f", one photo moving by up to {fmt(float(abs(c.diffs).max()), 2)} dB" for c in comps]
    commits = sorted({(r["provenance"].get("git_commit") or "unknown")[:8] for r in rerun})
    return ("- **The reference, re-run by the ablations' code** (" + ", ".join(commits) + "; re-run "
            "minus the campaign's own records, the same seeds and photos): " + "; ".join(items)
            + "; the ablation arms are therefore paired with the re-run.")


def _training_small_scale(src: Sources) -> str:
    led = src.ledger()
    lines = [*_header(), _preamble(src, "../notation"), ""]
    paper = [c for c in led.claims if any(x.results == "cpu_campaign"
                                           and x.baseline.startswith("nafnet")
                                           for x in c.comparisons)]
    lines += [_claim_line(src, c) for c in paper]
    controls = ["constyle_nolosses", "ablated", "general", "nafnet_matched"]
    comps = _compare(src, "cpu_campaign", controls)
    desc = {r["run"]["arm"]: r["experiment"]["arm"]["description"]
            for r in src.records("cpu_campaign")}
    for arm in controls:
        mine = [c for c in comps if c.arm == arm]
        if not mine:
            lines.append(f"- **{_code(arm)}**: untested, no committed records.")
            continue
        items = [_finding(f"on {_code(c.task)}", c.ci, led, "ConStyle-NAFNet", _code(arm))
                 for c in mine]
        lines.append(f"- **{_code(arm)}**, {desc.get(arm, 'no description')}: ConStyle-NAFNet "
                     "minus it " + "; ".join(items) + ".")
    if comps:
        scales = []
        for task in dict.fromkeys(c.task for c in comps):
            ref = _ref_records(src, "cpu_campaign", None, task)
            frozen = ref[0]["config"].get("constyle_iters")
            c = next(x for x in comps if x.task == task)
            scale = _record_scale(ref[0], len(c.seeds), len(c.images), _device(ref))
            frozen_at = ("ConStyle never frozen" if frozen is None
                         else f"ConStyle frozen after step {frozen}")
            scales.append(f"{_code(task)}: {scale}, {frozen_at}")
        gap = _planned_gap(src, "cpu_campaign")
        lines.append("- **Scale, and what is untested**: " + "; ".join(scales)
                     + (f"; {gap}" if gap else "") + "; the chapter's live runs are "
                     "demonstrations and enter no box.")
    return "\n".join(lines + ["```"])


def _grid(records: Sequence[dict], seeds: Sequence[int], weights: str,
          metric: str) -> list[list[float]]:
    by_seed = {r["run"]["seed"]: r for r in records}
    return [[float(v) for v in by_seed[s]["metrics"][weights][metric]] for s in seeds]


def _evaluation(src: Sources) -> str:
    led = src.ledger()
    lines = [*_header(), _preamble(src, "../notation"), ""]
    heads = [(cl, c) for cl in led.claims for c in cl.comparisons
             if c.role == "test" and c.kind == "difference" and c.claimed is not None
             and c.measured is not None]
    fields = sorted({(c.metric, c.weights) for cl in led.claims for c in cl.comparisons
                     if c.kind == "difference"})
    lines.append("- **The paper, and the ledger**: the ledger scores every comparison by "
                 + ", ".join(f"`{m}` of the `{w}` weights" for m, w in fields)
                 + "; which channel and which weights the paper's tables use is unknown "
                 "(sections (b) and (d)), so the two other choices are measured on the "
                 "committed records below.")
    for claim, comp in heads:
        recs = src.records(comp.results)
        base = (comp.baseline_results or comp.results)
        a = [r for r in recs if r["run"]["task"] == comp.task and r["run"]["arm"] == comp.arm]
        b = [r for r in src.records(base) if r["run"]["task"] == comp.task
             and r["run"]["arm"] == comp.baseline]
        seeds = sorted({r["run"]["seed"] for r in a} & {r["run"]["seed"] for r in b})
        if not seeds:
            continue

        def diff(weights: str, metric: str) -> list[list[float]]:
            ga, gb = _grid(a, seeds, weights, metric), _grid(b, seeds, weights, metric)
            return [[x - y for x, y in zip(ra, rb)] for ra, rb in zip(ga, gb)]

        ledger_way = diff(comp.weights, comp.metric)
        zero = [[0.0] * len(row) for row in ledger_way]
        m = comp.measured
        parts = [f"as the ledger scores it {_interval(m['diff'], m['lo'], m['hi'], led.level)}"]
        for what, weights, metric in (("on Y instead of RGB", comp.weights, "psnr_y"),
                                      ("with the raw weights instead of the EMA", "raw",
                                       comp.metric)):
            if (weights, metric) == (comp.weights, comp.metric):
                continue
            other = diff(weights, metric)
            ci = random_effects_ci(other, zero, level=led.level)
            moved = random_effects_ci(other, ledger_way, level=led.level)
            parts.append(f"{what} {_interval(ci.diff, ci.lo, ci.hi, led.level)}, the choice moving "
                         f"it by {_interval(moved.diff, moved.lo, moved.hi, led.level)}, "
                         f"{_shift(moved, led.margin)}")
        own = random_effects_ci(_grid(a, seeds, comp.weights, "psnr_y"),
                                _grid(a, seeds, comp.weights, comp.metric), level=led.level)
        parts.append(f"while Y instead of RGB moves {_code(comp.arm)}'s own score by "
                     f"{_interval(own.diff, own.lo, own.hi, led.level)}")
        scale = _ledger_scale(src, comp)
        lines.append(f"- **{_code(claim.id)}** (the paper: {_db(comp.claimed)} dB), "
                     f"{_pair_label(comp)}: " + "; ".join(parts) + f"; scale: {scale}.")
    protocols = sorted({r["experiment"].get("protocol", "unknown") for name in src.experiments()
                        for r in src.records(name)})
    lines.append("- **Untested on the records**: every committed record is scored with the "
                 + " and ".join(f"`{p}`" for p in protocols) + " protocol, so the release "
                 "protocol's padded ground truth (a) and MATLAB's SSIM (c) are measured only in "
                 "this chapter's live cells, on model-free restorers and one short run.")
    return "\n".join(lines + ["```"])


_BUILDERS = {"intro": _intro, "guidelines": _guidelines, "latent_space": _latent_space,
             "ablations": _ablations, "results": _results,
             "training_small_scale": _training_small_scale, "evaluation": _evaluation}


def box(chapter: str, sources: Sources | None = None) -> str:
    """The Markdown of ``chapter``'s key-results box (a MyST admonition), from the records."""
    if chapter not in _BUILDERS:
        raise ValueError(f"{chapter!r} is not one of {', '.join(CHAPTERS)}")
    return _BUILDERS[chapter](sources or Sources())


def boxes(sources: Sources | None = None) -> dict[str, str]:
    """Every chapter's box, reading the evidence once."""
    src = sources or Sources()
    return {key: box(key, src) for key in CHAPTERS}


# --------------------------------------------------------------------------- the ledger as a table
def ledger_frame(sources: Sources | None = None, *, width: int = 80) -> pd.DataFrame:
    """One row per claim, for a ~750-px column: verdict first, the claim shortened to
    ``width`` characters, each test comparison's measurement with its interval, the scale,
    and the Holm-adjusted verdict (:func:`styled` wraps the text)."""
    import pandas as pd

    src = sources or Sources()
    led = src.ledger()
    rows = []
    for claim in led.claims:
        tests = [c for c in claim.comparisons if c.role == "test"]
        measured, scales = [], []
        for c in tests:
            m = c.measured
            if m is None:
                measured.append(f"{c.arm} − {c.baseline}: untested")
            elif c.kind == "difference":
                measured.append(f"{c.arm} − {c.baseline} ({c.task}): {_db(m['diff'])} dB "
                                f"[{_db(m['lo'])}, {_db(m['hi'])}]")
                scales.append(f"{m['n_seeds']} seeds × {m['n_images']} photos, "
                              f"{m['total_iters']:,} steps ({m['recipe_fraction']:.3%}), "
                              f"{_device(_comparison_records(src, c))}")
            else:
                measured.append(f"{m['value']:.1%} fewer parameters")
                scales.append("model table")
        rows.append({"verdict": claim.verdict,
                     "claim": textwrap.shorten(claim.claim, width=width, placeholder=" …"),
                     "measured": "; ".join(measured) or "no comparison",
                     "scale": "; ".join(dict.fromkeys(scales)) or "—",
                     "Holm": claim.verdict_holm})
    return pd.DataFrame(rows, index=pd.Index([c.id for c in led.claims], name="id"))


def ledger_notes(sources: Sources | None = None) -> pd.DataFrame:
    """Every claim's full statement, source and notes: the text :func:`ledger_frame` leaves out."""
    import pandas as pd

    led = (sources or Sources()).ledger()
    return pd.DataFrame([{"claim": c.claim, "source": c.source, "notes": c.notes}
                         for c in led.claims],
                        index=pd.Index([c.id for c in led.claims], name="id"))


def styled(frame: pd.DataFrame, *, max_em: int = 16) -> Any:
    """``frame`` as a Styler whose text wraps inside narrow left-aligned columns."""
    cell = [("white-space", "normal"), ("text-align", "left"), ("vertical-align", "top"),
            ("max-width", f"{max_em}em"), ("overflow-wrap", "anywhere")]
    return frame.style.set_table_styles([{"selector": "td", "props": cell},
                                         {"selector": "th", "props": cell}])


# --------------------------------------------------------------------------- the writer
def _region(text: str, where: str) -> tuple[int, int]:
    start, end = text.find(START), text.find(END)
    if start < 0 or end < 0 or end < start or text.count(START) != 1 or text.count(END) != 1:
        raise ValueError(f"{where}: expects exactly one {START} followed by one {END}")
    return start + len(START), end


def intro_region(text: str, where: str = "intro.md") -> str:
    """What lies between the intro's markers, without the newlines that frame it."""
    a, b = _region(text, where)
    return text[a:b].strip("\n")


def write_intro(path: str | Path, text: str) -> bool:
    """Replace what lies between the markers of ``path`` by ``text``; True if it changed."""
    path = Path(path)
    old = path.read_text(encoding="utf-8")
    a, b = _region(old, str(path))
    new = old[:a] + "\n" + text + "\n" + old[b:]
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old


def _dump(nb: dict) -> str:
    """As nbformat writes a notebook (and as the book's .ipynb files are)."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _tagged(nb: dict, where: str) -> int | None:
    hits = [i for i, c in enumerate(nb["cells"]) if TAG in c.get("metadata", {}).get("tags", [])]
    if len(hits) > 1:
        raise ValueError(f"{where}: {len(hits)} cells tagged {TAG!r}, expected one")
    return hits[0] if hits else None


def notebook_box(path: str | Path) -> str | None:
    """The source of ``path``'s cell tagged :data:`TAG`; None when it has none."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    i = _tagged(nb, str(path))
    return None if i is None else "".join(nb["cells"][i]["source"])


def _insert_at(cells: list[dict]) -> int:
    heads = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
             and "".join(c["source"]).lstrip().startswith(SUMMARY_HEADINGS)]
    return heads[-1] if heads else len(cells)


def write_notebook(path: str | Path, text: str) -> bool:
    """Set the source of ``path``'s cell tagged :data:`TAG` to ``text``, inserting a markdown
    cell (before the closing summary, :data:`SUMMARY_HEADINGS`) when there is none; every
    other byte is kept. True if the file changed."""
    path = Path(path)
    old = path.read_text(encoding="utf-8")
    nb = json.loads(old)
    source = text.splitlines(keepends=True)
    i = _tagged(nb, str(path))
    if i is None:
        if any(c.get("id") == TAG for c in nb["cells"]):
            raise ValueError(f"{path}: a cell already has the id {TAG!r} without the tag")
        cell = {"cell_type": "markdown", "metadata": {"tags": [TAG]}, "source": source}
        if any("id" in c for c in nb["cells"]):  # nbformat 4.5 on: every cell has an id
            cell["id"] = TAG
        nb["cells"].insert(_insert_at(nb["cells"]), cell)
    else:
        nb["cells"][i]["source"] = source
    new = _dump(nb)
    if new != old:
        path.write_text(new, encoding="utf-8")
    return new != old


def write(book: str | Path = "book", *, only: Sequence[str] | None = None,
          sources: Sources | None = None) -> list[Path]:
    """Write the boxes of ``only`` (default: all) into ``book``; the files that changed."""
    book = Path(book)
    keys = list(only or CHAPTERS)
    src = sources or Sources()
    changed = []
    for key in keys:
        path = book / "intro.md" if key == "intro" else book / "notebooks" / f"{key}.ipynb"
        writer = write_intro if key == "intro" else write_notebook
        if writer(path, box(key, src)):
            changed.append(path)
    return changed


def stale(book: str | Path = "book", *, only: Sequence[str] | None = None,
          sources: Sources | None = None) -> list[str]:
    """Each box of ``book`` that differs from what the records give now (empty: all current)."""
    book = Path(book)
    src = sources or Sources()
    out = []
    for key in list(only or CHAPTERS):
        if key == "intro":
            held: str | None = intro_region((book / "intro.md").read_text(encoding="utf-8"))
            where = book / "intro.md"
        else:
            where = book / "notebooks" / f"{key}.ipynb"
            held = notebook_box(where)
        if held is None:
            out.append(f"{where}: no markdown cell tagged {TAG!r}; run `python -m "
                       f"irconstyle.book.evidence.synthesis --write --only {key}`")
        elif held != box(key, src):
            out.append(f"{where}: the key-results box differs from the records; run `python -m "
                       f"irconstyle.book.evidence.synthesis --write --only {key}`")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m irconstyle.book.evidence.synthesis",
                                description="Write (or check) the book's key-results boxes.")
    p.add_argument("--write", action="store_true", help="write the boxes into the book")
    p.add_argument("--check", action="store_true", help="exit 1 if a box is not current")
    p.add_argument("--print", dest="show", metavar="CHAPTER", help="print one chapter's box")
    p.add_argument("--only", action="append", choices=CHAPTERS,
                   help="a chapter to write or check (repeatable; default: all)")
    p.add_argument("--book", default="book", help="the book's folder (default: ./book)")
    args = p.parse_args(argv)
    if args.show:
        print(box(args.show))
        return 0
    if not (args.write or args.check):
        p.error("give --write, --check or --print CHAPTER")
    if args.write:
        for path in write(args.book, only=args.only):
            print(f"wrote {path}")
    if args.check:
        problems = stale(args.book, only=args.only)
        print("\n".join(problems) or "every key-results box is current")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
