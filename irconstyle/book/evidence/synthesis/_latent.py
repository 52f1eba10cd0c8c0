"""The latent-space chapter's box, from the latent measures and the encoders behind them."""
from __future__ import annotations

import re
from collections.abc import Sequence

from ....experiments.stats import PairedCI, seed_t_ci
from ....train.config import ConStyleConfig
from ._common import (
    Sources, TRAINED_ON, _code, _device, _header, _interval, _preamble, _quote, _record_scale,
    _source, _val)


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
