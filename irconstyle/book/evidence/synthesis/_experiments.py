"""The boxes built from run records: the guidelines, ablations, training and evaluation
chapters."""
from __future__ import annotations

from collections.abc import Sequence

from ....experiments.summary import ArmComparison, compare_to_reference
from ....experiments.report import fmt
from ....experiments.stats import random_effects_ci
from ._common import (
    Sources, _code, _db, _device, _finding, _header, _interval, _preamble, _quote, _record_scale,
    _shift)
from ._ledger import _claim_line, _ledger_scale, _pair_label


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
