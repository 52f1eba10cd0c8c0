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

from ..method.constyle import MEMORY_KEYS
from .integrity import check_zip_crc

__all__ = ["RELEASE_KEY_RULES", "RELEASE_DEAD_KEYS", "ReleaseCheckpointError", "rename_release_key",
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

# MAXIM (nets/maxim.py).  The release keeps the Flax names of the JAX original inside
# its blocks (SplitHeadMultiAxisGmlpLayer_0, channel_attention_block_10, Conv_0,
# LayerNorm gamma/beta, ...); a rule maps the module prefix and the two functions below
# translate the part of the key under a U-Net block or a cross-gating block.
_MAXIM_TOKENS: list[tuple[str, str]] = [
    (r"SplitHeadMultiAxisGmlpLayer_(\d+)\.", r"gmlps.\1."),
    (r"channel_attention_block_1_(\d+)\.", r"rdcabs.\1."),
    (r"channel_attention_block_1(\d+)\.", r"rcabs.\1."),
    (r"channel_attention\.Conv_0\.", "ca.reduce."),
    (r"channel_attention\.Conv_1\.", "ca.expand."),
    (r"channel_mixing\.Dense_0\.", "mlp.0."),
    (r"channel_mixing\.Dense_1\.", "mlp.2."),
    (r"(Grid|Block)GatingUnit\.Dense_0\.", "gate.dense."),
    (r"(Grid|Block)GatingUnit\.intermediate_layernorm\.", "gate.norm."),
    (r"GridGmlpLayer\.", "grid."),
    (r"BlockGmlpLayer\.", "block."),
    (r"SplitHeadMultiAxisGating_([xy])\.Dense_0\.", r"gate_\1.grid_dense."),
    (r"SplitHeadMultiAxisGating_([xy])\.Dense_1\.", r"gate_\1.block_dense."),
    (r"SplitHeadMultiAxisGating_([xy])\.", r"gate_\1."),
    (r"LayerNorm_in\.", "norm."),
    (r"LayerNorm_([xy])\.", r"norm_\1."),
    (r"LayerNorm\.", "norm."),
    (r"in_project", "in_proj"),
    (r"out_project", "out_proj"),
    (r"\.gamma$", ".weight"),
    (r"\.beta$", ".bias"),
]


def _maxim_tokens(rest: str) -> str:
    for pattern, repl in _MAXIM_TOKENS:
        rest = re.sub(pattern, repl, rest)
    return rest


def _maxim_cgb(rest: str) -> str:
    """Inside a CrossGatingBlock: ConvTranspose_0 / Conv_0 / Conv_1 are up_y / proj_x / proj_y."""
    for old, new in (("ConvTranspose_0.", "up_y."), ("Conv_0.", "proj_x."), ("Conv_1.", "proj_y.")):
        if rest.startswith(old):
            return new + rest[len(old):]
    return _maxim_tokens(rest)


def _maxim_block(rest: str) -> str:
    """Inside a UNetEncoderBlock / BottleneckBlock (its dead cross_gating_block included)."""
    if rest.startswith("cross_gating_block."):
        return "unused_cross_gating." + _maxim_cgb(rest[len("cross_gating_block."):])
    return _maxim_tokens(re.sub(r"^(Conv_0|input_proj)\.", "proj_in.", rest))


def _maxim_sub(template: str, body: Callable[[str], str], **index_maps: Callable[[int], int]
               ) -> Callable[[re.Match], str]:
    """For a pattern ending in ``(?P<rest>.*)$``: the mapped prefix + ``body(rest)``."""
    head = _sub(template, **index_maps)
    return lambda m: head(m) + body(m["rest"])


def _upsample_ratio(m: re.Match) -> str:
    """``UpSampleRatio_k``: k = 0..8 feed the cross-gating blocks (3 per level, deepest
    level first, encoder levels shallowest first), k = 9..17 the decoder bridges (3 per
    level, deepest level first, gated skips deepest first)."""
    k = int(m["k"])
    part, k = ("signal_proj", k) if k < 9 else ("bridge_proj", k - 9)
    return f"skip_fusion.{part}.{2 - k // 3}.{k % 3}."


_MAXIM_RULES: list[Rule] = [
    (r"^stage_0_input_conv_(?P<i>\d)\.", _sub("scale_inputs.convs.{i}.")),
    (r"^stage_0_encoder_block_(?P<i>\d)\.Conv_1\.", _sub("downs.{i}.")),
    (r"^stage_0_encoder_block_(?P<i>\d)\.(?P<rest>.*)$", _maxim_sub("encoders.{i}.", _maxim_block)),
    (r"^stage_0_global_block_(?P<i>\d)\.(?P<rest>.*)$", _maxim_sub("bottleneck.{i}.", _maxim_block)),
    (r"^stage_0_cross_gating_block_(?P<i>\d)\.(?P<rest>.*)$", _maxim_sub("skip_fusion.gates.{i}.", _maxim_cgb)),
    (r"^UpSampleRatio_(?P<k>\d+)\.Conv_0\.", _upsample_ratio),
    (r"^stage_0_decoder_block_(?P<i>\d)\.ConvTranspose_0\.", _sub("ups.{i}.up.", i=lambda n: 2 - n)),
    (r"^stage_0_decoder_block_(?P<i>\d)\.UNetEncoderBlock_0\.Conv_1\.",
     _sub("decoders.{i}.unused_down.", i=lambda n: 2 - n)),
    (r"^stage_0_decoder_block_(?P<i>\d)\.UNetEncoderBlock_0\.(?P<rest>.*)$",
     _maxim_sub("decoders.{i}.", _maxim_block, i=lambda n: 2 - n)),
    (r"^stage_0_output_conv_0\.", _sub("finetune.0.")),
]

_CONSTYLE_MAXIM_RULES: list[Rule] = [
    (r"^stage_input_conv_(?P<i>\d)\.", _sub("scale_inputs.convs.{i}.")),
    (r"^Process_Module_l(?P<i>\d)\.(?P<rest>.*)$", _maxim_sub("encoders.{i}.", _maxim_block, i=lambda n: n - 1)),
    (r"^Process_Module_bottom\.(?P<i>\d+)\.(?P<rest>.*)$", _maxim_sub("bottleneck.{i}.", _maxim_block)),
    (r"^Process_Module_r(?P<i>\d)\.UNetEncoderBlock_0\.(?P<rest>.*)$",
     _maxim_sub("decoders.{i}.", _maxim_block, i=lambda n: 3 - n)),
    (r"^cross_gating_block_(?P<i>\d)\.(?P<rest>.*)$", _maxim_sub("skip_fusion.gates.{i}.", _maxim_cgb)),
    (r"^UpSampleRatio_(?P<k>\d+)\.Conv_0\.", _upsample_ratio),
    *_TEMPLATE_RULES,
]

# Modules the release builds but never calls (nets/maxim.py, A2): dropped when the
# target model was built without them (``release_dead_modules=False``).
RELEASE_DEAD_KEYS: dict[str, re.Pattern] = {
    "maxim": re.compile(r"\.cross_gating_block\.|^stage_0_decoder_block_\d\.UNetEncoderBlock_0\.Conv_1\."),
    "constyle_maxim": re.compile(r"\.cross_gating_block\."),
}

# Model name (as in irconstyle.nets.zoo) -> renaming rules.  Keys no rule matches keep
# their name (the original NAFNet's names are already ours).
RELEASE_KEY_RULES: dict[str, list[Rule]] = {
    "constyle_nafnet": _TEMPLATE_RULES,
    "nafnet": [],
    "maxim": _MAXIM_RULES,
    "constyle_maxim": _CONSTYLE_MAXIM_RULES,
    # Restormer: the template's names (Preprocess_Module.proj -> preprocess.proj); the
    # original network keeps the published names.
    "constyle_restormer": _TEMPLATE_RULES,
    "restormer": [],
}



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
        check_zip_crc(path)  # a damaged download would otherwise load silently
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
    has_memory = any(MEMORY_KEYS.match(k) for k in ours)
    converted: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in release_sd.items():
        if key.startswith("module."):  # saved from DataParallel / DDP
            key = key[len("module."):]
        new = rename_release_key(model_name, key)
        if MEMORY_KEYS.match(new) and not has_memory:
            continue
        if new not in ours and model_name in RELEASE_DEAD_KEYS and RELEASE_DEAD_KEYS[model_name].search(key):
            continue  # a dead module of the release that this model was built without
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
