"""The medium offline set: 43 natural photos from four package sources, split by photo.

The mini-benchmark (:mod:`.minibench`) has two test photos; this set has enough test
photos (12) for a confidence interval, and still needs no network. The PNGs (longer side
256 px, a few MiB) live in ``irconstyle/data/medium/`` as package data, with
``manifest.json`` (per photo: source package and version, original path, licence, original
size, SHA-256 of the PNG and of its pixels, split) and ``NOTICE.md`` (attribution). They
are made by ``python -m data_scripts.prepare_medium``, which also verifies them.

The dataset is :class:`.minibench.MiniBench` over a different :class:`.minibench.PhotoSet`:
the same four degradations with the same parameters, evaluation images seeded by task and
photo name only (salt ``"medium"``), training images by ``seed``.
``motorcycle_left`` keeps its measured depth for dehazing; the others use the depth proxy.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .images import downscale
from .io import read_image
from .minibench import MiniBench, PhotoSet

__all__ = ["MEDIUM_DIR", "MANIFEST_NAME", "MAX_SIDE", "PREPARE_COMMAND", "read_manifest",
           "medium_photos", "medium_dataset", "medium_test_photos", "pixel_sha256"]

MEDIUM_DIR = Path(__file__).resolve().parent / "medium"
MANIFEST_NAME = "manifest.json"
MAX_SIDE = 256
PREPARE_COMMAND = "python -m data_scripts.prepare_medium"
SPLIT_NAMES = ("train", "val", "test")


def pixel_sha256(img: Tensor) -> str:
    """SHA-256 of an image's 8-bit HxWx3 pixels: unlike the file's hash, it does not
    depend on how the PNG was compressed."""
    arr = img.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def _folder(root: str | os.PathLike | None) -> Path:
    return MEDIUM_DIR if root is None else Path(root)


def read_manifest(root: str | os.PathLike | None = None) -> dict:
    """The manifest of the prepared folder (default: the package's copy); a clear error
    naming the folder and the preparing command when it is missing or malformed."""
    folder = _folder(root)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no prepared medium photo set ({MANIFEST_NAME} "
                                f"missing); prepare it with `{PREPARE_COMMAND} --out {folder}`")
    try:
        manifest = json.loads(path.read_text())
        images = manifest["images"]
        for item in images:
            if item["split"] not in SPLIT_NAMES:
                raise ValueError(f"photo {item['name']!r} has split {item['split']!r}")
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: malformed medium manifest ({err})") from err
    return manifest


@functools.lru_cache(maxsize=8)
def _splits(folder: Path) -> dict[str, tuple[str, ...]]:
    manifest = read_manifest(folder)
    missing = [i["file"] for i in manifest["images"] if not (folder / i["file"]).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: {len(missing)} prepared photos missing (e.g. "
                                f"{missing[0]}); prepare them with `{PREPARE_COMMAND} "
                                f"--out {folder}`")
    return {s: tuple(i["name"] for i in manifest["images"] if i["split"] == s)
            for s in SPLIT_NAMES}


@functools.lru_cache(maxsize=128)
def _load_cached(folder: Path, name: str, max_side: int | None) -> Tensor:
    return downscale(read_image(folder / f"{name}.png"), max_side)


class _Loader:
    """``load(name, max_side)`` for one folder (a class, not a closure, so datasets pickle
    into DataLoader workers)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, name: str, max_side: int | None) -> Tensor:
        return _load_cached(self.folder, name, max_side).clone()


def medium_photos(root: str | os.PathLike | None = None) -> PhotoSet:
    """The medium set's photos (split lists from the manifest) as a :class:`PhotoSet`."""
    folder = _folder(root).resolve()
    return PhotoSet(tag="medium", splits=_splits(folder), load=_Loader(folder))


def medium_dataset(*, split: str, task: str, root: str | os.PathLike | None = None,
                   max_side: int | None = None, **kwargs) -> MiniBench:
    """One split of the medium set for ``task``; other keywords as :class:`MiniBench`
    (sigma, sigma_range, patch_size, seed, repeats, variants, blur_length). ``max_side``
    None keeps the prepared 256 px photos."""
    return MiniBench(split=split, task=task, max_side=max_side, photos=medium_photos(root),
                     **kwargs)


def medium_test_photos(root: str | os.PathLike | None = None) -> tuple[list[Tensor], list[str]]:
    """The clean test photos (3, H, W) in [0, 1] and their names, in manifest order: for
    analyses of clean content (e.g. latent codes) on the photos no model trained on."""
    photos = medium_photos(root)
    names = list(photos.names("test"))
    return [photos.load(n, None) for n in names], names
