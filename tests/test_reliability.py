"""Bad input, tried systematically (issue 6.1): property-based tests over the models,
tiled inference, the metrics, the image and weight readers, the datasets and the
command line.

Every input either gives a correct result or a clear error: an exception raised by the
package's own check (its innermost frame is in ``irconstyle/``, not deep inside PyTorch
or NumPy) whose message says what is wrong.  Hypothesis runs derandomized with a fixed
number of examples, so CI sees the same inputs every time.

The campaign with counts (inputs tried, clear errors, correct results, crashes) is
``benchmarks/reliability.py``; the training-resume and checkpoint-write faults are in
tests/test_resume.py and tests/test_checkpoint.py, downloads in tests/test_download.py.
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import irconstyle
from irconstyle import build_model, model_names
from irconstyle.cli import main as cli_main
from irconstyle.data import ImageError, build_dataset, read_image
from irconstyle.evaluation.evaluate import read_input, restore
from irconstyle.evaluation.metrics import psnr, ssim, ssim_matlab
from irconstyle.nets.padding import crop_to, pad_to_multiple
from irconstyle.evaluation.tiling import FEATURE_MARGIN, tiled_forward
from irconstyle.train import save_weights
from irconstyle.checkpoints.weights import WeightsError, read_weights
from test_models import TINY

PKG = Path(irconstyle.__file__).resolve().parent
# Models covered by the forward properties: every zoo entry except the NAFNet presets,
# which are the same class as "nafnet" with other widths.
MODELS = [n for n in model_names() if not n.startswith("nafnet_")]
ODD_DIR = "dir with spaces ü 画像"  # every file of these tests lives under such a path


def fuzz(n: int):
    """Deterministic hypothesis settings: n examples, same ones on every run."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def assert_clear(excinfo: pytest.ExceptionInfo) -> None:
    """Raised by the package's own check, not by PyTorch/NumPy deep in a computation,
    and with a message."""
    frame = traceback.extract_tb(excinfo.tb)[-1]
    assert Path(frame.filename).resolve().is_relative_to(PKG), (
        f"{excinfo.type.__name__}: {excinfo.value} raised at {frame.filename}:{frame.lineno}")
    assert str(excinfo.value).strip(), excinfo.type


@functools.lru_cache(maxsize=None)
def model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, **TINY[name]).eval()


@pytest.fixture(scope="module")
def odd_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("reliability") / ODD_DIR
    d.mkdir()
    return d


# ----------------------------------------------------------------------------- models
BAD_KINDS = ("nan", "+inf", "-inf", "uint8", "int64", "bool", "channels", "ndim", "empty",
             "float64", "float16", "bfloat16", "numpy", "list", "device")


def bad_input(kind: str, h: int, w: int, pos: int, channels: int = 3):
    """One malformed input of ``kind`` (h x w, the bad value at flat index ``pos``)."""
    x = torch.rand(1, channels, h, w, generator=torch.Generator().manual_seed(pos))
    if kind in ("nan", "+inf", "-inf"):
        x.view(-1)[pos % x.numel()] = {"nan": math.nan, "+inf": math.inf, "-inf": -math.inf}[kind]
        return x
    return {"uint8": lambda: (x * 255).to(torch.uint8), "int64": lambda: x.long(),
            "bool": lambda: x > 0.5, "channels": lambda: x.repeat(1, 2, 1, 1)[:, :1 + pos % 5 + (pos % 5 >= 2)],
            "ndim": lambda: (x[0], x[None], x[0, 0])[pos % 3],
            "empty": lambda: x[:, :, : pos % 2 * h, : (1 - pos % 2) * w] if pos % 3 else x[:0],
            "float64": lambda: x.double(), "float16": lambda: x.half(),
            "bfloat16": lambda: x.bfloat16(), "numpy": lambda: x.numpy(),
            "list": lambda: x.tolist(), "device": lambda: torch.empty(x.shape, device="meta")}[kind]()


@fuzz(150)
@given(name=st.sampled_from(MODELS), kind=st.sampled_from(BAD_KINDS), h=st.integers(1, 24),
       w=st.integers(1, 24), pos=st.integers(0, 10_000))
def test_models_refuse_bad_input_clearly(name: str, kind: str, h: int, w: int, pos: int) -> None:
    x = bad_input(kind, h, w, pos)
    with pytest.raises((TypeError, ValueError)) as info, torch.no_grad():
        model(name)(x)
    assert_clear(info)


@fuzz(60)
@given(name=st.sampled_from(MODELS), h=st.integers(1, 40), w=st.integers(1, 40),
       seed=st.integers(0, 2**16))
def test_any_size_even_below_the_factor_restores_and_batches_independently(
        name: str, h: int, w: int, seed: int) -> None:
    """Images smaller than the size factor (64 for MAXIM) are padded and cropped back;
    an image's output does not depend on the other images of its batch."""
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = model(name)(x)
        single = model(name)(x[1:])
    assert out.shape == x.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out[1:], single, rtol=1e-4, atol=1e-5)


def test_training_forward_refuses_a_gt_of_another_size() -> None:
    m = build_model("constyle_nafnet", **TINY["constyle_nafnet"], constyle_kwargs=dict(queue_size=8))
    with pytest.raises(ValueError, match="differ in shape") as info:
        m.train()(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 24))
    assert_clear(info)


def test_mixed_dtypes_are_allowed_under_autocast() -> None:
    """The dtype check steps aside where autocast casts inputs itself (mixed precision)."""
    x = torch.rand(1, 3, 16, 16).bfloat16()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model("constyle_nafnet")(x)
    assert out.shape == x.shape and torch.isfinite(out.float()).all()


@fuzz(60)
@given(h=st.integers(1, 90), w=st.integers(1, 90), factor=st.sampled_from([1, 2, 8, 16, 64]),
       mode=st.sampled_from(["reflect", "replicate", "constant"]))
def test_pad_then_crop_is_the_identity(h: int, w: int, factor: int, mode: str) -> None:
    x = torch.rand(1, 3, h, w)
    y = pad_to_multiple(x, factor, mode)
    assert y.shape[-2] % factor == 0 and y.shape[-1] % factor == 0
    assert y.shape[-2] - h < factor and y.shape[-1] - w < factor
    assert torch.equal(crop_to(y, h, w), x)


# ----------------------------------------------------------------------------- tiling
@fuzz(40)
@given(name=st.sampled_from(["constyle_nafnet", "nafnet", "restormer", "constyle_maxim"]),
       kind=st.sampled_from(BAD_KINDS[:-2] + ("float_tile",)), pos=st.integers(0, 10_000),
       ensemble=st.booleans())
def test_tiled_restore_refuses_bad_input_clearly(name: str, kind: str, pos: int,
                                                 ensemble: bool) -> None:
    """The ConStyle tiled path calls the encoder and restore() directly, past the
    model's own check; tiled_forward validates the whole image first."""
    x = torch.rand(1, 3, 40, 40) if kind == "float_tile" else bad_input(kind, 40, 40, pos)
    with pytest.raises((TypeError, ValueError)) as info:
        restore(model(name), x, tile=16.5 if kind == "float_tile" else 16,
                self_ensemble=ensemble)
    assert_clear(info)


@fuzz(25)
@given(h=st.integers(1, 120), w=st.integers(1, 120), tile=st.integers(1, 80),
       overlap=st.one_of(st.none(), st.integers(0, 24)),
       name=st.sampled_from(["constyle_nafnet", "plain", "restormer"]))
def test_tiled_any_size_keeps_the_shape_or_refuses_the_overlap(
        h: int, w: int, tile: int, overlap: int | None, name: str) -> None:
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * 131 + w))
    try:
        out = tiled_forward(model(name), x, tile=tile, overlap=overlap)
    except ValueError as exc:  # the only refusal: an overlap as large as the rounded tile
        assert "overlap" in str(exc) and overlap is not None and overlap >= tile // 8 * 8, exc
        return
    assert out.shape == x.shape and torch.isfinite(out).all()
    m = model(name)
    factor = math.lcm(m.size_factor, 8 if m.constyle is not None else 1)
    if max(h, w) <= tile // factor * factor:  # one (rounded) tile: the untiled forward
        with torch.no_grad():
            assert torch.equal(out, model(name)(x))


def peak_numel(module: torch.nn.Module, run) -> int:
    """The largest tensor (elements) any submodule receives while ``run()`` executes."""
    peak = [0]

    def hook(_mod, args):
        for a in args:
            if isinstance(a, torch.Tensor):
                peak[0] = max(peak[0], a.numel())
            elif isinstance(a, (tuple, list)):
                peak[0] = max([peak[0], *(t.numel() for t in a if isinstance(t, torch.Tensor))])

    handles = [m.register_forward_pre_hook(hook) for m in module.modules()]
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return peak[0]


@pytest.mark.parametrize("name, side", [("plain", 2048), ("constyle_nafnet", 1024)])
def test_tiled_inference_bounds_memory(name: str, side: int) -> None:
    """Restored in 128-pixel tiles, an image of any size never gives a module a tensor
    larger than an untiled forward of one tile does (with ConStyle: of one tile plus
    its feature margin, the encoder's view): the peak does not grow with the image."""
    tile = 128
    m = model(name)
    view = tile + 2 * FEATURE_MARGIN if m.constyle is not None else tile
    bound = peak_numel(m, lambda: m(torch.rand(1, 3, view, view)))
    peaks = {}
    for s in (side // 4, side):
        x = torch.rand(1, 3, s, s, generator=torch.Generator().manual_seed(s))
        out = []
        peaks[s] = peak_numel(m, lambda: out.append(
            tiled_forward(m, x, tile=tile, overlap=16, encode_max_pixels=view * view)))
        assert out[0].shape == x.shape and torch.isfinite(out[0]).all()
    assert peaks[side] == peaks[side // 4] <= bound, (peaks, bound)
    # What an untiled forward would need: at least its input plus a full-size feature map.
    assert peaks[side] * 16 < side * side * (3 + 8)


# ----------------------------------------------------------------------------- metrics
image_arrays = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.float16, np.float32, np.float64, np.int16, np.bool_,
                           np.complex64]),
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=14),
    elements=None)


@fuzz(150)
@given(a=image_arrays, same=st.booleans(), y=st.booleans(), data=st.data())
def test_metrics_return_a_number_or_refuse_clearly(a: np.ndarray, same: bool, y: bool,
                                                   data: st.DataObject) -> None:
    b = a.copy() if same else data.draw(hnp.arrays(a.dtype, a.shape), label="b")
    for metric in (psnr, ssim):
        try:
            value = metric(a, b, y_channel=y)
        except (TypeError, ValueError):
            with pytest.raises((TypeError, ValueError)) as info:
                metric(a, b, y_channel=y)
            assert_clear(info)
            continue
        assert not math.isnan(value), (metric.__name__, a.dtype, a.shape)
        if same:
            assert value == (math.inf if metric is psnr else pytest.approx(1.0))
        else:
            assert value == metric(b, a, y_channel=y)  # symmetric


@fuzz(30)
@given(a=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=3, min_side=0, max_side=12),
                   elements=st.one_of(st.floats(0, 255), st.sampled_from([math.nan, math.inf]))))
def test_ssim_matlab_refuses_non_finite_or_empty(a: np.ndarray) -> None:
    try:
        value = ssim_matlab(a, a)
    except ValueError:
        assert a.size == 0 or not np.isfinite(a).all()
        return
    assert value == pytest.approx(1.0)


# ----------------------------------------------------------------------------- image files
FORMATS = {"png": ("PNG", {}), "jpg": ("JPEG", {}), "bmp": ("BMP", {}), "tif": ("TIFF", {}),
           "webp": ("WEBP", {}), "gif.png": ("GIF", {}), "lzw.tif": ("TIFF", {"compression": "tiff_lzw"})}


def encoded(fmt: str, h: int, w: int, seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    name, kw = FORMATS[fmt]
    Image.fromarray(arr).save(buf, format=name, **kw)
    return buf.getvalue()


def check_image(t: torch.Tensor) -> None:
    assert t.dtype == torch.float32 and t.ndim == 3 and t.shape[0] == 3 and min(t.shape) >= 1
    assert torch.isfinite(t).all() and t.min() >= 0 and t.max() <= 1


@fuzz(200)
@given(fmt=st.sampled_from(list(FORMATS)), h=st.integers(1, 24), w=st.integers(1, 24),
       seed=st.integers(0, 100), op=st.sampled_from(["none", "truncate", "flip", "overwrite"]),
       where=st.floats(0, 1), k=st.integers(1, 16))
def test_image_reader_on_damaged_files(odd_dir: Path, fmt: str, h: int, w: int, seed: int,
                                       op: str, where: float, k: int) -> None:
    data = bytearray(encoded(fmt, h, w, seed))
    at = min(int(where * len(data)), len(data) - 1)
    if op == "truncate":
        data = data[:at]
    elif op == "flip":
        for i in range(k):
            data[(at + 97 * i) % len(data)] ^= 1 << (i % 8)
    elif op == "overwrite":
        data[at:at + k] = b"\xff" * k
    path = odd_dir / f"bild ü {fmt.replace('.', '_')}.{fmt.rsplit('.', 1)[-1]}"
    path.write_bytes(bytes(data))
    try:
        img = read_image(path)
    except ImageError as exc:
        assert str(path) in str(exc)
        return
    check_image(img)
    if op == "none" and fmt in ("png", "bmp", "tif", "lzw.tif"):  # lossless: exact pixels
        assert img.shape[1:] == (h, w)


MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]


@fuzz(80)
@given(mode=st.sampled_from(MODES), h=st.integers(1, 20), w=st.integers(1, 20),
       seed=st.integers(0, 1000), out_of_range=st.booleans())
def test_image_modes_become_rgb_in_unit_range(odd_dir: Path, mode: str, h: int, w: int,
                                              seed: int, out_of_range: bool) -> None:
    rng = np.random.default_rng(seed)
    if mode == "F":
        arr = rng.random((h, w)).astype(np.float32) * (3 if out_of_range else 1)
        img = Image.fromarray(arr, mode="F")
    elif mode in ("I;16", "I"):
        img = Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.uint16)).convert(mode)
    else:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
    path = odd_dir / f"mode {mode.replace(';', '_')} ä.tif"
    img.save(path)
    try:
        t = read_image(path)
    except ImageError as exc:
        assert mode == "F" and out_of_range and str(path) in str(exc)
        return
    check_image(t)
    assert t.shape[1:] == (h, w)


@fuzz(80)
@given(arr=hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.float16, np.float32, np.float64, np.int32, np.bool_]),
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6)))
def test_npy_inputs(odd_dir: Path, arr: np.ndarray) -> None:
    path = odd_dir / "eingabe ü.npy"
    np.save(path, arr)
    try:
        t = read_input(path)
    except ImageError as exc:
        assert str(path) in str(exc)
        return
    check_image(t)


@fuzz(40)
@given(fmt=st.sampled_from(list(FORMATS)), damage=st.sampled_from(["none", "truncate", "empty"]))
def test_paired_dataset_names_the_bad_file(tmp_path_factory, fmt: str, damage: str) -> None:
    root = tmp_path_factory.mktemp("pairs") / ODD_DIR
    ext = fmt.rsplit(".", 1)[-1]
    for sub in ("lq", "gt"):
        (root / sub).mkdir(parents=True)
        for i in range(2):
            (root / sub / f"bild {i} ü.{ext}").write_bytes(encoded(fmt, 20, 20, i))
    bad = root / "lq" / f"bild 1 ü.{ext}"
    raw = bad.read_bytes()
    if damage != "none":
        bad.write_bytes(raw[: len(raw) // 3] if damage == "truncate" else b"")
    ds = build_dataset("paired", split="test", lq_dir=root / "lq", gt_dir=root / "gt")
    assert len(ds) == 2
    check_image(ds[0]["lq"])
    if damage == "none":
        check_image(ds[1]["lq"])
        return
    with pytest.raises(ImageError, match="bild 1 ü") as info:
        ds[1]
    assert_clear(info)


# ----------------------------------------------------------------------------- weight files
@pytest.fixture(scope="module")
def weight_files(tmp_path_factory) -> dict[str, tuple[bytes, dict]]:
    d = tmp_path_factory.mktemp("weights")
    m = build_model("plain", **TINY["plain"])
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    torch.save({"model": sd, "ema": None}, d / "ckpt.pt")
    torch.save({"params": sd}, d / "legacy.pth", _use_new_zipfile_serialization=False)
    save_weights(m, d / "w.safetensors", metadata={"model": "plain"})
    return {p.suffix: (p.read_bytes(), sd) for p in d.iterdir()}


@fuzz(120)
@given(suffix=st.sampled_from([".pt", ".pth", ".safetensors"]),
       op=st.sampled_from(["truncate", "flip"]), where=st.floats(0, 1), bit=st.integers(0, 7))
def test_damaged_weight_files(weight_files, tmp_path_factory, suffix: str, op: str,
                              where: float, bit: int) -> None:
    """A damaged weights file is refused with a WeightsError naming it, or reads back:
    a zip checkpoint (torch.save's format) then holds exactly the original tensors,
    since its CRC-32s are verified.  The legacy format and safetensors carry no
    checksum: a flipped bit inside a tensor goes unnoticed there (documented)."""
    data, ref = weight_files[suffix]
    data = bytearray(data)
    at = min(int(where * len(data)), len(data) - 1)
    if op == "truncate":
        data = data[:at]
    else:
        data[at] ^= 1 << bit
    path = tmp_path_factory.mktemp("damaged") / f"gewichte ü{suffix}"
    path.write_bytes(bytes(data))
    try:
        weights = read_weights(path)
    except WeightsError as exc:
        assert str(path) in str(exc)
        return
    sd = next(iter(weights.variants.values()))
    if suffix == ".pt":
        assert sd.keys() == ref.keys() and all(torch.equal(sd[k], ref[k]) for k in ref)


# ----------------------------------------------------------------------------- command line
GOOD = ["good.png", "grün bild.png", "tiny 1x1.png", "thin 3x70.png", "grey16.png", "rgba.png",
        "unit.npy"]
BAD = ["truncated.png", "empty.png", "notes.txt", "nan.npy", "inf.npy", "bytes255.npy",
       "random.png", "missing ü.png", "no images"]
OPTIONS = [[], ["--tile", "16"], ["--tile", "24", "--tile-overlap", "4"], ["--self-ensemble"],
           ["--variant", "raw"],  # valid: without --weights there is no variant to choose
           ["--tile", "0"], ["--tile", "abc"], ["--tile-overlap", "-1"], ["--tile", "8", "--tile-overlap", "8"],
           ["--weights", "garbage.pt"], ["--model-arg", "width"], ["--model", "no_such_model"],
           ]
CLI_TINY = [a for k, v in TINY["constyle_nafnet"].items()
            for a in ("--model-arg", f"{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}")]


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli") / ODD_DIR
    d.mkdir()
    rng = np.random.default_rng(0)
    rgb = lambda h, w: Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))  # noqa: E731
    rgb(20, 28).save(d / "good.png")
    rgb(18, 18).save(d / "grün bild.png")
    rgb(1, 1).save(d / "tiny 1x1.png")
    rgb(3, 70).save(d / "thin 3x70.png")
    Image.fromarray(rng.integers(0, 65536, (17, 9)).astype(np.uint16)).save(d / "grey16.png")
    rgb(12, 12).convert("RGBA").save(d / "rgba.png")
    np.save(d / "unit.npy", rng.random((10, 14, 3)).astype(np.float32))
    raw = (d / "good.png").read_bytes()
    (d / "truncated.png").write_bytes(raw[: len(raw) // 2])
    (d / "empty.png").write_bytes(b"")
    (d / "notes.txt").write_text("not an image\n")
    (d / "random.png").write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    np.save(d / "nan.npy", np.full((8, 8, 3), np.nan, np.float32))
    np.save(d / "inf.npy", np.full((8, 8, 3), np.inf, np.float32))
    np.save(d / "bytes255.npy", rng.random((8, 8, 3)) * 255)  # 0-255 floats: refused
    (d / "no images").mkdir()
    (d / "garbage.pt").write_bytes(bytes(range(256)))
    return d


def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli_main(argv)
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
    return int(code), err.getvalue()


@fuzz(40)
@given(inputs=st.lists(st.sampled_from(GOOD + BAD), min_size=1, max_size=3, unique=True),
       options=st.sampled_from(OPTIONS))
def test_cli_restore_never_shows_a_traceback(cli_files: Path, inputs: list[str],
                                             options: list[str]) -> None:
    out = cli_files.parent / "out ü"
    opts = [str(cli_files / o) if o.endswith(".pt") else o for o in options]
    code, err = run_cli(["restore", *(str(cli_files / i) for i in inputs), "--out", str(out),
                         "--model", "constyle_nafnet", *CLI_TINY, *opts])
    assert "Traceback" not in err and "internal error" not in err, err
    valid_options = options in OPTIONS[:5]
    if code == 0:
        assert valid_options and all(i in GOOD for i in inputs), (inputs, options)
        for i in inputs:
            src = read_input(cli_files / i)
            assert read_image(out / f"{Path(i).stem}.png").shape == src.shape
    elif code == 1:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("irconstyle: error: "), err
        assert not (valid_options and all(i in GOOD for i in inputs)), err
    else:
        assert code == 2 and options in (OPTIONS[5:8]), (code, err)  # argparse: bad number
