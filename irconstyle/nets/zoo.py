"""``build_model(name, **overrides)``: the one explicit table of model names.

No folder scanning: adding a model means adding a line here.  ``constyle_*_ablated``
is the control that keeps the ConStyle network's topology and replaces ConStyle's
encoder by learned constants; ``general_*`` is the release's general network, which
differs from it in more than ConStyle (see :mod:`irconstyle.nets.unet`).  Every entry is a
constructor taking keyword arguments whose names match the YAML config keys.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from .maxim import MAXIM, constyle_maxim
from .nafnet import NAFNet, constyle_nafnet
from .plain import constyle_plain
from .restormer import Restormer, constyle_restormer
from .unet import ablate_constyle

__all__ = ["MODELS", "build_model", "model_names", "NAFNET_PRESETS"]

# The published NAFNet presets (Chen et al. 2022), as keyword overrides of NAFNet.
NAFNET_PRESETS: dict[str, dict] = {
    "nafnet_sidd_width32": dict(width=32, enc_blk_nums=(2, 2, 4, 8), middle_blk_num=12,
                                dec_blk_nums=(2, 2, 2, 2)),
    "nafnet_sidd_width64": dict(width=64, enc_blk_nums=(2, 2, 4, 8), middle_blk_num=12,
                                dec_blk_nums=(2, 2, 2, 2)),
    "nafnet_gopro_width32": dict(width=32, enc_blk_nums=(1, 1, 1, 28), middle_blk_num=1,
                                 dec_blk_nums=(1, 1, 1, 1)),
    "nafnet_gopro_width64": dict(width=64, enc_blk_nums=(1, 1, 1, 28), middle_blk_num=1,
                                 dec_blk_nums=(1, 1, 1, 1)),
}


def _preset(factory: Callable[..., nn.Module], preset: dict) -> Callable[..., nn.Module]:
    return lambda **kw: factory(**{**preset, **kw})


def _ablated(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """The ConStyle network with ConStyle's encoder replaced by learned constants
    (:func:`irconstyle.nets.unet.ablate_constyle`); built without the training memory,
    which the ablation drops anyway."""
    def build(**kw) -> nn.Module:
        if kw.get("use_constyle") is False:
            raise ValueError("an ablated model is built from the ConStyle network; "
                             "use_constyle=False is the general network (general_*)")
        return ablate_constyle(factory(**{**kw, "constyle_train": False}))
    return build


def _injecting(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """The ConStyle network with one more keyword, ``constyle_inject``: ``"both"`` (the
    release: code and feature maps), ``"code"`` or ``"features"`` (only that part live,
    the other replaced by learned constants: :func:`irconstyle.nets.unet.ablate_constyle`).
    A model keyword, so ``model.kwargs.constyle_inject`` reaches it from a config."""
    def build(*, constyle_inject: str = "both", **kw) -> nn.Module:
        if constyle_inject not in ("both", "code", "features"):
            raise ValueError(f"constyle_inject must be 'both', 'code' or 'features', "
                             f"got {constyle_inject!r}")
        model = factory(**kw)
        return model if constyle_inject == "both" else ablate_constyle(model, inject=constyle_inject)
    build.__doc__ = factory.__doc__
    return build


MODELS: dict[str, Callable[..., nn.Module]] = {
    "constyle_nafnet": _injecting(constyle_nafnet),
    "constyle_nafnet_ablated": _ablated(constyle_nafnet),
    "general_nafnet": _preset(constyle_nafnet, dict(use_constyle=False)),
    "nafnet": NAFNet,
    **{name: _preset(NAFNet, p) for name, p in NAFNET_PRESETS.items()},
    "constyle_restormer": _injecting(constyle_restormer),
    "constyle_restormer_ablated": _ablated(constyle_restormer),
    "general_restormer": _preset(constyle_restormer, dict(use_constyle=False)),
    "restormer": Restormer,
    "constyle_plain": _injecting(constyle_plain),
    "constyle_plain_ablated": _ablated(constyle_plain),
    "plain": _preset(constyle_plain, dict(use_constyle=False)),
    "constyle_maxim": _injecting(constyle_maxim),
    "constyle_maxim_ablated": _ablated(constyle_maxim),
    "general_maxim": _preset(constyle_maxim, dict(use_constyle=False)),
    "maxim": MAXIM,
}


def model_names() -> list[str]:
    return sorted(MODELS)


def build_model(name: str, **overrides) -> nn.Module:
    """Build a model by name; ``overrides`` are its constructor's keyword arguments."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(model_names())}") from None
    return factory(**overrides)
