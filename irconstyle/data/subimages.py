"""Cut large training images into overlapping square sub-images.

Decoding a 2K PNG for every 128 px training crop starves a GPU; the field's repos
(BasicSR ``extract_subimages``, Restormer ``generate_patches_*``) therefore cut the
training set once into 512 px tiles. Tiles start every ``step`` px (384 by default: 128 px
overlap) and the last tile of a row or column is aligned to the border, so every pixel is
covered and every tile is full size. An image smaller than ``crop`` on a side is kept
whole. Tiles are written as lossless PNG with the source's pixel format (16-bit stays
16-bit). For paired folders (``input/`` + ``target/``) both sides are cut at the same
places; their files pair by identical stems.
"""
from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

from PIL import Image
from tqdm.auto import tqdm

from .io import ImageError, list_images
from .pairs import pair_identical

__all__ = ["crop_starts", "tile_boxes", "make_subimages", "main"]

_MARKER = ".subimages.json"


def crop_starts(length: int, crop: int, step: int) -> list[int]:
    """Start offsets of tiles along one axis (last tile flush with the border)."""
    if crop <= 0 or step <= 0:
        raise ValueError(f"crop and step must be positive, got {crop} and {step}")
    if length <= crop:
        return [0]
    starts = list(range(0, length - crop + 1, step))
    if starts[-1] != length - crop:
        starts.append(length - crop)
    return starts


def tile_boxes(height: int, width: int, crop: int, step: int) -> list[tuple[int, int, int, int]]:
    """PIL boxes (left, top, right, bottom) of the tiles of an image, row by row."""
    return [(x, y, min(x + crop, width), min(y + crop, height))
            for y in crop_starts(height, crop, step) for x in crop_starts(width, crop, step)]


def _cut(job: tuple[list[Path], list[Path], int, int]) -> int:
    sources, out_dirs, crop, step = job
    images = []
    for src in sources:
        try:
            img = Image.open(src)
            img.load()
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageError(f"{src}: cannot decode image ({type(err).__name__}: {err})") from err
        images.append(img)
    sizes = {im.size for im in images}
    if len(sizes) != 1:
        raise ImageError(f"{sources[0]} and {sources[1]}: sizes differ "
                         f"({' vs '.join(f'{w}x{h}' for w, h in (im.size for im in images))})")
    w, h = images[0].size
    boxes = tile_boxes(h, w, crop, step)
    for src, img, out in zip(sources, images, out_dirs):
        for k, box in enumerate(boxes):
            img.crop(box).save(out / f"{src.stem}_s{k:03d}.png")
    return len(boxes)


def make_subimages(inputs: Sequence[str | os.PathLike], outputs: Sequence[str | os.PathLike], *,
                   crop: int = 512, step: int = 384, workers: int = 1,
                   progress: bool = True) -> int:
    """Tile every image of ``inputs[0]`` (and the same-stem partners in ``inputs[1]``,
    if given) into the matching ``outputs`` folders; returns the number of tiles per
    folder. Idempotent: a folder done with the same parameters is left alone."""
    inputs, outputs = [Path(p) for p in inputs], [Path(p) for p in outputs]
    if len(inputs) not in (1, 2) or len(inputs) != len(outputs):
        raise ValueError("give one input folder (and one output), or an lq/gt pair of each")
    if len(inputs) == 2:
        groups = [[p.lq, p.gt] for p in pair_identical(*inputs)]
    else:
        groups = [[p] for p in list_images(inputs[0])]
    record = {"inputs": [str(p.resolve()) for p in inputs], "crop": crop, "step": step,
              "images": len(groups)}
    try:
        m = json.loads((outputs[0] / _MARKER).read_text())
        if {k: m.get(k) for k in record} == record:
            return int(m["tiles"])
    except (OSError, ValueError, KeyError):
        pass
    for out in outputs:
        out.mkdir(parents=True, exist_ok=True)
    jobs = [(g, outputs, crop, step) for g in groups]
    bar = dict(total=len(jobs), unit="img", desc="sub-images", disable=not progress)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            counts = list(tqdm(pool.map(_cut, jobs, chunksize=4), **bar))
    else:
        counts = [_cut(j) for j in tqdm(jobs, **bar)]
    tiles = sum(counts)
    for out in outputs:
        (out / _MARKER).write_text(json.dumps({**record, "tiles": tiles}, indent=1))
    return tiles


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Cut training images into overlapping "
                                                 "crop x crop sub-images (PNG).")
    parser.add_argument("--input", required=True, help="folder of images (lq side if paired)")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--target", help="paired gt folder (same stems as --input)")
    parser.add_argument("--output-target", help="output folder for the gt tiles")
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument("--step", type=int, default=384, help="tile stride (crop - overlap)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if bool(args.target) != bool(args.output_target):
        parser.error("--target and --output-target go together")
    inputs = [args.input] + ([args.target] if args.target else [])
    outputs = [args.output] + ([args.output_target] if args.output_target else [])
    n = make_subimages(inputs, outputs, crop=args.crop, step=args.step,
                       workers=args.workers, progress=not args.no_progress)
    print(f"{n} sub-images per folder in {', '.join(outputs)}")
    return 0
