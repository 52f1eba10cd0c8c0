"""Read model weights from any file the project meets, and load them into a model.

Formats (the file's content decides, not its extension):

* our training checkpoints (``irconstyle.train``: ``{"model": state_dict, "ema":
  {"module": state_dict, ...} | None, "config": yaml, "model_kwargs_json": ...}``,
  read with ``torch.load(weights_only=True)``): two variants, ``raw`` and ``ema``;
* ``.safetensors`` exports (one state dict; the metadata names the model, its
  keyword arguments and whether the weights are ``ema`` or ``raw``);
* the authors' BasicSR checkpoints (``{"params": ..., "params_ema": ...}``): variants
  ``raw``/``ema``, renamed by :func:`irconstyle.checkpoints.release.load_release_checkpoint`;
* a plain state dict: one variant, ``weights``.

An inference build of a ConStyle model has no momentum encoder or queue; those keys
are dropped from a training state dict when the model has no place for them.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..method.constyle import MEMORY_KEYS
from .integrity import WeightsError, check_zip_crc, tensors_sha256
from .release import ReleaseCheckpointError, load_release_checkpoint

# WeightsError, check_zip_crc and tensors_sha256 live in .integrity (the authors' reader
# needs them too); imported from here as before.
__all__ = ["WeightsError", "Weights", "read_weights", "load_into", "check_zip_crc"]

_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class Weights:
    """The state dicts found in one file, by variant (``ema``, ``raw`` or ``weights``)."""

    path: str
    format: str  # "checkpoint", "safetensors", "release" or "state_dict"
    variants: dict[str, dict[str, Tensor]]
    model_name: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def default_variant(self) -> str:
        return "ema" if "ema" in self.variants else next(iter(self.variants))


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, Tensor) for v in obj.values())


def read_weights(path: str | os.PathLike) -> Weights:
    """Read ``path`` (see the module docstring); raises :class:`WeightsError`."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    if path.stat().st_size == 0:
        raise WeightsError(f"{path}: empty file (0 bytes)")
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors: an 8-byte header length, then the JSON header.
    if path.suffix == ".safetensors" or (len(head) == 9 and head[8:9] == b"{"):
        return _read_safetensors(path)
    check_zip_crc(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure: a bad file
        detail = str(exc).split(". ")[0].splitlines()[0][:120] if str(exc) else ""
        raise WeightsError(f"{path}: not a PyTorch checkpoint ({type(exc).__name__}"
                           f"{': ' + detail if detail else ''})") from exc
    return _interpret(obj, path)


def _read_safetensors(path: Path) -> Weights:
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise WeightsError(f"{path}: not a readable safetensors file ({type(exc).__name__}: "
                           f"{exc})") from exc
    if not sd:
        raise WeightsError(f"{path}: safetensors file holds no tensor")
    if "sha256" in meta and tensors_sha256(sd) != meta["sha256"]:
        raise WeightsError(f"{path}: tensor data does not match the SHA-256 recorded in the file "
                           "(a damaged copy; export or copy it again)")
    kwargs: dict[str, Any] = {}
    if meta.get("model_kwargs"):
        try:
            kwargs = dict(json.loads(meta["model_kwargs"]))
        except (ValueError, TypeError) as exc:
            raise WeightsError(f"{path}: metadata model_kwargs is not a JSON object") from exc
    variant = meta.get("weights") if meta.get("weights") in ("ema", "raw") else "weights"
    return Weights(str(path), "safetensors", {variant: sd}, meta.get("model"), kwargs)


def _interpret(obj: object, path: Path) -> Weights:
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: expected a dict of weights, got {type(obj).__name__}")
    if _is_state_dict(obj.get("model")):
        variants = {"raw": dict(obj["model"])}
        ema = obj.get("ema")
        if isinstance(ema, Mapping):
            ema = ema.get("module", ema)
            if _is_state_dict(ema):
                variants = {"ema": dict(ema), **variants}
        name, kwargs = _our_model_info(obj)
        return Weights(str(path), "checkpoint", variants, name, kwargs)
    if _is_state_dict(obj.get("params_ema")) or _is_state_dict(obj.get("params")):
        variants = {v: dict(obj[k]) for v, k in (("ema", "params_ema"), ("raw", "params"))
                    if _is_state_dict(obj.get(k))}
        return Weights(str(path), "release", variants)
    if _is_state_dict(obj):
        return Weights(str(path), "state_dict", {"weights": dict(obj)})
    raise WeightsError(f"{path}: no weights found (expected 'model'/'ema', 'params'/"
                       f"'params_ema' or a state dict; top-level keys: {sorted(map(str, obj))[:8]})")


def _our_model_info(obj: Mapping) -> tuple[str | None, dict[str, Any]]:
    kwargs: dict[str, Any] = {}
    if isinstance(obj.get("model_kwargs_json"), str):
        try:
            kwargs = dict(json.loads(obj["model_kwargs_json"]))
        except (ValueError, TypeError):
            kwargs = {}
    name = None
    if isinstance(obj.get("config"), str):
        import yaml

        try:
            cfg = yaml.safe_load(obj["config"])
            name = cfg.get("model", {}).get("name") if isinstance(cfg, dict) else None
        except yaml.YAMLError:
            name = None
    return name, kwargs


def load_into(model: nn.Module, weights: Weights, variant: str | None = None, *,
              model_name: str | None = None) -> nn.Module:
    """Load one variant of ``weights`` into ``model`` (strict); returns the model.

    ``model_name`` (a zoo name) is needed for the authors' checkpoints, whose keys are
    renamed per model.
    """
    variant = variant or weights.default_variant()
    if variant not in weights.variants:
        raise WeightsError(f"{weights.path}: no '{variant}' weights (has: "
                           f"{', '.join(weights.variants)})")
    sd = weights.variants[variant]
    if weights.format == "release":
        name = model_name or weights.model_name
        if name is None:
            raise WeightsError(f"{weights.path}: an authors' checkpoint needs the model name")
        try:
            return load_release_checkpoint(model, name, {"params": sd}, param_key="params")
        except (ReleaseCheckpointError, KeyError) as exc:
            raise WeightsError(f"{weights.path}: {exc}") from None
    ours = model.state_dict()
    has_memory = any(MEMORY_KEYS.match(k) for k in ours)
    clean: dict[str, Tensor] = {}
    for key, value in sd.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        if not has_memory and MEMORY_KEYS.match(key):
            continue
        clean[key] = value
    missing = sorted(set(ours) - set(clean))
    unexpected = sorted(set(clean) - set(ours))
    shapes = sorted(k for k in set(ours) & set(clean) if ours[k].shape != clean[k].shape)
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} ({', '.join(missing[:3])}"
                         f"{' ...' if len(missing) > 3 else ''})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} ({', '.join(unexpected[:3])}"
                         f"{' ...' if len(unexpected) > 3 else ''})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} shape mismatches (e.g. {k}: file {tuple(clean[k].shape)}, "
                         f"model {tuple(ours[k].shape)})")
        raise WeightsError(f"{weights.path}: weights do not fit the model: " + "; ".join(parts))
    model.load_state_dict(clean, strict=True)
    return model
