"""Which degraded file goes with which clean file: the pairing rules of each benchmark.

Pairing is always by name, never by sorted position: the reference pairs dehazing
folders by sorted order (bug D7), which silently mis-pairs as soon as one file is missing
or the counts differ. A file without a partner is an error that names it.

Rules:

* identical names up to the extension (GoPro, HIDE, RealBlur, Rain13K/Test*:
  ``input/x.png`` <-> ``target/x.png``);
* dehazing, by the ID before the first underscore (RESIDE: hazy ``0001_0.8_0.2.jpg``
  -> clean ``0001.png``; SOTS-indoor ``1400_3.png`` -> ``1400.png``); many hazy per clean;
* deraining, by the ID left after dropping the ``rain-``/``norain-`` prefix and a
  trailing ``x2`` (Rain100H/L: ``rain-001.png`` -> ``norain-001.png``; the JORDER release
  ``rain/norain-1x2.png`` -> ``norain/norain-1.png``); DDN Rain14000 ``3_7.jpg`` -> ``3.jpg``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .io import ImageError, list_images

__all__ = ["Pair", "pair_identical", "pair_by_key", "dehaze_key", "derain_key",
           "dehaze_pairs", "derain_pairs"]


@dataclass(frozen=True)
class Pair:
    lq: Path
    gt: Path
    name: str


def _by_stem(folder: str | os.PathLike) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for p in list_images(folder):
        if p.stem in files:
            raise ImageError(f"{p}: same name as {files[p.stem].name!r} up to the extension; "
                             f"cannot tell which one to pair")
        files[p.stem] = p
    return files


def pair_identical(lq_dir: str | os.PathLike, gt_dir: str | os.PathLike) -> list[Pair]:
    """Pairs of files with the same name (up to the extension: ``x.jpg`` pairs with
    ``x.png``) in two folders; every file needs its partner."""
    lq, gt = _by_stem(lq_dir), _by_stem(gt_dir)
    for missing, have, other in ((sorted(set(lq) - set(gt)), lq, gt_dir),
                                 (sorted(set(gt) - set(lq)), gt, lq_dir)):
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ImageError(f"{have[missing[0]]}: no partner named {missing[0]!r} in "
                             f"{other}{more}")
    return [Pair(lq[n], gt[n], n) for n in sorted(lq)]


def pair_by_key(lq_files: Sequence[Path], gt_files: Sequence[Path],
                lq_key: Callable[[str], str], gt_key: Callable[[str], str] | None = None,
                ) -> list[Pair]:
    """Pair each degraded file with the clean file of the same key (keys from file
    stems). Several degraded files may share one clean file; clean files without a
    degraded partner are ignored (a clean folder may hold more than a subset uses)."""
    gt_key = gt_key or lq_key
    gt: dict[str, Path] = {}
    for p in gt_files:
        k = gt_key(p.stem)
        if k in gt:
            raise ImageError(f"{p}: clean files {gt[k].name!r} and {p.name!r} share the "
                             f"id {k!r}; cannot tell which one to pair")
        gt[k] = p
    pairs = []
    for p in lq_files:
        k = lq_key(p.stem)
        if k not in gt:
            where = gt_files[0].parent if gt_files else "the clean folder"
            raise ImageError(f"{p}: no clean partner with id {k!r} in {where}")
        pairs.append(Pair(p, gt[k], p.stem))
    return pairs


def dehaze_key(stem: str) -> str:
    """``0001_0.8_0.2`` -> ``0001`` (RESIDE ``{id}_{A}_{beta}``); a clean ``0001`` -> ``0001``."""
    return stem.split("_", 1)[0]


_RAIN_PREFIX = re.compile(r"^(no)?rain[-_]?", re.IGNORECASE)
_DDN_SUFFIX = re.compile(r"^(.+)_\d+$")


def derain_key(stem: str) -> str:
    """``rain-001`` / ``norain-001`` -> ``001``; ``norain-1x2`` -> ``1``; other stems unchanged."""
    key = _RAIN_PREFIX.sub("", stem)
    return re.sub(r"x2$", "", key) if key != stem else key


def dehaze_pairs(hazy_dir: str | os.PathLike, clean_dir: str | os.PathLike) -> list[Pair]:
    return pair_by_key(list_images(hazy_dir), list_images(clean_dir), dehaze_key)


def _is_clean_name(p: Path) -> bool:
    return p.stem.lower().startswith("norain")


def derain_pairs(root: str | os.PathLike | None = None, *, lq_dir: str | os.PathLike | None = None,
                 gt_dir: str | os.PathLike | None = None) -> list[Pair]:
    """Pairs of a deraining set in any of its published layouts.

    Give ``root`` with ``input/`` + ``target/`` (identical names: Restormer's Rain13K and
    Test sets), ``rain/`` + ``norain/``, or ``rain-*`` and ``norain-*`` files side by side
    (Rain100H/L); or give ``lq_dir`` and ``gt_dir`` explicitly.
    """
    if root is not None:
        root = Path(root)
        if (root / "input").is_dir() and (root / "target").is_dir():
            return pair_identical(root / "input", root / "target")
        for rainy, clean in (("rain", "norain"), ("rainy", "norain"),
                             ("rainy_image", "ground_truth")):
            if (root / rainy).is_dir() and (root / clean).is_dir():
                lq_dir, gt_dir = root / rainy, root / clean
                break
        else:
            lq_dir = gt_dir = root
    if lq_dir is None or gt_dir is None:
        raise ValueError("derain_pairs needs root, or both lq_dir and gt_dir")
    lq_dir, gt_dir = Path(lq_dir), Path(gt_dir)
    if lq_dir == gt_dir:  # rain-* and norain-* side by side
        files = list_images(lq_dir)
        lq = [p for p in files if not _is_clean_name(p)]
        gt = [p for p in files if _is_clean_name(p)]
        if not gt:
            raise ImageError(f"{lq_dir}: no clean 'norain-*' image next to the rainy ones "
                             f"(and no input/target or rain/norain sub-folders)")
    else:
        lq, gt = list_images(lq_dir), list_images(gt_dir)
    gt_keys = {derain_key(p.stem) for p in gt}

    def lq_key(stem: str) -> str:
        k = derain_key(stem)
        ddn = _DDN_SUFFIX.match(k)  # DDN: several rainy versions {id}_{k} per clean {id}
        return ddn.group(1) if k not in gt_keys and ddn else k

    return pair_by_key(lq, gt, lq_key, derain_key)
