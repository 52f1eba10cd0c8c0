"""The boxes built from the claims ledger (the intro, the results chapter) and the ledger
as a table for the results chapter."""
from __future__ import annotations

import re
import textwrap
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ....experiments.claims import VERDICTS, Claim, Comparison
from ._common import (
    BACKBONES, Sources, _code, _db, _device, _header, _interval, _preamble, _quote, _scale,
    _source)
from ._sensitivity import rate_summary_line

if TYPE_CHECKING:  # pandas is a dependency of the book, not of the package
    import pandas as pd


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
    """What the U-Net template without ConStyle accounts for (the ledger's context rows),
    grouped by the baseline of the claim's own comparisons, then ConStyle's own part."""
    ctx = [c for c in claim.comparisons if c.role == "context"]
    if not ctx:
        return None
    level = src.ledger().level
    measured = [c for c in ctx if c.measured is not None]
    own = [c for c in claim.comparisons if c.role == "test" and c.measured is not None
           and c.kind == "difference"]
    parts, shown = [], set()
    for test in own:
        same = [c for c in measured if c.task == test.task and c.baseline == test.baseline]
        if not same:
            continue
        shown |= {id(c) for c in same}
        parts.append(f"against {_code(test.baseline)} on {_code(test.task)}, where {_code(test.arm)} "
                     f"is {_db(test.measured['diff'])} dB, the template alone: "
                     + ", ".join(f"{_code(c.arm)} {_interval(m['diff'], m['lo'], m['hi'], level)}"
                                 for c in same for m in [c.measured]))
    parts += [f"{_measured(c, level)}, {c.verdict}" for c in measured if id(c) not in shown]
    untested = [c for c in ctx if c.measured is None]
    if untested:
        parts.append("untested: " + ", ".join(_pair_label(c) for c in untested)
                     + " (no committed records)")
    return (f"- **What the template accounts for** ({_code(claim.id)}'s context comparisons, part "
            f"of no verdict): " + "; ".join(parts) + _own_part(src, own) + ".")


def _own_part(src: Sources, own: Sequence[Comparison]) -> str:
    """ConStyle's own part of the gap, judged by its interval, not by point estimates: the
    ledger's comparison of the claim's arm with the ablation (the same U-Net, the encoder
    replaced by learned constants) on the same task, wherever in the ledger it is."""
    led = src.ledger()
    out = ""
    for task in dict.fromkeys(c.task for c in own):
        arm = next(c.arm for c in own if c.task == task)
        found = [c for cl in led.claims for c in cl.comparisons
                 if c.kind == "difference" and c.measured is not None and c.task == task
                 and c.arm == arm and c.baseline == "ablated"]
        if not found:
            continue
        c, m = found[0], found[0].measured
        if -led.margin < m["lo"] and m["hi"] < led.margin:
            said = "negligible: ConStyle adds nothing beyond the margin to the same U-Net"
        elif m["lo"] > 0:
            said = "above 0: ConStyle adds to what the template gives"
        elif m["hi"] < 0:
            said = "below 0: the template does better without ConStyle"
        else:
            said = "unresolved: whether ConStyle adds to the template is not settled at this scale"
        out += (f"; ConStyle's own part, {_measured(c, led.level)}, {said}")
    return out


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


def _ledger_box(src: Sources, notation: str, *, more: str | None = None,
                extra: Sequence[str | None] = ()) -> str:
    led = src.ledger()
    lines = [*_header(), _preamble(src, notation) + " " + _tally(led.claims), ""]
    lines += [_claim_line(src, c) for c in led.claims]
    lines += [x for x in (_context_line(src, c) for c in led.claims) if x]
    lines += [x for x in extra if x]
    lines.append(_untested_line(src))
    if more:
        lines += ["", more]
    return "\n".join(lines + ["```"])


# --------------------------------------------------------------------------- from records
def _intro(src: Sources) -> str:
    more = ("Each claim is taken apart in {doc}`notebooks/results`; the guidelines in "
            "{doc}`notebooks/guidelines`, the parts of ConStyle in {doc}`notebooks/ablations`, "
            "the codes in {doc}`notebooks/latent_space`; whether the verdicts hold at each arm's "
            "own learning rate and with longer training in {doc}`notebooks/sensitivity`.")
    return _ledger_box(src, "notation", more=more,
                       extra=[rate_summary_line(src, "notebooks/sensitivity")])


def _results(src: Sources) -> str:
    return _ledger_box(src, "../notation", extra=[rate_summary_line(src, "sensitivity")])


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
