"""Reliability campaign (issue 6): fuzzed inputs through the package and injected faults,
all seeded, with counts.

    python benchmarks/reliability.py [--inputs 150] [--runs 4] [--kills 3] [--seed 0]

Inputs: ``--inputs`` random inputs per target (models, tiled inference, metrics, image
files, .npy files, weight files, paired datasets, the command line), valid and
malformed mixed.  Each ends as

* ``correct``: a result that passes the target's check (shape, range, finiteness,
  exact weights...);
* ``clear_error``: an exception raised by the package's own check (its innermost
  frame is in irconstyle/) with a message, or a one-line CLI error;
* ``undetected_damage``: a damaged weight file in a format without checksums (the
  legacy, non-zip torch format; our safetensors exports carry a SHA-256) read back
  with different values: a known limitation, counted apart;
* ``wrong``: a silent wrong result, or a valid input refused;
* ``crash``: anything else (an exception from deep inside PyTorch/NumPy, a CLI
  traceback or "internal error").

Faults: ``--runs`` training runs of the command line (``irconstyle train``), each
SIGKILLed ``--kills`` times at random steps (one kill in the middle of a checkpoint
write) and resumed, compared with an uninterrupted run (every tensor of the final
checkpoint, ``torch.equal``); checkpoint writes made to fail (disk full, interrupt,
failed rename); downloads interrupted at random offsets and resumed, and corrupt files
re-fetched.  ``data_lost`` counts runs/files whose final state differs.

Writes irconstyle/results/reliability.json (package data, read by the book) with its
provenance (command, git commit, date, torch, machine).  A few minutes on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import io
import json
import math
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

import irconstyle
from irconstyle import build_model, model_names
from irconstyle.results import results_dir
from irconstyle.runtime.environment import provenance

RESULTS = results_dir()
PKG = Path(irconstyle.__file__).resolve().parent
ROOT = PKG.parent
EXPECTED = (TypeError, ValueError, KeyError, OSError)
ODD = "dir with spaces ü 画像"


# ----------------------------------------------------------------------------- bookkeeping
class Tally:
    """Outcome counts of one target, with the first few problems kept as examples."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.examples: list[str] = []

    def add(self, outcome: str, detail: str = "") -> None:
        self.counts[outcome] += 1
        if outcome in ("crash", "wrong") and len(self.examples) < 5:
            self.examples.append(detail[:300])

    def as_dict(self) -> dict:
        keys = ("correct", "clear_error", "undetected_damage", "wrong", "crash")
        return {"tried": sum(self.counts.values()), **{k: self.counts[k] for k in keys},
                "examples": self.examples}


def _in_package(exc: BaseException) -> bool:
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return Path(frame.filename).resolve().is_relative_to(PKG)


def _where(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}: {exc}"


def judge(tally: Tally, call: Callable[[], Any], *, valid: bool | None,
          check: Callable[[Any], str | None] | None = None) -> None:
    """Run one input.  ``valid``: True (must give a result), False (must be refused),
    None (either).  ``check(result)`` returns a problem or None."""
    try:
        with warnings_silenced():
            result = call()
    except EXPECTED as exc:
        if not _in_package(exc) or not str(exc).strip():
            tally.add("crash", _where(exc))
        elif valid is True:
            tally.add("wrong", f"valid input refused: {_where(exc)}")
        else:
            tally.add("clear_error")
        return
    except Exception as exc:  # noqa: BLE001 - what the campaign counts
        tally.add("crash", _where(exc))
        return
    if valid is False:
        tally.add("wrong", "malformed input accepted")
        return
    problem = check(result) if check is not None else None
    if problem == "undetected_damage":
        tally.add("undetected_damage")
    elif problem:
        tally.add("wrong", problem)
    else:
        tally.add("correct")


@contextlib.contextmanager
def warnings_silenced():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def image_check(t: Any) -> str | None:
    if not (isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.ndim == 3
            and t.shape[0] == 3 and min(t.shape) >= 1):
        return f"not a float32 3xHxW tensor: {getattr(t, 'shape', type(t))}"
    if not (torch.isfinite(t).all() and t.min() >= 0 and t.max() <= 1):
        return "pixels outside [0, 1] or not finite"
    return None


# ----------------------------------------------------------------------------- inputs
def tiny_kwargs(name: str) -> dict:
    """Tiny builder arguments for every zoo model (the families differ in their keys)."""
    template = dict(width=8, left_blk_num=(1, 1, 1), bottom_blk_num=1, right_blk_num=(1, 1, 1))
    if name.startswith("nafnet"):
        return dict(width=8, enc_blk_nums=(1, 1, 1, 1), middle_blk_num=1, dec_blk_nums=(1, 1, 1, 1))
    if name == "restormer":
        return dict(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1)
    if name == "maxim":
        return dict(features=8, num_bottleneck_blocks=1)
    if name.endswith("maxim"):
        return dict(features=8, bottom_blk_num=1)
    if name.endswith("restormer"):
        return dict(template, num_refinement_blocks=1)
    return template


_MODELS: dict[str, torch.nn.Module] = {}


def tiny_model(name: str) -> torch.nn.Module:
    if name not in _MODELS:
        torch.manual_seed(0)
        _MODELS[name] = build_model(name, **tiny_kwargs(name)).eval()
    return _MODELS[name]


BAD_KINDS = ("nan", "inf", "uint8", "int64", "bool", "channels", "ndim", "empty", "float64",
             "float16", "numpy", "list", "device")


def malformed(kind: str, rng: random.Random) -> Any:
    h, w = rng.randint(1, 40), rng.randint(1, 40)
    x = torch.rand(1, 3, h, w)
    if kind in ("nan", "inf"):
        x.view(-1)[rng.randrange(x.numel())] = math.nan if kind == "nan" else -math.inf
        return x
    if kind == "channels":
        return torch.rand(1, rng.choice([1, 2, 4, 6]), h, w)
    if kind == "ndim":
        return rng.choice([x[0], x[None], x[0, 0]])
    if kind == "empty":
        return rng.choice([x[:0], x[:, :, :0], x[..., :0]])
    return {"uint8": lambda: (x * 255).to(torch.uint8), "int64": lambda: x.long(),
            "bool": lambda: x > 0.5, "float64": lambda: x.double(), "float16": lambda: x.half(),
            "numpy": lambda: x.numpy(), "list": lambda: x.tolist(),
            "device": lambda: torch.empty(x.shape, device="meta")}[kind]()


def valid_image(rng: random.Random, max_side: int = 48) -> torch.Tensor:
    x = torch.rand(rng.randint(1, 2), 3, rng.randint(1, max_side), rng.randint(1, max_side))
    return x * 1.4 - 0.2 if rng.random() < 0.3 else x  # noisy inputs leave [0, 1]: still valid


def same_shape_finite(x: torch.Tensor) -> Callable[[Any], str | None]:
    return lambda y: None if (isinstance(y, torch.Tensor) and y.shape == x.shape
                              and bool(torch.isfinite(y).all())) else "wrong shape or non-finite output"


def fuzz_models(n: int, rng: random.Random) -> Tally:
    tally, names = Tally(), model_names()
    for _ in range(n):
        m = tiny_model(rng.choice(names))
        if rng.random() < 0.4:
            x = valid_image(rng)
            judge(tally, lambda: _no_grad(m, x), valid=True, check=same_shape_finite(x))
        else:
            x = malformed(rng.choice(BAD_KINDS), rng)
            judge(tally, lambda: _no_grad(m, x), valid=False)
    return tally


def _no_grad(m: torch.nn.Module, x: Any) -> Any:
    with torch.no_grad():
        return m(x)


def fuzz_tiling(n: int, rng: random.Random) -> Tally:
    from irconstyle.evaluation.evaluate import restore

    tally = Tally()
    for _ in range(n):
        m = tiny_model(rng.choice(["constyle_nafnet", "plain", "restormer", "nafnet", "constyle_maxim"]))
        tile, overlap = rng.randint(8, 96), rng.choice([None, rng.randint(0, 32)])
        ensemble = rng.random() < 0.2
        if rng.random() < 0.7:
            x = valid_image(rng, max_side=150)[:1]
            # an overlap as large as the (rounded) tile is refused, clearly
            valid = True if overlap is None or overlap < tile // 8 * 8 - 8 else None
            judge(tally, lambda: restore(m, x, tile=tile, overlap=overlap, self_ensemble=ensemble),
                  valid=valid, check=same_shape_finite(x))
        else:
            x = malformed(rng.choice(BAD_KINDS[:-2]), rng)
            judge(tally, lambda: restore(m, x, tile=tile, self_ensemble=ensemble), valid=False)
    return tally


def fuzz_metrics(n: int, rng: random.Random) -> Tally:
    from irconstyle.evaluation.metrics import psnr, ssim

    tally = Tally()
    dtypes = [np.uint8, np.float32, np.float64, np.float16, np.int16, np.bool_, np.complex64]
    for _ in range(n):
        if rng.random() < 0.5:  # an image pair the metrics should score
            dtype = rng.choice(dtypes[:4])
            shape = (rng.randint(11, 40), rng.randint(11, 40), *rng.choice([(), (1,), (3,)]))
        else:
            dtype = rng.choice(dtypes)
            shape = rng.choice([(rng.randint(0, 30), rng.randint(0, 30), rng.choice([1, 3, 4])),
                                (rng.randint(0, 30), rng.randint(0, 30)), (rng.randint(1, 30),),
                                (1, 3, rng.randint(1, 20), rng.randint(1, 20))])
        a = (np.random.default_rng(rng.randrange(2**32)).random(shape) * 1.2 - 0.1)
        if dtype == np.uint8:
            a = (a * 255).clip(0, 255)
        a = a.astype(dtype)
        if a.size and a.dtype.kind == "f" and rng.random() < 0.3:
            a.flat[rng.randrange(a.size)] = rng.choice([math.nan, math.inf])
        b = a.copy() if rng.random() < 0.3 else np.flip(a).copy()
        ok = (dtype in (np.uint8, np.float32, np.float64, np.float16) and len(shape) in (2, 3)
              and (len(shape) == 2 or shape[2] in (1, 3)) and a.size > 0
              and bool(np.isfinite(a.astype(np.float64)).all()))
        for metric, min_side in ((psnr, 1), (ssim, 11)):
            valid = ok and min(shape[:2]) >= min_side
            judge(tally, lambda: metric(a, b), valid=valid,
                  check=lambda v: None if isinstance(v, float) and not math.isnan(v) else f"{v!r}")
    return tally


_FORMATS = [("PNG", ".png", {}), ("JPEG", ".jpg", {}), ("BMP", ".bmp", {}), ("TIFF", ".tif", {}),
            ("WEBP", ".webp", {}), ("GIF", ".gif", {}), ("TIFF", ".tiff", {"compression": "tiff_lzw"})]


def _encode(fmt: tuple, h: int, w: int, seed: int, mode: str = "RGB") -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, format=fmt[0], **fmt[2])
    return buf.getvalue()


def _damage(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    op = rng.choice(["none", "truncate", "flip", "overwrite", "zero"])
    at = rng.randrange(len(b))
    if op == "truncate":
        return bytes(b[:at])
    if op == "flip":
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif op == "overwrite":
        b[at:at + 8] = bytes(rng.randrange(256) for _ in range(8))
    elif op == "zero":
        b[at:at + 64] = bytes(min(64, len(b) - at))
    return bytes(b)


def fuzz_image_reader(n: int, rng: random.Random, work: Path) -> Tally:
    from irconstyle.data import read_image

    tally = Tally()
    modes = ["RGB", "RGB", "L", "RGBA", "P", "CMYK", "I;16", "F", "1", "LA"]
    for i in range(n):
        fmt = rng.choice(_FORMATS)
        mode = rng.choice(modes) if fmt[0] == "TIFF" else "RGB"
        path = work / f"bild {i} ü{fmt[1]}"
        path.write_bytes(_damage(_encode(fmt, rng.randint(1, 32), rng.randint(1, 32), i, mode), rng))
        judge(tally, lambda: read_image(path), valid=None, check=image_check)
    return tally


def fuzz_npy_reader(n: int, rng: random.Random, work: Path) -> Tally:
    from irconstyle.evaluation.evaluate import read_input

    tally = Tally()
    for i in range(n):
        dtype = rng.choice([np.uint8, np.float32, np.float64, np.float16, np.int32, np.bool_])
        shape = rng.choice([(rng.randint(0, 12), rng.randint(0, 12)),
                            (rng.randint(0, 12), rng.randint(0, 12), rng.choice([1, 3, 4])),
                            (3, rng.randint(1, 12), rng.randint(1, 12)), (rng.randint(1, 5),),
                            (1, 3, 4, 4)])
        scale = rng.choice([1.0, 1.0, 255.0])
        arr = (np.random.default_rng(i).random(shape) * scale)
        arr = (arr * (255 if dtype == np.uint8 else 1)).astype(dtype)
        if arr.size and arr.dtype.kind == "f" and rng.random() < 0.2:
            arr.flat[0] = rng.choice([math.nan, math.inf])
        path = work / f"array {i} ä.npy"
        np.save(path, arr)
        judge(tally, lambda: read_input(path), valid=None, check=image_check)
    return tally


def fuzz_weights_reader(n: int, rng: random.Random, work: Path) -> Tally:
    from irconstyle.train import save_weights
    from irconstyle.checkpoints.weights import read_weights

    tally = Tally()
    m = tiny_model("plain")
    ref = {k: v.clone() for k, v in m.state_dict().items()}
    originals = {}
    torch.save({"model": ref, "ema": None}, work / "ckpt.pt")
    torch.save({"params": ref}, work / "legacy.pth", _use_new_zipfile_serialization=False)
    save_weights(m, work / "w.safetensors", metadata={"model": "plain"})
    for p in (work / "ckpt.pt", work / "legacy.pth", work / "w.safetensors"):
        originals[p.suffix] = p.read_bytes()

    def check(suffix: str) -> Callable[[Any], str | None]:
        def inner(w) -> str | None:
            sd = next(iter(w.variants.values()))
            same = sd.keys() == ref.keys() and all(torch.equal(sd[k], ref[k]) for k in ref)
            if same:
                return None
            return "damaged zip checkpoint read back silently" if suffix == ".pt" else "undetected_damage"
        return inner

    for i in range(n):
        suffix = rng.choice(list(originals))
        path = work / f"gewichte {i}{suffix}"
        path.write_bytes(_damage(originals[suffix], rng))
        judge(tally, lambda: read_weights(path), valid=None, check=check(suffix))
    return tally


def fuzz_datasets(n: int, rng: random.Random, work: Path) -> Tally:
    from irconstyle.data import build_dataset

    tally = Tally()
    for i in range(n):
        root = work / f"set {i} ü"
        fmt = rng.choice(_FORMATS[:5])
        for sub in ("lq", "gt"):
            (root / sub).mkdir(parents=True)
            for j in range(2):
                size = (20, 20) if rng.random() < 0.9 else (20, 24)  # sometimes a size mismatch
                (root / sub / f"img {j}{fmt[1]}").write_bytes(_encode(fmt, *size, j))
        victim = root / rng.choice(["lq", "gt"]) / f"img {rng.randrange(2)}{fmt[1]}"
        victim.write_bytes(_damage(victim.read_bytes(), rng))
        split = rng.choice(["test", "train"])

        def read_all(root=root, split=split):
            ds = build_dataset("paired", split=split, lq_dir=root / "lq", gt_dir=root / "gt",
                               patch_size=16)
            return [ds[k] for k in range(len(ds))]

        def check(items) -> str | None:
            for it in items:
                for key in ("lq", "gt"):
                    problem = image_check(it[key])
                    if problem:
                        return f"{key}: {problem}"
                if it["lq"].shape != it["gt"].shape:
                    return "lq and gt differ in size"
            return None

        judge(tally, read_all, valid=None, check=check)
    return tally


_CLI_TINY = [a for k, v in tiny_kwargs("constyle_nafnet").items()
             for a in ("--model-arg", f"{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}")]


def fuzz_cli(n: int, rng: random.Random, work: Path) -> Tally:
    """``irconstyle restore`` in process on random argument lists."""
    from irconstyle.cli import main

    d = work / ODD
    d.mkdir()
    g = np.random.default_rng(0)
    good = {"good.png": (20, 28), "grün bild.jpg": (18, 18), "tiny 1x1.png": (1, 1),
            "thin 3x70.bmp": (3, 70)}
    for name, (h, w) in good.items():
        Image.fromarray(g.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / name)
    np.save(d / "unit.npy", g.random((10, 14, 3)).astype(np.float32))
    raw = (d / "good.png").read_bytes()
    bad = {"truncated.png": raw[: len(raw) // 2], "empty.png": b"", "notes.txt": b"text\n",
           "random.png": g.integers(0, 256, 300, dtype=np.uint8).tobytes(), "weights.pt": b"\0" * 64}
    for name, data in bad.items():
        (d / name).write_bytes(data)
    np.save(d / "nan.npy", np.full((8, 8, 3), np.nan, np.float32))
    np.save(d / "bytes255.npy", g.random((8, 8, 3)) * 255)
    (d / "no images").mkdir()
    good_inputs = [*good, "unit.npy"]
    bad_inputs = ["truncated.png", "empty.png", "notes.txt", "random.png", "nan.npy",
                  "bytes255.npy", "missing ü.png", "no images"]
    good_opts = [[], ["--tile", "16"], ["--tile", "24", "--tile-overlap", "4"], ["--self-ensemble"]]
    bad_opts = [["--tile", "0"], ["--tile", "x"], ["--tile-overlap", "-2"],
                ["--tile", "8", "--tile-overlap", "8"], ["--weights", str(d / "weights.pt")],
                ["--model-arg", "width"], ["--model-arg", "width=[1,"], ["--model", "nope"],
                ["--weights", str(d / "absent.safetensors")], ["--device", "nonsense"]]
    if torch.cuda.is_available():
        good_opts.append(["--device", "cuda"])
    else:
        bad_opts.append(["--device", "cuda"])
    tally = Tally()
    for i in range(n):
        if rng.random() < 0.4:  # a valid call
            inputs, opts = rng.sample(good_inputs, rng.randint(1, 3)), rng.choice(good_opts)
        else:
            inputs = rng.sample(good_inputs + bad_inputs, rng.randint(1, 3))
            opts = rng.choice(good_opts + bad_opts * 2)
        argv = ["restore", *(str(d / x) for x in inputs), "--out", str(work / f"out {i} ü"),
                "--model", "constyle_nafnet", *_CLI_TINY, *opts]
        run_cli(tally, main, argv, opts in good_opts and all(x in good_inputs for x in inputs))
    return tally


def run_cli(tally: Tally, main: Callable, argv: list[str], expect_ok: bool) -> None:
    """One in-process CLI call: exit 0, or 1 with one ``irconstyle: error:`` line, or 2
    (argparse usage); a traceback or an "internal error" is a crash."""
    err = io.StringIO()
    what = shlex.join(argv)[-240:]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
                warnings_silenced():
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse usage errors: exit 2 and a usage line
                code = exc.code
    except BaseException as exc:  # noqa: BLE001 - an exception escaping main is a crash
        tally.add("crash", f"{what}: {_where(exc)}")
        return
    text = err.getvalue().strip()
    if "Traceback" in text or "internal error" in text or code not in (0, 1, 2):
        tally.add("crash", f"{what}: exit {code}: {text[-200:]}")
    elif code == 0:
        tally.add("correct" if expect_ok else "wrong", "" if expect_ok else f"{what}: accepted")
    elif expect_ok:
        tally.add("wrong", f"{what}: refused: {text[-200:]}")
    elif code == 1 and (len(text.splitlines()) != 1 or not text.startswith("irconstyle: error: ")):
        tally.add("crash", f"{what}: not one error line: {text[-200:]}")
    else:
        tally.add("clear_error")


def fuzz_cli_train_evaluate(n: int, rng: random.Random, work: Path) -> Tally:
    """``irconstyle train`` and ``irconstyle evaluate`` in process, mostly with bad
    arguments (a valid call trains 2 steps or scores the mini-benchmark)."""
    from irconstyle.cli import main

    (work / "garbage.yml").write_text("model: [\n")
    (work / "list.yml").write_text("[1, 2]\n")
    (work / "empty dir ü").mkdir()
    base = ["total_iters=2", "num_workers=0", "log.progress=false", "batch_size=2",
            "model.kwargs.width=8", "data.train.kwargs.patch_size=16",
            "data.train.kwargs.max_side=64", "data.val=null", "device=cpu", "amp=false"]
    good_train = [[], ["seed=5"], ["model.name=general_nafnet"], ["loss.style=0"]]
    bad_train = [["device=nonsense"], ["device=cuda:3"], ["total_iters=-1"], ["batch_size=abc"],
                 ["nokey=1"], ["model.name=nope"], ["data.train.kwargs.task=zzz"],
                 ["resume=/nonexistent ü.pt"], ["batch_size=1"], ["optim.lr=[1,2]"],
                 ["log.every=0"], ["data.train.kind=folder"], ["model.kwargs=3"], ["=1"],
                 ["total_iters"], ["data.train.kwargs.sigma=nan"], ["recipe=magic"]]
    bad_configs = ["no/such/preset", str(work / "garbage.yml"), str(work / "list.yml"),
                   str(work / "missing ü.yml")]
    good_eval = [["--benchmark", "minibench_denoise"], ["--benchmark", "minibench_derain",
                                                         "--protocol", "canonical"]]
    bad_eval = [["--benchmark", "BSD"], ["--benchmark", "minibench_denoise", "--sigma", "nan"],
                ["--benchmark", "minibench_denoise", "--sigma", "-5"],
                ["--benchmark", "minibench_denoise", "--sigma", "x"],
                ["--benchmark", "CBSD68", "--gt", str(work / "missing")],
                ["--benchmark", "CBSD68", "--gt", str(work / "empty dir ü")],
                ["--benchmark", "GoPro", "--lq", str(work / "empty dir ü")],
                ["--benchmark", "SOTS", "--data-root", str(work / "empty dir ü")],
                ["--benchmark", "minibench_denoise", "--protocol", "matlab"],
                ["--benchmark", "minibench_denoise", "--weights", str(work / "garbage.yml")],
                ["--benchmark", "minibench_denoise", "--variant", "ema"],
                ["--benchmark", "minibench_deblur", "--tile", "-8"]]
    tally = Tally()
    for i in range(n):
        valid = rng.random() < 0.1
        if rng.random() < 0.5:
            out = f"out_dir={work / f'train {i} ü'}"
            if valid:
                argv = ["train", "smoke/constyle_nafnet", *base, out, *rng.choice(good_train)]
            elif rng.random() < 0.2:
                argv = ["train", rng.choice(bad_configs), out]
            else:
                argv = ["train", "smoke/constyle_nafnet", *base, out, *rng.choice(bad_train)]
        else:
            opts = rng.choice(good_eval) if valid else rng.choice(bad_eval)
            argv = ["evaluate", "--model", "constyle_nafnet", *_CLI_TINY, "--device", "cpu", *opts]
            # --variant without --weights picks nothing to score: still a valid call
            valid = valid or "--variant" in opts
        run_cli(tally, main, argv, valid)
    return tally


# ----------------------------------------------------------------------------- faults
TRAIN_OVERRIDES = ["batch_size=2", "model.kwargs.width=8", "data.train.kwargs.patch_size=16",
                   "data.train.kwargs.max_side=64", "data.val.kwargs.max_side=32",
                   "val_every=8", "ckpt_every=3", "log.every=1", "log.progress=false",
                   "device=cpu", "amp=false", "resume=auto"]
STATE_KEYS = ("step", "frozen", "model", "ema", "optimizer", "scheduler", "scaler", "rng", "best")


def _train(out_dir: Path, total: int, workers: int, slow_write: float = 0.0) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", IRCONSTYLE_CKPT_SLOW_WRITE=str(slow_write))
    log = open(out_dir.parent / f"{out_dir.name}.log", "ab")  # noqa: SIM115 - closed with the process
    cmd = [sys.executable, "-m", "irconstyle", "train", "smoke/constyle_nafnet",
           f"total_iters={total}", f"num_workers={workers}", f"out_dir={out_dir}", *TRAIN_OVERRIDES]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=out_dir.parent)
    log.close()
    return proc


def _finish(proc: subprocess.Popen, log: Path) -> None:
    code = proc.wait()
    if code != 0:
        raise RuntimeError(f"training exited with status {code}; end of {log}:\n"
                           + log.read_text(errors="replace")[-3000:])


def _logged_step(out_dir: Path) -> int:
    try:
        last = (out_dir / "train.csv").read_text().splitlines()[-1]
        return int(last.split(",")[0])
    except (OSError, IndexError, ValueError):
        return 0


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 300) -> bool:
    """SIGKILL the process group once ``ready()``; False if the run ended first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return False
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)


def training_kills(runs: int, kills: int, total: int, rng: random.Random, work: Path) -> dict:
    from irconstyle.train import load_checkpoint

    injected = missed = lost = 0
    details = []
    for r in range(runs):
        workers = r % 3  # 0, 1, 2 DataLoader workers: the kill takes the whole group
        ref, cut = work / f"run{r} ref", work / f"run{r} killed"
        ref.mkdir()
        cut.mkdir()
        _finish(_train(ref, total, workers), work / f"run{r} ref.log")
        points = sorted(rng.sample(range(2, total - 2), kills - 1))
        during_write = rng.randrange(kills)  # which kill falls inside a checkpoint write
        plan = points[:during_write] + ["write"] + points[during_write:]
        killed_at: list[int] = []
        for point in plan:
            # Only what this process wrote counts (not the log or a temporary of the last).
            since = time.time()
            fresh = lambda p: p.stat().st_mtime >= since  # noqa: E731
            if point == "write":
                proc = _train(cut, total, workers, slow_write=60.0)
                hit = _kill_when(proc, lambda: any(fresh(t) for t in cut.glob(".*.tmp")))
            else:
                proc = _train(cut, total, workers)
                hit = _kill_when(proc, lambda p=point: (cut / "train.csv").is_file()
                                 and fresh(cut / "train.csv") and _logged_step(cut) >= p)
            injected += hit
            missed += not hit
            killed_at.append(_logged_step(cut))  # the last step the killed process logged
        _finish(_train(cut, total, workers), work / f"run{r} killed.log")
        a, b = load_checkpoint(ref / "last.pt"), load_checkpoint(cut / "last.pt")
        same = all(_same(a[k], b[k]) for k in STATE_KEYS)
        strip = lambda p: [row.rsplit(",", 1)[0] for row in (p / "train.csv").read_text().splitlines()]  # noqa: E731
        same_log = strip(ref) == strip(cut)
        lost += not (same and same_log)
        resumed = (work / f"run{r} killed.log").read_text(errors="replace").count("resumed from")
        details.append({"run": r, "dataloader_workers": workers, "kill_plan": plan,
                        "last_logged_step_at_kill": killed_at, "resumes": resumed,
                        "final_step": int(b["step"]), "identical_state": same,
                        "identical_log": same_log,
                        "stale_temporaries": len(list(cut.glob(".*.tmp")))})
    return {"runs": runs, "steps_per_run": total, "faults_injected": injected,
            "kills_missed": missed, "data_lost": lost, "details": details}


def checkpoint_write_failures(n: int, rng: random.Random, work: Path) -> dict:
    """save_checkpoint made to fail (disk full mid-write, an interrupt, a failed rename):
    the previous checkpoint must load intact and no temporary may remain."""
    import irconstyle.train.checkpoint as ck

    path = work / "ckpt dir ü" / "last.pt"
    injected = lost = 0
    real_save, real_replace = torch.save, os.replace
    for i in range(n):
        state = {"step": i, "w": torch.randn(64, generator=torch.Generator().manual_seed(i))}
        ck.save_checkpoint(state, path)
        fault = rng.choice(["disk_full", "interrupt", "rename"])

        def failing_save(obj, f, *args, **kwargs):
            real_save(obj, f, *args, **kwargs)
            f.truncate(rng.randrange(1, max(2, f.tell())))  # only part of it reached the disk
            raise (KeyboardInterrupt() if fault == "interrupt" else OSError(28, "No space left on device"))

        def failing_replace(src, dst):
            raise PermissionError(13, "Permission denied", str(dst))

        try:
            if fault == "rename":
                os.replace = failing_replace
            else:
                torch.save = failing_save
            ck.save_checkpoint({"step": -1, "w": torch.zeros(64)}, path)
        except (OSError, KeyboardInterrupt):
            injected += 1
        finally:
            torch.save, os.replace = real_save, real_replace
        back = ck.load_checkpoint(path)
        if back["step"] != i or not torch.equal(back["w"], state["w"]) or any(path.parent.glob(".*.tmp")):
            lost += 1
    return {"faults_injected": injected, "data_lost": lost}


class _FlakyServer:
    """A stand-in for ``urlopen``: serves ``payload`` with Range support and drops the
    connection after a random number of bytes, ``drops`` times."""

    def __init__(self, payload: bytes, drops: int, rng: random.Random) -> None:
        self.payload, self.drops, self.rng, self.requests = payload, drops, rng, 0

    def __call__(self, request, timeout=None):
        self.requests += 1
        start = 0
        rng_header = request.get_header("Range")
        if rng_header:
            start = int(rng_header.split("=")[1].split("-")[0])
        body = self.payload[start:]
        cut = None
        if self.drops > 0:
            self.drops -= 1
            cut = self.rng.randrange(0, len(body))
        return _Response(body, start, cut, len(self.payload))


class _Response:
    def __init__(self, body: bytes, start: int, cut: int | None, total: int) -> None:
        self.body, self.cut, self.pos = body, cut, 0
        self.status = 206 if start else 200
        self.headers = {"Content-Length": str(len(body))}
        if start:
            self.headers["Content-Range"] = f"bytes {start}-{total - 1}/{total}"

    def getcode(self) -> int:
        return self.status

    def read(self, n: int) -> bytes:
        end = min(self.pos + n, len(self.body))
        if self.cut is not None and end > self.cut:
            partial = self.body[self.pos:self.cut]
            self.pos = self.cut
            raise http.client.IncompleteRead(partial)
        out = self.body[self.pos:end]
        self.pos = end
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def download_faults(n: int, rng: random.Random, work: Path) -> dict:
    from irconstyle.data import DownloadError, download

    interrupted = corrupted = lost = 0
    for i in range(n):
        payload = os.urandom(rng.randint(50_000, 400_000))
        sha = hashlib.sha256(payload).hexdigest()
        dest = work / f"dl {i} ü" / "archive.zip"
        dest.parent.mkdir()
        if rng.random() < 0.3:  # a corrupt copy already there (same size, wrong bytes)
            dest.write_bytes(payload[:-16] + os.urandom(16))
            corrupted += 1
        drops = rng.randint(1, 4)
        server = _FlakyServer(payload, drops, rng)
        for _ in range(drops + 1):  # each call resumes where the last one stopped
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # "checksum mismatch" notes
                    download("https://example.invalid/archive.zip", dest, sha256=sha,
                             retries=0, opener=server, progress=False)
                break
            except DownloadError:
                interrupted += 1
        ok = dest.is_file() and hashlib.sha256(dest.read_bytes()).hexdigest() == sha
        lost += not ok
    return {"downloads": n, "interruptions_injected": interrupted,
            "corrupt_files_injected": corrupted,
            "faults_injected": interrupted + corrupted, "data_lost": lost}


# ----------------------------------------------------------------------------- provenance
def provenance_of(argv: list[str]) -> dict:
    return provenance(shlex.join(["python", "benchmarks/reliability.py", *argv]))


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=150, help="fuzzed inputs per target")
    parser.add_argument("--runs", type=int, default=4, help="training runs to kill and resume")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per training run")
    parser.add_argument("--steps", type=int, default=30, help="training steps per run")
    parser.add_argument("--faults", type=int, default=30,
                        help="checkpoint-write failures and interrupted downloads (each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=RESULTS / "reliability.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    prov = provenance_of(argv)

    targets: dict[str, Callable[[int, random.Random, Path], Tally]] = {
        "models": lambda n, r, w: fuzz_models(n, r),
        "tiled_inference": lambda n, r, w: fuzz_tiling(n, r),
        "metrics": lambda n, r, w: fuzz_metrics(n, r),
        "image_reader": fuzz_image_reader,
        "npy_reader": fuzz_npy_reader,
        "weights_reader": fuzz_weights_reader,
        "paired_datasets": fuzz_datasets,
        "cli_restore": fuzz_cli,
        "cli_train_evaluate": fuzz_cli_train_evaluate,
    }
    by_target = {}
    with tempfile.TemporaryDirectory(prefix="reliability ") as tmp:
        for k, (name, run) in enumerate(targets.items()):
            work = Path(tmp) / name
            work.mkdir()
            t0 = time.perf_counter()
            by_target[name] = run(args.inputs, random.Random(args.seed * 1000 + k), work).as_dict()
            by_target[name]["seconds"] = round(time.perf_counter() - t0, 1)
            print(f"{name:16s} {json.dumps({k: v for k, v in by_target[name].items() if k != 'examples'})}",
                  flush=True)
        faults = {}
        for k, (name, run) in enumerate({
                "training_kills": lambda r, w: training_kills(args.runs, args.kills, args.steps, r, w),
                "checkpoint_write_failures": lambda r, w: checkpoint_write_failures(args.faults, r, w),
                "downloads": lambda r, w: download_faults(args.faults, r, w)}.items()):
            work = Path(tmp) / name
            work.mkdir()
            t0 = time.perf_counter()
            faults[name] = run(random.Random(args.seed * 1000 + 100 + k), work)
            faults[name]["seconds"] = round(time.perf_counter() - t0, 1)
            print(f"{name:16s} {json.dumps({k: v for k, v in faults[name].items() if k != 'details'})}",
                  flush=True)

    keys = ("tried", "correct", "clear_error", "undetected_damage", "wrong", "crash")
    totals = {k: sum(t[k] for t in by_target.values()) for k in keys}
    result = {
        "provenance": prov,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "inputs": {"total": totals, "by_target": by_target},
        "faults": {"total_injected": sum(f["faults_injected"] for f in faults.values()),
                   "data_lost": sum(f["data_lost"] for f in faults.values()), **faults},
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"inputs: {totals}")
    print(f"faults injected: {result['faults']['total_injected']}, data lost: "
          f"{result['faults']['data_lost']}  -> {args.out}")
    return result


if __name__ == "__main__":
    main()
