"""Load the authors' released checkpoints (BasicSR format) into our models.

The release saves ``{"params": state_dict}`` and/or ``{"params_ema": state_dict}``
with its own module names (``Process_Module_l1``, ``DC1``, ``UC3``, ...).  Each model
has a table of renaming rules from those names to ours; a file that does not match
the model exactly is refused with the missing and unexpected keys listed.

ConStyle models trained by the release always contain the momentum encoder and the
queue (``ConStyle.encoder_k.*``, ``ConStyle.queue``, ``ConStyle.queue_ptr``); an
inference build of ours has neither, so those keys are dropped when the target model
has no memory.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike
from typing import Callable

import torch
from torch import Tensor, nn

__all__ = ["RELEASE_KEY_RULES", "ReleaseCheckpointError", "rename_release_key",
           "convert_release_state_dict", "load_release_checkpoint", "read_release_file"]

Rule = tuple[str, Callable[[re.Match], str]]


def _sub(template: str, **index_maps: Callable[[int], int]) -> Callable[[re.Match], str]:
    """A replacement that formats ``template`` with the match's groups, mapping numbered
    groups through ``index_maps`` (e.g. the release's 1-based ``l1`` -> our 0-based index)."""

    def repl(m: re.Match) -> str:
        groups = {k: (index_maps[k](int(v)) if k in index_maps else v)
                  for k, v in m.groupdict().items()}
        return template.format(**groups)

    return repl


# Rules shared by every ConStyle-<backbone> built from the general template (three levels).
_TEMPLATE_RULES: list[Rule] = [
    (r"^ConStyle\.", _sub("constyle.")),
    (r"^Preprocess_Module\.", _sub("preprocess.")),
    (r"^Process_Module_l(?P<i>\d)\.", _sub("encoders.{i}.", i=lambda n: n - 1)),
    (r"^Process_Module_bottom\.", _sub("bottleneck.")),
    (r"^Process_Module_r(?P<i>\d)\.", _sub("decoders.{i}.", i=lambda n: 3 - n)),
    (r"^DC(?P<i>\d)\.down\.", _sub("downs.{i}.", i=lambda n: n - 1)),
    (r"^UC(?P<i>\d)\.up\.", _sub("ups.{i}.up.", i=lambda n: 3 - n)),
    (r"^UC(?P<i>\d)\.down\.", _sub("ups.{i}.reduce.", i=lambda n: 3 - n)),
    (r"^AffineTransform(?P<i>\d)\.", _sub("injection.affine.{i}.")),
    (r"^mlp\.", _sub("injection.mlp.")),
    (r"^local_fusion\.", _sub("injection.fusion.")),
    (r"^Finetune_Module\.", _sub("finetune.")),
]

# Model name (as in irconstyle.zoo) -> renaming rules.  Keys no rule matches keep
# their name (the original NAFNet's names are already ours).
RELEASE_KEY_RULES: dict[str, list[Rule]] = {
    "constyle_nafnet": _TEMPLATE_RULES,
    "nafnet": [],
    # Restormer: the template's names (Preprocess_Module.proj -> preprocess.proj); the
    # original network keeps the published names.
    "constyle_restormer": _TEMPLATE_RULES,
    "restormer": [],
}

_MEMORY_KEYS = re.compile(r"^constyle\.(encoder_k\.|queue$|queue_ptr$)")


class ReleaseCheckpointError(ValueError):
    """A checkpoint that does not fit the model; the message lists the keys."""


def rename_release_key(model_name: str, key: str) -> str:
    try:
        rules = RELEASE_KEY_RULES[model_name]
    except KeyError:
        raise KeyError(f"no release key mapping for model {model_name!r}; "
                       f"known: {', '.join(sorted(RELEASE_KEY_RULES))}") from None
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key, count=1)
        if n:
            return new
    return key


def read_release_file(path: str | PathLike, *, param_key: str = "params_ema") -> dict[str, Tensor]:
    """Read a BasicSR checkpoint with ``weights_only=True`` and pick ``param_key``,
    falling back to ``params`` (fixes B16: the release always read ``params_ema``)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise ReleaseCheckpointError(f"{path}: cannot read as a PyTorch checkpoint ({exc})") from exc
    return _pick(obj, param_key, source=str(path))


def _pick(obj: object, param_key: str, source: str) -> dict[str, Tensor]:
    if not isinstance(obj, Mapping):
        raise ReleaseCheckpointError(f"{source}: expected a dict, got {type(obj).__name__}")
    for key in (param_key, "params", "params_ema"):
        if key in obj and isinstance(obj[key], Mapping):
            return dict(obj[key])
    if obj and all(isinstance(v, Tensor) for v in obj.values()):
        return dict(obj)  # a bare state dict
    raise ReleaseCheckpointError(
        f"{source}: no '{param_key}' or 'params' entry; top-level keys: {sorted(obj)[:10]}")


def convert_release_state_dict(model_name: str, release_sd: Mapping[str, Tensor],
                               model: nn.Module) -> dict[str, Tensor]:
    """Rename the release's keys to ours and check them against ``model``'s state dict.

    Raises :class:`ReleaseCheckpointError` naming the missing and unexpected keys
    (in our names, with the release's name in brackets) and any shape mismatch.
    """
    ours = model.state_dict()
    has_memory = any(_MEMORY_KEYS.match(k) for k in ours)
    converted: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in release_sd.items():
        if key.startswith("module."):  # saved from DataParallel / DDP
            key = key[len("module."):]
        new = rename_release_key(model_name, key)
        if _MEMORY_KEYS.match(new) and not has_memory:
            continue
        converted[new], origin[new] = value, key
    missing = sorted(set(ours) - set(converted))
    unexpected = sorted(set(converted) - set(ours))
    shape = sorted(k for k in set(ours) & set(converted) if ours[k].shape != converted[k].shape)
    if missing or unexpected or shape:
        lines = [f"checkpoint does not fit model {model_name!r}:"]
        if missing:
            lines.append(f"  missing ({len(missing)}): " + ", ".join(missing[:20])
                         + (" ..." if len(missing) > 20 else ""))
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): " + ", ".join(
                f"{k} [{origin[k]}]" for k in unexpected[:20]) + (" ..." if len(unexpected) > 20 else ""))
        for k in shape[:20]:
            lines.append(f"  shape of {k} [{origin[k]}]: file {tuple(converted[k].shape)}, "
                         f"model {tuple(ours[k].shape)}")
        raise ReleaseCheckpointError("\n".join(lines))
    return converted


def load_release_checkpoint(model: nn.Module, model_name: str,
                            source: str | PathLike | Mapping, *,
                            param_key: str = "params_ema") -> nn.Module:
    """Load an authors' checkpoint (a path, or an already-loaded dict such as
    ``{"params": state_dict}``) into ``model`` in place; returns the model."""
    if isinstance(source, Mapping):
        sd = _pick(source, param_key, source="<dict>")
        label = "<dict>"
    else:
        sd = read_release_file(source, param_key=param_key)
        label = str(source)
    try:
        converted = convert_release_state_dict(model_name, sd, model)
    except ReleaseCheckpointError as exc:
        raise ReleaseCheckpointError(f"{label}: {exc}") from None
    model.load_state_dict(converted, strict=True)
    return model
