"""How far a campaign's runs are from the release's recipe, setting by setting.

A verdict of a small campaign is only as strong as its scale: the chapters and the claims
ledger print the setting of a campaign's runs next to the release preset of the same
network, and the fraction where one exists (steps, width, batch, patch, the training
pixels seen).  Everything is read from the experiment file and the preset, never typed.
"""
from __future__ import annotations

from dataclasses import dataclass
from inspect import signature

from ..data.medium import medium_photos
from ..train import load_config, resolve_config
from ..nets import zoo
from .spec import ExperimentSpec, RunKey, run_config

__all__ = ["ScaleComparison", "scale_against_release"]


@dataclass(frozen=True)
class ScaleComparison:
    rows: list[dict[str, str]]   # setting, the campaign's value, the release's, the fraction
    pixel_fraction: float        # training pixels seen, campaign / release


def _width(cfg) -> int:
    """The model's width: the configured one, else the builder's default (release presets
    leave ``model.kwargs`` empty)."""
    if "width" in cfg.model.kwargs:
        return int(cfg.model.kwargs["width"])
    factory = getattr(zoo, cfg.model.name, None)  # the network's own builder (zoo imports it)
    if factory is None or "width" not in signature(factory).parameters:
        raise ValueError(f"{cfg.model.name}: no width in model.kwargs and no builder default")
    return int(signature(factory).parameters["width"].default)


def _until(cfg) -> str:
    """The step after which the task rule freezes ConStyle, with its share of the run."""
    if cfg.constyle_iters is None or cfg.constyle_iters >= cfg.total_iters:
        return "never frozen"
    return f"step {cfg.constyle_iters:,} ({cfg.constyle_iters / cfg.total_iters:.1%})"


def scale_against_release(spec: ExperimentSpec, *, task: str, arm: str, preset: str) -> ScaleComparison:
    """Seed 0 of ``arm`` on ``task`` in ``spec`` against the release preset ``preset``
    (e.g. ``release/constyle_nafnet_derain``)."""
    ours = resolve_config(run_config(spec, RunKey(task, arm, 0)))
    rel = resolve_config(load_config(preset))
    w_ours, w_rel = _width(ours), _width(rel)
    p_ours, p_rel = ours.data.train.kwargs["patch_size"], rel.data.train.kwargs["patch_size"]
    photos = medium_photos().splits
    # the release's training data: its folder under data/, without a last target/ or gt/
    # (data/derain/train/Rain14000/target -> derain/train/Rain14000)
    kw = rel.data.train.kwargs
    folder = str(kw.get("gt_dir") or kw.get("clean_dir") or "").strip("/").split("/")
    folder = folder[1:] if folder[:1] == ["data"] else folder
    folder = folder[:-1] if folder[-1:] in (["target"], ["gt"], ["GT"], ["clear"]) else folder
    rows = [
        {"setting": "training steps", "ours": f"{ours.total_iters:,}",
         "release": f"{rel.total_iters:,}", "fraction": f"{ours.total_iters / rel.total_iters:.3%}"},
        {"setting": "width (channels)", "ours": str(w_ours), "release": str(w_rel),
         "fraction": f"{w_ours / w_rel:.2f}"},
        {"setting": "batch", "ours": str(ours.batch_size), "release": str(rel.batch_size),
         "fraction": f"{ours.batch_size / rel.batch_size:.2f}"},
        {"setting": "patch", "ours": f"{p_ours}x{p_ours}", "release": f"{p_rel}x{p_rel}",
         "fraction": f"{p_ours ** 2 / p_rel ** 2:.3f} (pixels)"},
        {"setting": "ConStyle trained until", "ours": _until(ours), "release": _until(rel),
         "fraction": ""},
        {"setting": "training data", "ours": f"{len(photos['train'])} photos (medium set)",
         "release": "/".join(folder) or rel.data.train.kind, "fraction": ""},
        {"setting": "test data", "ours": f"{len(photos['test'])} photos, synthetic",
         "release": "the paper's benchmarks", "fraction": ""},
    ]
    pixels = (ours.total_iters * ours.batch_size * p_ours ** 2) / (
        rel.total_iters * rel.batch_size * p_rel ** 2)
    return ScaleComparison(rows, pixels)
