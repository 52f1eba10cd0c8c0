"""ConStyle for a U-Net that is not part of this package, without editing its file.

The researcher names where the host's encoder stages and bottleneck are (module names
and their output channels); :func:`attach_constyle` puts forward hooks on those
modules that fuse ConStyle into their outputs:

* encoder stage i (in order, at most three) receives ConStyle's feature map
  ``fea_{i+1}`` (32, 64, 128 channels at H/2, H/4, H/8): resized to the stage's
  resolution if it differs, affine-transformed (1x1 ConvAct, the template's
  :class:`ConStyleInjection` pieces), concatenated with the stage output and brought
  back to the stage's channels by a 1x1 conv added as a residual;
* the bottleneck receives the code: ``x + fusion(cat[x, x * mlp(code)])``, the
  template's code fusion with the bottleneck's own width as output.

Every fusion conv that writes into the host is **zero-initialised**, so at attachment
the host computes exactly what it computed before, and training grows ConStyle's
influence from there (the ControlNet recipe).  The stage outputs keep their channels,
so the host's following layers fit unchanged.

The adapter follows the package's uniform model API: ``adapter(lq)`` restores (any
size: padded to ``size_factor`` and cropped back), ``adapter(lq, gt)`` in training
mode returns a :class:`TrainOutput` with ConStyle's outputs for the losses.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from ..method.constyle import ConStyle, ConStyleOutput
from .padding import check_input, crop_to, pad_to_multiple
from .unet import ConStyleInjection, TrainOutput

__all__ = ["ConStyleAdapter", "attach_constyle"]

_FEATURE_CHANNELS = (32, 64, 128)  # ConStyle's fea1, fea2, fea3


def _zero_conv(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 1, bias=False)
    nn.init.zeros_(conv.weight)
    return conv


class _Hook:
    """A forward hook that hands the module's output to the adapter (a plain object,
    not a closure, so that ``copy.deepcopy`` of the adapter re-points it to the copy)."""

    def __init__(self, adapter: "ConStyleAdapter", name: str, stage: int | None) -> None:
        self.adapter, self.name, self.stage = adapter, name, stage

    def __call__(self, module: nn.Module, args: tuple, output: object) -> Tensor | None:
        return self.adapter._fuse(self.name, self.stage, output)


class ConStyleAdapter(nn.Module):
    """A host U-Net with ConStyle fused into named encoder stages and its bottleneck.

    Build it with :func:`attach_constyle`.  ``host`` is kept as a submodule (its
    parameters train with the adapter); ``detach()`` removes the hooks and returns the
    host as it is now (with its trained weights, without ConStyle).
    """

    def __init__(self, host: nn.Module, *, encoder_stages: Mapping[str, int],
                 bottleneck: tuple[str, int], constyle: ConStyle, affine_width: int,
                 affine_act: Literal["lrelu", "prelu"] = "lrelu", size_factor: int = 8) -> None:
        super().__init__()
        if not 1 <= len(encoder_stages) <= len(_FEATURE_CHANNELS):
            raise ValueError(f"encoder_stages: name 1 to {len(_FEATURE_CHANNELS)} stages "
                             f"(ConStyle has {len(_FEATURE_CHANNELS)} feature maps), got {len(encoder_stages)}")
        names = [*encoder_stages, bottleneck[0]]
        modules = dict(host.named_modules())
        for name in names:
            if name not in modules or name == "":
                raise ValueError(f"host {type(host).__name__} has no submodule {name!r}; "
                                 f"some of its submodules: {', '.join(list(modules)[1:15])}")
        if len(set(names)) != len(names):
            raise ValueError(f"a module is named twice in encoder_stages/bottleneck: {names}")
        self.host = host
        self.constyle = constyle
        self.size_factor = size_factor
        self.img_channel = constyle.encoder_q.stage1[0][0].in_channels  # what check_input expects
        self.stage_names = list(encoder_stages)
        self.bottleneck_name, bottom_channels = bottleneck
        n = len(encoder_stages)
        self.injection = ConStyleInjection(
            width=affine_width, bottom_channels=bottom_channels, fused_channels=bottom_channels,
            feature_channels=_FEATURE_CHANNELS[:n], code_dim=constyle.dim, act=affine_act)
        nn.init.zeros_(self.injection.fusion.weight)
        self.merges = nn.ModuleList(
            [_zero_conv(c + affine_width, c) for c in encoder_stages.values()])
        self._channels = {**encoder_stages, self.bottleneck_name: bottom_channels}
        self._current: ConStyleOutput | None = None
        self._handles = [modules[name].register_forward_hook(_Hook(self, name, i))
                         for i, name in enumerate(self.stage_names)]
        self._handles.append(modules[self.bottleneck_name].register_forward_hook(
            _Hook(self, self.bottleneck_name, None)))

    # Called by the hooks; outside an adapter forward (host used alone) it is a no-op.
    def _fuse(self, name: str, stage: int | None, output: object) -> Tensor | None:
        cs = self._current
        if cs is None:
            return None
        if not isinstance(output, Tensor) or output.dim() != 4:
            raise TypeError(f"ConStyleAdapter: module {name!r} must return one NCHW tensor to "
                            f"fuse ConStyle into, got {type(output).__name__}")
        if output.shape[1] != self._channels[name]:
            raise ValueError(f"ConStyleAdapter: module {name!r} returns {output.shape[1]} channels, "
                             f"attach_constyle was told {self._channels[name]}")
        if stage is None:
            return output + self.injection.fuse_code(output, cs.code)
        feature = cs.features[stage]
        if feature.shape[-2:] != output.shape[-2:]:
            feature = F.interpolate(feature, size=output.shape[-2:], mode="bilinear",
                                    align_corners=False)
        return output + self.merges[stage](self.injection.inject_feature(output, feature, stage))

    def forward(self, lq: Tensor, gt: Tensor | None = None) -> Tensor | TrainOutput:
        check_input(lq, self.img_channel, like=next(self.parameters(), None))
        h, w = lq.shape[-2:]
        inp = pad_to_multiple(lq, self.size_factor)
        train_forward = gt is not None and self.training
        gt_in = pad_to_multiple(gt, self.size_factor) if train_forward else None
        cs = self.constyle(inp, gt_in)
        self._current = cs
        try:
            out = self.host(inp)
        finally:
            self._current = None
        out = crop_to(out, h, w)
        return TrainOutput(out, cs) if gt is not None else out

    def detach(self) -> nn.Module:
        """Remove the hooks and return the host (ConStyle is no longer applied)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        return self.host


def attach_constyle(host: nn.Module, *, encoder_stages: Mapping[str, int],
                    bottleneck: tuple[str, int], constyle: ConStyle | None = None,
                    constyle_train: bool = True, constyle_kwargs: dict | None = None,
                    affine_width: int | None = None, affine_act: Literal["lrelu", "prelu"] = "lrelu",
                    size_factor: int | None = None) -> ConStyleAdapter:
    """Attach ConStyle to ``host`` by naming its encoder stages and bottleneck.

    ``encoder_stages`` maps module names (as in ``host.named_modules()``) to their
    output channels, shallowest first; stage i receives ConStyle's (i+1)-th feature
    map.  ``bottleneck`` is ``(name, channels)`` of the module whose output receives
    the code.  ``affine_width`` (default: the first stage's channels) is the width
    of the affine-transformed feature maps; ``size_factor`` (default: the host's own
    ``size_factor`` attribute, else 8) is what inputs are padded to.
    """
    if constyle is None:
        constyle = ConStyle(train=constyle_train, **(constyle_kwargs or {}))
    if not encoder_stages:
        raise ValueError("encoder_stages: name at least one encoder stage")
    width = affine_width or next(iter(encoder_stages.values()))
    factor = size_factor or int(getattr(host, "size_factor", 8))
    return ConStyleAdapter(host, encoder_stages=encoder_stages, bottleneck=bottleneck,
                           constyle=constyle, affine_width=width, affine_act=affine_act,
                           size_factor=factor)
