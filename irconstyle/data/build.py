"""``build_dataset(kind, split=..., **kwargs)``: the one explicit table of dataset kinds.

| kind        | arguments (besides ``split``, ``patch_size``, ``seed``, ``repeats``)          |
|-------------|-------------------------------------------------------------------------------|
| minibench   | task (denoise/deblur/derain/dehaze), sigma (number or "random"), sigma_range, |
|             | variants, max_side, blur_length                                               |
| medium      | the minibench arguments (max_side None: the prepared 256 px) + root (default: |
|             | the package's irconstyle/data/medium); 43 photos, 27/4/12 (train/val/test)    |
| paired      | lq_dir, gt_dir: identical file stems (GoPro, HIDE, RealBlur, Rain13K, Test*)  |
| denoise     | gt_dir, sigma, sigma_range, reference_noise: clean images + AWGN on the fly   |
| dehaze      | hazy_dir, clean_dir, gt_border: pairs by ID (``0001_0.8_0.2.jpg`` -> ``0001``)|
| derain      | root, or lq_dir + gt_dir: input/target, rain/norain, rain-*/norain-* layouts  |

All arguments are keyword-only and named as in the YAML configs.
"""
from __future__ import annotations

import os
from typing import Callable

from torch.utils.data import Dataset

from .benchmarks import get_benchmark
from .medium import medium_dataset
from .minibench import MiniBench
from .paired import dehaze_dataset, denoise_dataset, derain_dataset, paired_dataset

__all__ = ["DATASETS", "build_dataset", "benchmark_dataset", "dataset_kinds"]

DATASETS: dict[str, Callable[..., Dataset]] = {
    "minibench": MiniBench,
    "medium": medium_dataset,
    "paired": paired_dataset,
    "denoise": denoise_dataset,
    "dehaze": dehaze_dataset,
    "derain": derain_dataset,
}


def dataset_kinds() -> list[str]:
    return list(DATASETS)


def build_dataset(kind: str, *, split: str, **kwargs) -> Dataset:
    if kind not in DATASETS:
        raise KeyError(f"unknown dataset kind {kind!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[kind](split=split, **kwargs)


def benchmark_dataset(name: str, root: str | os.PathLike, *, split: str, **kwargs) -> Dataset:
    """A prepared benchmark (see ``data_scripts/``) as a dataset: e.g.
    ``benchmark_dataset("CBSD68", "data", split="test", sigma=25)``."""
    kind, folders = get_benchmark(name).dataset_spec(root)
    return build_dataset(kind, split=split, **folders, **kwargs)
