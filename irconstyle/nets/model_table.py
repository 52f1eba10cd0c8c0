"""The model table: parameters, multiply-accumulates and CPU time of every zoo model,
and torchinfo summaries.

What is counted:
  * ``params``: parameters of the inference build (ConStyle's momentum encoder
    excluded; the queue is a buffer and never counted); ``params_train`` adds the
    momentum encoder, as the release's ``print_network`` shows during training.
  * ``macs``: multiply-accumulates of one eval forward, measured by
    ``torch.utils.flop_counter.FlopCounterMode`` (MACs = FLOPs / 2).  It counts
    convolutions (depthwise ones with their true, grouped cost), matrix products
    (``mm``/``addmm``/``bmm``, so Linear layers and attention products) and fused
    attention kernels; it does **not** count element-wise operations, normalisation,
    activations, softmax, pooling, resampling or padding.  The ConStyle query encoder
    is included for ConStyle models (it runs at test time).
  * the ablated controls (``constyle_*_ablated``, :func:`irconstyle.nets.unet.ablate_constyle`)
    have no ConStyle (their ``constyle`` column is false): ConStyle's encoder is replaced by
    learned constants (:class:`irconstyle.nets.unet.ConstantStyle`), a code of shape (128,)
    in place of ConStyle's code and three per-channel vectors of shapes (32, 1, 1),
    (64, 1, 1) and (128, 1, 1) in place of its three feature maps, broadcast over the
    batch and over H/2, H/4 and H/8 of the padded input: 352 parameters (counted in
    ``params``) instead of the query encoder's 1,190,832.  Their ``macs`` count what the
    network computes from the constants, the injection's 1x1 affine convolutions on the
    broadcast maps and the Linear on the code, and no encoder.
  * ``cpu_ms``: median wall time of an eval forward under ``torch.inference_mode``,
    after one warm-up run (the MAC count's), with the threads torch is set to use.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .zoo import build_model, model_names

__all__ = ["count_parameters", "count_macs", "time_forward", "model_table", "summarize"]


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(inference parameters, training parameters): the difference is ConStyle's
    momentum encoder, which only training builds have."""
    total = sum(p.numel() for p in model.parameters())
    cs = getattr(model, "constyle", None)
    momentum = getattr(cs, "encoder_k", None) if cs is not None else None
    extra = sum(p.numel() for p in momentum.parameters()) if momentum is not None else 0
    return total - extra, total


def _example(input_size: Sequence[int]) -> torch.Tensor:
    return torch.rand(*input_size, generator=torch.Generator().manual_seed(0))


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """Parameters not requiring grad for the block, restored afterwards (see count_macs)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def count_macs(model: nn.Module, input_size: Sequence[int] = (1, 3, 256, 256)) -> int:
    """Multiply-accumulates of one eval forward (see the module docstring for what counts).

    The parameters are frozen (``requires_grad=False``) while counting, because
    ``FlopCounterMode``'s module tracker hooks every module output that requires grad:
    without grad recording (inference mode or ``no_grad``), a view of a parameter, such as
    the ablated controls' learned constants ``expand``-ed over the batch and the feature
    maps' space (:class:`irconstyle.nets.unet.ConstantStyle`), requires grad but has no
    autograd node, and the hook crashed (``'NoneType' object has no attribute
    'next_functions'``).  Frozen, nothing requires grad, so no hook is set, and every
    operation is counted as it runs: for the ablated controls, the injection's 1x1 affine
    convolutions on the broadcast constant maps and the Linear on the constant code, which
    the network computes for every input."""
    model.eval()
    counter = FlopCounterMode(display=False)
    with _frozen(model), torch.inference_mode(), counter:
        model(_example(input_size))
    return counter.get_total_flops() // 2


def time_forward(model: nn.Module, input_size: Sequence[int] = (1, 3, 256, 256), *,
                 repeats: int = 3, warmup: int = 1) -> float:
    """Median seconds of an eval forward over ``repeats`` runs (after ``warmup`` runs)."""
    model.eval()
    x = _example(input_size)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def model_table(names: Sequence[str] | None = None, *,
                input_size: Sequence[int] = (1, 3, 256, 256), time_cpu: bool = True,
                repeats: int = 3, overrides: dict[str, dict] | None = None) -> list[dict]:
    """One row per model (default: every zoo model at its release defaults):
    ``name, constyle, size_factor, params, params_train, macs, input_size`` and, with
    ``time_cpu``, ``cpu_ms``.  ``overrides`` maps a name to builder keyword arguments.
    ``constyle`` says whether the model runs ConStyle's encoder: false for the ablated
    controls, whose learned constants the module docstring describes."""
    rows = []
    for name in names if names is not None else model_names():
        torch.manual_seed(0)
        model = build_model(name, **(overrides or {}).get(name, {}))
        params, params_train = count_parameters(model)
        row = {"name": name, "constyle": getattr(model, "constyle", None) is not None,
               "size_factor": int(getattr(model, "size_factor", 1)),
               "params": params, "params_train": params_train,
               "macs": count_macs(model, input_size), "input_size": list(input_size)}
        if time_cpu:
            # the MAC count's forward above was the warm-up
            row["cpu_ms"] = round(1000 * time_forward(model, input_size, repeats=repeats, warmup=0), 2)
        rows.append(row)
        del model
    return rows


def summarize(name: str, *, input_size: Sequence[int] = (1, 3, 64, 64), depth: int = 3,
              col_width: int = 16, **overrides) -> str:
    """A torchinfo summary of zoo model ``name`` (eval forward at ``input_size``).

    ``col_width`` characters per column (torchinfo's default is 25): at 16 the summary of a
    small model at depth 3 is under 100 characters wide, as the book's pages show a line
    unwrapped; an output shape longer than 15 characters (a large model or image) needs more."""
    import torchinfo

    model = build_model(name, **overrides).eval()
    stats = torchinfo.summary(model, input_data=[_example(input_size)], depth=depth, verbose=0,
                              mode="eval", col_names=("output_size", "num_params", "mult_adds"),
                              col_width=col_width)
    return str(stats)
