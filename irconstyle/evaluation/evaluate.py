"""Run a restoration model on full images: restore (optionally tiled, optionally with
the x8 self-ensemble) and score under a named protocol (:mod:`irconstyle.evaluation.protocols`).

    from irconstyle.evaluation.evaluate import evaluate, evaluation_dataset
    result = evaluate(model, evaluation_dataset("minibench_denoise"),
                      protocol="basicsr", benchmark="minibench_denoise")
    result["mean"]  # {"psnr_rgb": ..., "ssim_rgb": ..., "psnr_y": ..., "ssim_y": ...}

Every result reports RGB and Y and names its protocol, the convention's source and the
weights it used.  :func:`evaluate_checkpoint` scores every variant of a checkpoint
(EMA and raw weights when both are there).
"""
from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..data.augment import dihedral, dihedral_inverse
from ..runtime.devices import fast_layout, model_device
from ..data.io import ImageError, IMAGE_EXTENSIONS, list_images, read_image, write_image
from .metrics import to_uint8
from ..nets.padding import pad_to_multiple
from .protocols import convention, score
from .tiling import check_untiled_fits, tiled_forward
from ..checkpoints.weights import Weights, load_into, read_weights

__all__ = ["restore", "evaluate", "evaluate_checkpoint", "evaluation_dataset", "load_model",
           "write_results", "read_input", "collect_inputs", "check_inputs", "restore_files",
           "release_pad", "METRIC_KEYS"]

METRIC_KEYS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")


# ----------------------------------------------------------------------------- restore
@torch.no_grad()
def restore(model: nn.Module, lq: Tensor, *, tile: int | None = None, overlap: int | None = None,
            self_ensemble: bool = False) -> Tensor:
    """Restore a BCHW batch with ``model`` in eval mode (same size out).

    ``tile``: run :func:`irconstyle.evaluation.tiling.tiled_forward` with this tile size; without
    it an image whose estimated memory exceeds what is available is refused
    (:func:`irconstyle.evaluation.tiling.check_untiled_fits`, MemoryError suggesting a tile).
    ``self_ensemble``: average the 8 dihedral transforms, each restored by a full
    forward (ConStyle included: the release's ensemble called the network without
    ConStyle's inputs, bug B12) and transformed back.
    """
    if not isinstance(lq, Tensor):
        raise TypeError(f"expected a BCHW torch.Tensor, got {type(lq).__name__}")
    if lq.ndim != 4:
        raise ValueError(f"expected a BCHW tensor, got shape {tuple(lq.shape)}")
    model.eval()
    if not tile:  # refuse what would not fit, before the forward is killed for memory
        check_untiled_fits(model, lq)

    def forward(x: Tensor) -> Tensor:
        return tiled_forward(model, x, tile=tile, overlap=overlap) if tile else model(x)

    if not self_ensemble:
        return forward(lq)
    out = torch.zeros_like(lq)
    for k in range(8):
        out += dihedral_inverse(forward(dihedral(lq, k)), k)
    return out / 8


# ----------------------------------------------------------------------------- data
def _as_chw(x: Any, what: str, name: str) -> Tensor:
    """A CHW float tensor from a CHW tensor or an HWC numpy array (uint8 or float)."""
    if isinstance(x, np.ndarray):
        if x.ndim == 2:
            x = x[:, :, None].repeat(3, axis=2)
        if x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"{name}: {what} must be HxWx3, got shape {x.shape}")
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
        t = t.float() / 255.0 if x.dtype == np.uint8 else t.float()
    elif isinstance(x, Tensor):
        t = x[0] if x.ndim == 4 and x.shape[0] == 1 else x
        if t.ndim != 3 or t.shape[0] != 3:
            raise ValueError(f"{name}: {what} must be 3xHxW, got shape {tuple(x.shape)}")
        t = t.float()
    else:
        raise TypeError(f"{name}: {what} must be a tensor or a numpy array, got {type(x).__name__}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: {what} contains NaN or infinite values")
    return t


def _items(data: Iterable) -> Iterable[tuple[str, Tensor, Tensor]]:
    """(name, lq, gt) from dataset items: dicts with lq/gt/name, (lq, gt) or (name, lq, gt)."""
    for i, item in enumerate(data):
        if isinstance(item, Mapping):
            name = str(item.get("name", f"{i:04d}"))
            lq, gt = item["lq"], item["gt"]
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            name, (lq, gt) = f"{i:04d}", item
        elif isinstance(item, (tuple, list)) and len(item) == 3:
            name, lq, gt = str(item[0]), item[1], item[2]
        else:
            raise TypeError(f"item {i}: expected a dict with 'lq' and 'gt', (lq, gt) or "
                            f"(name, lq, gt), got {type(item).__name__}")
        lq, gt = _as_chw(lq, "lq", name), _as_chw(gt, "gt", name)
        if lq.shape != gt.shape:
            raise ValueError(f"{name}: lq {tuple(lq.shape)} and gt {tuple(gt.shape)} differ in size")
        yield name, lq, gt


# The data layer's names for the benchmarks whose names differ (irconstyle.data.benchmarks).
_DATA_NAMES = {"RealBlur_J": "RealBlur-J", "RealBlur_R": "RealBlur-R", "SOTS": "SOTS-outdoor"}


def evaluation_dataset(benchmark: str, *, data_root: str | os.PathLike | None = None,
                       lq_dir: str | os.PathLike | None = None,
                       gt_dir: str | os.PathLike | None = None,
                       root: str | os.PathLike | None = None, sigma: float = 25,
                       reference_noise: bool = True):
    """The evaluation set of ``benchmark``, with the pairing rule of its task.

    * ``minibench_<task>``: the offline mini-benchmark's test split;
    * ``data_root``: a benchmark prepared by ``data_scripts/`` in the canonical layout
      (:func:`irconstyle.data.benchmark_dataset`);
    * otherwise folders: denoising takes the clean images (``gt_dir``) and adds AWGN of
      ``sigma`` (``reference_noise``, the default: the ``np.random.seed(0)`` noise of the
      release's and Restormer's test scripts, so every protocol scores the published noisy
      inputs; ``False``: noise seeded by the image's name);
      deblurring pairs identical names in ``lq_dir``/``gt_dir``; deraining accepts
      ``root`` or the two folders; dehazing pairs hazy ``lq_dir`` with clean ``gt_dir``
      by ID.
    """
    from ..data import build_dataset
    from .protocols import BENCHMARKS, canonical_name

    name = canonical_name(benchmark)
    if name.startswith("minibench_"):
        return build_dataset("minibench", split="test", task=name[len("minibench_"):], sigma=sigma)
    task = BENCHMARKS[name].task
    noise = dict(sigma=sigma, reference_noise=reference_noise) if task == "denoise" else {}
    if data_root is not None:
        from ..data import benchmark_dataset

        return benchmark_dataset(_DATA_NAMES.get(name, name), data_root, split="test", **noise)
    if task == "denoise":
        if gt_dir is None:
            raise ValueError(f"{benchmark}: denoising needs the clean images' folder (gt_dir) "
                             "or a prepared data root")
        return build_dataset("denoise", split="test", gt_dir=gt_dir, **noise)
    if task == "derain" and root is not None:
        return build_dataset("derain", split="test", root=root)
    if lq_dir is None or gt_dir is None:
        raise ValueError(f"{benchmark}: give the degraded (lq_dir) and clean (gt_dir) folders, "
                         "or a prepared data root")
    if task == "derain":
        return build_dataset("derain", split="test", lq_dir=lq_dir, gt_dir=gt_dir)
    if task == "dehaze":
        return build_dataset("dehaze", split="test", hazy_dir=lq_dir, clean_dir=gt_dir)
    return build_dataset("paired", split="test", lq_dir=lq_dir, gt_dir=gt_dir)


# ----------------------------------------------------------------------------- evaluate
def release_pad(model: nn.Module) -> int:
    """What the release's test datasets pad lq and gt to: 8, or 64 for the MAXIM
    datasets (the release's ``data/image_datasets.py``, fidelity row D2); a model with a
    larger factor (the 16 of the original NAFNet) pads further inside and crops back, as
    the release's does."""
    return 64 if int(getattr(model, "size_factor", 8)) % 64 == 0 else 8


def evaluate(model: nn.Module, dataset_or_pairs: Iterable, *, protocol: str, benchmark: str,
             tile: int | None = None, overlap: int | None = None, self_ensemble: bool = False,
             save_dir: str | os.PathLike | None = None, save_images: bool = False,
             device: str | torch.device | None = None, weights: str = "as given",
             progress: Callable[[str, dict], None] | None = None) -> dict:
    """Restore every image and score it under ``protocol`` for ``benchmark``.

    Returns ``{"protocol", "benchmark", "primary", "source", "weights", "tile",
    "self_ensemble", "n_images", "mean": {...}, "images": [{"name", "psnr_rgb",
    "ssim_rgb", "psnr_y", "ssim_y", "seconds"}, ...]}``.  With ``save_dir``, writes
    ``results.json`` and ``results.csv`` there (and the restored PNGs under
    ``images/`` with ``save_images``).  ``progress(name, row)`` is called per image.
    """
    conv = convention(benchmark, protocol)
    if device is not None:
        model = model.to(device)
    dev = model_device(model)
    model.eval()
    factor = release_pad(model)
    rows = []
    out_dir = Path(save_dir) if save_dir is not None else None
    for name, lq, gt in _items(dataset_or_pairs):
        t0 = time.perf_counter()
        x = lq[None].to(dev)
        g = gt[None]
        if conv.pad_gt:  # the release: lq and gt padded, output not cropped (D2)
            x, g = pad_to_multiple(x, factor), pad_to_multiple(g, factor)
        out = restore(model, x, tile=tile, overlap=overlap, self_ensemble=self_ensemble).cpu()
        out_u8, gt_u8 = to_uint8(out, name=f"{name} output")[0], to_uint8(g, name=f"{name} gt")[0]
        try:
            scores = score(out_u8, gt_u8, conv)
        except ValueError as exc:  # e.g. an image too small for SSIM: name it
            raise ValueError(f"{name}: {exc}") from None
        row = {"name": name, **scores, "seconds": time.perf_counter() - t0}
        rows.append(row)
        if out_dir is not None and save_images:  # at the true size, whatever the protocol
            write_image(out_dir / "images" / f"{name}.png", out[0, :, :lq.shape[1], :lq.shape[2]])
        if progress is not None:
            progress(name, row)
    if not rows:
        raise ValueError(f"{benchmark}: the data set holds no image")
    keys = [k for k in rows[0] if k not in ("name",)]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    result = {"protocol": protocol, "benchmark": benchmark, "primary": conv.primary,
              "scorer": conv.scorer, "source": conv.source, "weights": weights,
              "tile": tile, "self_ensemble": self_ensemble, "n_images": len(rows),
              "mean": mean, "images": rows}
    if out_dir is not None:
        write_results(result, out_dir)
    return result


def evaluate_checkpoint(model: nn.Module, weights: str | os.PathLike | Weights,
                        dataset_or_pairs: Iterable, *, model_name: str | None = None,
                        variants: Iterable[str] | None = None,
                        save_dir: str | os.PathLike | None = None, **kwargs) -> dict[str, dict]:
    """:func:`evaluate` once per weight variant in the file (``ema`` and ``raw`` when both
    exist; ``variants`` picks).  Results (and files, in ``save_dir/<variant>``) per variant.
    A dataset object is re-iterated per variant, so pass a sequence, not a generator."""
    w = weights if isinstance(weights, Weights) else read_weights(weights)
    chosen = list(variants) if variants is not None else list(w.variants)
    data = dataset_or_pairs if not hasattr(dataset_or_pairs, "__next__") else list(dataset_or_pairs)
    results = {}
    for variant in chosen:
        load_into(model, w, variant, model_name=model_name)
        sub = Path(save_dir) / variant if save_dir is not None else None
        results[variant] = evaluate(model, data, save_dir=sub, weights=f"{w.path} [{variant}]",
                                    **kwargs)
    return results


def _fmt(v: Any) -> Any:
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return v


def write_results(result: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``results.json`` (everything) and ``results.csv`` (one row per image, then the mean)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jpath, cpath = out_dir / "results.json", out_dir / "results.csv"
    clean = {**result, "mean": {k: _fmt(v) for k, v in result["mean"].items()},
             "images": [{k: _fmt(v) for k, v in r.items()} for r in result["images"]]}
    jpath.write_text(json.dumps(clean, indent=2) + "\n", encoding="utf-8")
    fields = ["name", *result["mean"]]
    with open(cpath, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in result["images"]:
            w.writerow({k: _fmt(r[k]) for k in fields})
        w.writerow({"name": "mean", **{k: _fmt(v) for k, v in result["mean"].items()}})
    return jpath, cpath


# ----------------------------------------------------------------------------- models
def load_model(name: str | None = None, weights: str | os.PathLike | Weights | None = None, *,
               variant: str | None = None, device: str | torch.device | None = None,
               **kwargs: Any) -> tuple[nn.Module, str]:
    """Build a zoo model for inference and load weights; returns ``(model, label)``.

    ``name`` defaults to the model the weights file names (our checkpoints and
    safetensors exports do); the file's recorded keyword arguments are used, updated
    by ``kwargs``.  ConStyle models are built without the momentum encoder and queue
    (``constyle_train=False``) unless ``kwargs`` says otherwise.  ``variant``: ``ema``
    (the default when present), ``raw`` or ``weights``.  The model comes in the memory
    layout that is fastest on its device (:func:`irconstyle.runtime.devices.fast_layout`).
    """
    from ..nets.zoo import build_model

    w = weights if isinstance(weights, Weights) or weights is None else read_weights(weights)
    name = name or (w.model_name if w is not None else None)
    if name is None:
        where = f"{w.path}: " if w is not None else ""
        raise ValueError(f"{where}no model name given and the weights do not name their model")
    kw = {**(w.model_kwargs if w is not None else {}), **kwargs}
    try:
        if "constyle_train" in kw:
            model = build_model(name, **kw)
        else:
            try:
                model = build_model(name, constyle_train=False, **kw)
            except TypeError:  # a model without ConStyle takes no constyle_train
                model = build_model(name, **kw)
    except TypeError as exc:
        raise ValueError(f"model {name!r}: bad builder arguments {kw}: {exc}") from None
    label = "untrained (no weights)"
    if w is not None:
        variant = variant or w.default_variant()
        load_into(model, w, variant, model_name=name)
        label = f"{w.path} [{variant}]"
    if device is not None:
        model = model.to(device)
    return fast_layout(model).eval(), label


# ----------------------------------------------------------------------------- files
def read_input(path: str | os.PathLike) -> Tensor:
    """An image file, or a ``.npy`` array (HxW, HxWx3 or 3xHxW; uint8, or float in
    [0, 1]), as a float32 3xHxW tensor.  Raises :class:`ImageError` naming the file."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        return read_image(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ImageError(f"{path}: not a readable .npy array ({exc})") from None
    if arr.dtype != np.uint8 and arr.dtype.kind != "f":
        raise ImageError(f"{path}: unsupported dtype {arr.dtype} (uint8 or float in [0, 1])")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[2] != 3:
        arr = arr.transpose(1, 2, 0)
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise ImageError(f"{path}: expected an HxW, HxWx3 or 3xHxW array, got shape {arr.shape}")
    if arr.dtype != np.uint8 and not np.isfinite(arr).all():
        raise ImageError(f"{path}: array contains NaN or infinite values")
    if arr.dtype != np.uint8 and (arr.min() < 0 or arr.max() > 1):
        raise ImageError(f"{path}: float array outside [0, 1] (min {float(arr.min()):.4g}, max "
                         f"{float(arr.max()):.4g}); divide 0-255 data by 255, or clip")
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return t.float() / 255.0 if arr.dtype == np.uint8 else t.float()


def collect_inputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand folders to their images (and ``.npy`` files); files are taken as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            npys = sorted(q for q in p.glob("*.npy") if q.is_file())
            try:
                out += list_images(p)
            except ImageError:
                if not npys:
                    raise ImageError(f"{p}: folder holds no image (looked for "
                                     f"{', '.join(IMAGE_EXTENSIONS)}, .npy)") from None
            out += npys
        elif p.exists():
            out.append(p)
        else:
            raise ImageError(f"{p}: no such file or folder")
    return out


def check_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """The files :func:`restore_files` would read, each decoded once (then dropped) so
    that a bad file fails before any work, naming itself; two inputs that would
    write the same ``<stem>.png`` are refused."""
    files = collect_inputs(inputs)
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise ImageError(f"{f}: would overwrite the output of {stems[f.stem]} "
                             f"(both write {f.stem}.png)")
        stems[f.stem] = f
        read_input(f)
    return files


def restore_files(model: nn.Module, inputs: Iterable[str | os.PathLike],
                  out_dir: str | os.PathLike, *, tile: int | None = None, overlap: int | None = None,
                  self_ensemble: bool = False, device: str | torch.device | None = None,
                  check: bool = True,
                  progress: Callable[[Path, Path], None] | None = None) -> list[Path]:
    """Restore image files (or folders of them) into ``out_dir`` as ``<stem>.png``.

    With ``check`` every input is first validated by :func:`check_inputs`; images are
    then read one at a time."""
    files = check_inputs(inputs) if check else collect_inputs(inputs)
    if device is not None:
        model = model.to(device)
    dev = model_device(model)
    out_dir = Path(out_dir)
    written = []
    for f in files:
        img = read_input(f)
        out = restore(model, img[None].to(dev), tile=tile, overlap=overlap,
                      self_ensemble=self_ensemble)[0].cpu()
        target = out_dir / f"{f.stem}.png"
        write_image(target, out)
        written.append(target)
        if progress is not None:
            progress(f, target)
    return written
