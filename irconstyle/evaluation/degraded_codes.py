"""ConStyle's codes of the medium set's test photos, clean and under the four
degradations at several strengths, and the latent measures computed on them in the
codes' own 128-d space (never on a 2-D projection).

    from irconstyle.evaluation.degraded_codes import encoder_from_weights, encode_degraded, measures
    codes = encode_degraded(encoder_from_weights("results/.../last.pt"))
    measures(codes)                       # raw codes, as the release enqueues them
    measures(codes, normalize=True)       # unit vectors, as standard MoCo

On the command line: ``irconstyle latent --weights A.pt B.pt --untrained-seed 0
--out results/latent/codes.npz`` (codes and labels in the .npz, measures and provenance
in the .json beside it).

Degradations (each a pure function of the photo's name: the same noise field, blur
path, rain streaks at every strength, so strengths differ only in strength):

* noise: AWGN sigma 15 / 25 / 50 (0-255 scale, the benchmarks' levels);
* blur: one random camera-shake path per photo (:func:`~irconstyle.data.degrade.motion_kernel`)
  at path lengths 6 / 12 / 20 px (the mini-benchmark's range);
* rain: one streak layer (length 20 px, width 1.5 px, intensity 0.6, angle drawn in
  [-30, 30] deg per photo) at densities 0.0015 / 0.004 (the mini-benchmark's range);
* haze: airlight 0.9 on the depth proxy (1-10 m ground plane) at beta 0.04 / 0.2 (the
  ends of RESIDE OTS's betas).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..method.constyle import ConStyle
from ..data import degrade as D
from .latent import collect_codes, knn_accuracy_by_group, own_clean_distances, silhouette

__all__ = ["STRENGTHS", "degrade", "DegradedCodes", "encode_degraded", "untrained_encoder",
           "encoder_from_weights", "measures", "save_codes", "load_codes", "encoder_of",
           "measure_rows", "MEASURES"]

#: the three measures a chapter shows, as (column name, key of :func:`measures`' result)
MEASURES = (("silhouette", "silhouette_degradation"),
            ("kNN accuracy", "knn_accuracy_degradation_leave_photo_out"),
            ("own clean nearest", None))

#: degradation -> strengths (the parameter each varies: sigma, path length, density, beta)
STRENGTHS: dict[str, tuple[float, ...]] = {
    "noise": (15.0, 25.0, 50.0),
    "blur": (6.0, 12.0, 20.0),
    "rain": (0.0015, 0.004),
    "haze": (0.04, 0.2),
}


def degrade(kind: str, clean: Tensor, strength: float, *, name: str) -> Tensor:
    """``clean`` (3, H, W) degraded by ``kind`` at ``strength`` (see the module
    docstring), seeded by the photo's name and the kind only."""
    g = torch.Generator().manual_seed(D.stable_seed("latent", kind, name))
    if kind == "noise":
        return D.add_gaussian_noise(clean, strength, generator=g)
    if kind == "blur":
        return D.motion_blur(clean, D.motion_kernel(strength, generator=g))
    if kind == "rain":
        angle = -30.0 + 60.0 * float(torch.rand((), generator=g, dtype=torch.float64))
        return D.add_rain(clean, density=strength, length=20.0, angle=angle, width=1.5,
                          intensity=0.6, generator=g)
    if kind == "haze":
        depth = D.depth_proxy(clean.shape[-2], clean.shape[-1])
        return D.add_haze(clean, depth, airlight=0.9, beta=strength)
    raise ValueError(f"unknown degradation {kind!r}; choose from {', '.join(STRENGTHS)}")


@dataclass
class DegradedCodes:
    """Codes (N, dim), raw as the encoder gives them, with one label per row."""

    codes: np.ndarray
    photo: list[str]
    degradation: list[str]   # "clean" or a key of STRENGTHS
    strength: list[float]    # NaN for clean
    meta: dict = field(default_factory=dict)

    @property
    def is_clean(self) -> list[bool]:
        return [d == "clean" for d in self.degradation]

    def normalized(self) -> np.ndarray:
        """The codes as unit vectors (what a ``normalize=True`` queue would hold)."""
        return self.codes / np.maximum(np.linalg.norm(self.codes, axis=1, keepdims=True), 1e-12)


def encode_degraded(encoder: torch.nn.Module, *, photos: tuple[list[Tensor], list[str]] | None = None,
                    strengths: dict[str, Sequence[float]] | None = None,
                    device: torch.device | str = "cpu") -> DegradedCodes:
    """Encode each photo clean and under every (degradation, strength) with ConStyle's
    query encoder in eval mode (:func:`~irconstyle.evaluation.latent.collect_codes`; a
    ``ConStyle`` or a model holding one).  ``photos``: (images, names); default the
    medium set's 12 test photos, which no training run sees."""
    if photos is None:
        from ..data.medium import medium_test_photos
        photos = medium_test_photos()
    images, names = photos
    strengths = STRENGTHS if strengths is None else strengths
    rows: list[tuple[Tensor, str, str, float]] = []
    for img, name in zip(images, names):
        rows.append((img, name, "clean", float("nan")))
        for kind, values in strengths.items():
            rows.extend((degrade(kind, img, float(v), name=name), name, kind, float(v)) for v in values)
    codes, _ = collect_codes(encoder, ((x, str(i)) for i, (x, *_rest) in enumerate(rows)), device=device)
    return DegradedCodes(codes.astype(np.float32), [r[1] for r in rows], [r[2] for r in rows],
                         [r[3] for r in rows])


def untrained_encoder(seed: int = 0) -> ConStyle:
    """A freshly initialised ConStyle (inference build) from ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return ConStyle(train=False).eval()


def encoder_from_weights(path: str | Path, variant: str | None = None) -> ConStyle:
    """ConStyle's query encoder from a weights file the project writes (a run's
    ``last.pt`` / ``best.pt`` or a ``.safetensors`` export): the ``constyle.encoder_q.*``
    tensors of the ``variant`` (default EMA when present) in an inference ConStyle."""
    from ..checkpoints.weights import read_weights

    w = read_weights(path)
    variant = variant or w.default_variant()
    if variant not in w.variants:
        raise ValueError(f"{path}: no '{variant}' weights (has: {', '.join(w.variants)})")
    prefix = "constyle.encoder_q."
    sd = {}
    for key, value in w.variants[variant].items():
        for strip in ("module.", "_orig_mod."):
            key = key[len(strip):] if key.startswith(strip) else key
        if key.startswith(prefix):
            sd[key[len("constyle."):]] = value
    if not sd:
        raise ValueError(f"{path}: no ConStyle encoder in these weights (no keys "
                         f"'{prefix}*'; an authors' checkpoint must be converted first)")
    cs = ConStyle(train=False, dim=int(sd["encoder_q.mlp2.0.weight"].shape[0]))
    cs.load_state_dict(sd, strict=True)
    return cs.eval()


def measures(codes: DegradedCodes, *, normalize: bool = False, k: int = 5) -> dict:
    """The latent measures in the codes' own space (Euclidean; on unit vectors with
    ``normalize``): silhouette of the degradation type (clean a type of its own), k-NN
    accuracy of the type leaving one photo out at a time, and for the degraded codes the
    distance to their own clean code against the other photos' clean codes (overall and
    per degradation)."""
    x = codes.normalized() if normalize else codes.codes
    d = own_clean_distances(x, codes.photo, codes.is_clean)
    kinds = np.asarray(codes.degradation)[d["index"]]

    def summary(mask: np.ndarray) -> dict:
        return {"n": int(mask.sum()),
                "own_nearer_than_every_other": float(np.mean(d["own"][mask] < d["nearest_other"][mask])),
                "mean_ratio_own_to_nearest_other": float(np.mean(d["own"][mask] / d["nearest_other"][mask])),
                "mean_ratio_own_to_mean_other": float(np.mean(d["own"][mask] / d["mean_other"][mask]))}

    return {
        "space": f"{x.shape[1]}-d {'L2-normalised' if normalize else 'raw'} codes, Euclidean",
        "n_codes": int(x.shape[0]), "n_photos": len(set(codes.photo)),
        "silhouette_degradation": silhouette(x, codes.degradation),
        "knn_accuracy_degradation_leave_photo_out": knn_accuracy_by_group(
            x, codes.degradation, codes.photo, k=k),
        "k": k,
        "own_clean": {"all": summary(np.ones(len(kinds), dtype=bool)),
                      **{kind: summary(kinds == kind) for kind in dict.fromkeys(kinds)}},
    }


def encoder_of(name: str) -> tuple[str, int]:
    """(arm, seed) of an encoder as ``irconstyle latent`` names it: ``untrained_seed<s>``
    (arm ``untrained``) or the path of a run's weights, ``.../<arm>/seed<s>/<file>``."""
    m = re.fullmatch(r"untrained_seed(\d+)", name)
    if m:
        return "untrained", int(m[1])
    m = re.search(r"(?:^|/)([A-Za-z0-9_]+)/seed(\d+)/[^/]+$", name)
    if m is None:
        raise ValueError(f"encoder {name!r}: neither 'untrained_seed<s>' nor the path of a run's "
                         "weights '.../<arm>/seed<s>/<file>'")
    return m[1], int(m[2])


def _row(m: dict) -> dict:
    return {col: (m["own_clean"]["all"]["own_nearer_than_every_other"] if key is None else m[key])
            for col, key in MEASURES}


def measure_rows(report: dict, codes: dict[str, DegradedCodes] | None = None) -> list[dict]:
    """One row per encoder and code space (raw, normalised) of a committed latent report
    (the ``.json`` that ``irconstyle latent`` writes): arm, seed, space and the three
    measures; with the codes of the ``.npz`` also their mean length ``mean |z|``."""
    rows = []
    for name, enc in report["encoders"].items():
        arm, seed = encoder_of(name)
        for space, key in (("raw", "raw"), ("normalised", "normalized")):
            row = {"arm": arm, "seed": seed, "codes": space, **_row(enc[key])}
            if codes is not None:
                row["mean |z|"] = float(np.linalg.norm(codes[name].codes, axis=1).mean())
            rows.append(row)
    return rows


def save_codes(path: str | Path, encoders: dict[str, DegradedCodes], *, provenance: dict) -> Path:
    """Write ``path`` (.npz: ``codes`` (E, N, dim) raw float32, ``encoders``, ``photo``,
    ``degradation``, ``strength``) and ``path`` with .json (per encoder: its source and
    the measures on raw and normalised codes; the provenance).  All encoders must have
    encoded the same images."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: the codes file must end in .npz")
    if not encoders:
        raise ValueError("no encoders given")
    first = next(iter(encoders.values()))
    for name, c in encoders.items():
        if (c.photo, c.degradation) != (first.photo, first.degradation):
            raise ValueError(f"encoder {name!r} encoded other images than {next(iter(encoders))!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, codes=np.stack([c.codes for c in encoders.values()]),
                        encoders=np.asarray(list(encoders)), photo=np.asarray(first.photo),
                        degradation=np.asarray(first.degradation),
                        strength=np.asarray(first.strength, dtype=np.float64))
    report = {"codes_file": path.name, "strengths": {k: list(v) for k, v in STRENGTHS.items()},
              "encoders": {name: {**c.meta, "raw": measures(c), "normalized": measures(c, normalize=True)}
                           for name, c in encoders.items()},
              "provenance": provenance}
    path.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    return path


def load_codes(path: str | Path) -> dict[str, DegradedCodes]:
    """Read a file written by :func:`save_codes` back, one :class:`DegradedCodes` per encoder."""
    with np.load(Path(path)) as f:
        labels = dict(photo=[str(p) for p in f["photo"]], degradation=[str(d) for d in f["degradation"]],
                      strength=[float(s) for s in f["strength"]])
        return {str(name): DegradedCodes(codes=f["codes"][i], **labels)
                for i, name in enumerate(f["encoders"])}
