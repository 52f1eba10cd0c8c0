"""Read and write images as float32 CHW tensors in [0, 1], with one error type for bad files.

Every restoration benchmark is 8-bit RGB, but the files met in the wild are not all alike.
The conversions below are the same ones the authors' cv2 ``IMREAD_COLOR`` read makes,
written down so that nothing is silent:

* grey (``L``, ``1``, 16-bit grey ``I;16``/``I``): replicated to three equal channels;
* alpha (``RGBA``, ``LA``, palette with transparency): the alpha channel is dropped, the
  colour is kept as stored (no compositing on a background);
* palette, CMYK, YCbCr, ...: converted to RGB by Pillow;
* 16-bit PNG: scaled by 1/65535. Pillow decodes 16-bit *colour* PNGs to 8 bits (it keeps
  the high byte), so those reach 8-bit precision only, as with cv2 ``IMREAD_COLOR``;
  16-bit grey PNGs keep their full precision.

Anything unreadable raises :class:`ImageError` naming the file and the problem.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

__all__ = ["ImageError", "IMAGE_EXTENSIONS", "read_image", "write_image", "list_images",
           "image_size"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

_GREY_MODES = {"1", "L", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "RGBa", "PA"}


class ImageError(ValueError):
    """An image file (or a pair of them) that cannot be used; the message names the file."""


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    img = None
    try:
        img = Image.open(path)
        img.load()  # decode now, so truncated data fails here and not later
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as err:
        if img is not None:
            img.close()  # no file handle left open by a file that failed to decode
        raise ImageError(f"{path}: cannot decode image ({type(err).__name__}: {err})") from err
    return img


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) from the file header only; cheap, for checks before a full read."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            w, h = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as err:
        raise ImageError(f"{path}: cannot read image header ({type(err).__name__}: {err})") from err
    return h, w


def _to_array(img: Image.Image, path: Path) -> np.ndarray:
    """HxWx3 float32 in [0, 1] (see the module docstring for the conversions)."""
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    # Alpha is dropped, not composited (documented above).
    if mode in ("LA", "La"):
        arr = np.asarray(img.convert("LA"))[..., 0]
    elif mode in _ALPHA_MODES:
        arr = np.asarray(img.convert("RGBA"))[..., :3]
    elif mode in _GREY_MODES or mode == "RGB":
        arr = np.asarray(img)
    else:  # CMYK, YCbCr, LAB, HSV, ...
        arr = np.asarray(img.convert("RGB"))

    if arr.dtype == np.bool_:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype.kind in "ui" and arr.dtype.itemsize >= 2:
        # 16-bit files arrive as uint16 (I;16) or int32 (I); both hold 0..65535.
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageError(f"{path}: integer image with values outside 0..65535 "
                             f"(mode {img.mode}); not a 16-bit image")
        arr = arr.astype(np.float32) / 65535.0
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ImageError(f"{path}: floating-point image outside [0, 1] (mode {img.mode})")
        arr = arr.astype(np.float32)
    else:
        raise ImageError(f"{path}: unsupported pixel type {arr.dtype} (mode {img.mode})")

    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)  # grey -> RGB by replication
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(f"{path}: expected 3 colour channels after conversion, got shape "
                         f"{arr.shape} (mode {img.mode})")
    return arr


def read_image(path: str | os.PathLike) -> Tensor:
    """Read one image as a float32 tensor of shape (3, H, W) in [0, 1]."""
    path = Path(path)
    with _open(path) as img:
        arr = _to_array(img, path)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def write_image(path: str | os.PathLike, img: Tensor) -> None:
    """Write a (3, H, W) or (H, W) tensor in [0, 1] as 8-bit (clamped, rounded)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = img.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    if arr.ndim == 3:
        arr = arr.transpose(1, 2, 0)
    Image.fromarray(np.ascontiguousarray(arr)).save(path)


def list_images(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Sorted image files of a folder (by extension, case-insensitive).

    Raises :class:`ImageError` if the folder is missing or holds no image, so an empty
    data set never trains silently on nothing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern)
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                   and not p.name.startswith("."))
    if not files:
        raise ImageError(f"{folder}: folder holds no image "
                         f"(looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files
