"""The command line through a subprocess (``python -m irconstyle``): bad input ends with
a non-zero exit and one line naming the file, never a traceback; good runs work."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import irconstyle
from irconstyle.evaluation.evaluate import restore

TINY = dict(width=8, left_blk_num=[1, 1, 1], bottom_blk_num=1, right_blk_num=[1, 1, 1])
TINY_ARGS = [a for k, v in TINY.items() for a in ("--model-arg", f"{k}={v}".replace(" ", ""))]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "irconstyle", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, encoding="utf-8", env=ENV, timeout=120)


def assert_clean_failure(res: subprocess.CompletedProcess, names: str) -> None:
    """Non-zero exit, no traceback, exactly one stderr line that names ``names``."""
    assert res.returncode != 0, res.stdout
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("irconstyle: error: "), res.stderr
    assert names in lines[0], res.stderr


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli files")  # a space in every path
    rng = np.random.default_rng(0)
    img = Image.fromarray((rng.random((20, 28, 3)) * 255).astype(np.uint8))
    img.save(d / "good image.png")
    img.save(d / "bild_äöü 画像.png")
    raw = (d / "good image.png").read_bytes()
    (d / "truncated.png").write_bytes(raw[: len(raw) // 2])
    (d / "empty.png").write_bytes(b"")
    (d / "notes.txt").write_text("not an image\n")
    (d / "random.png").write_bytes(bytes(rng.integers(0, 256, 500, dtype=np.uint8)))
    np.save(d / "nan.npy", np.full((16, 16, 3), np.nan, np.float32))
    np.save(d / "flat.npy", np.zeros((4, 4, 4, 4), np.float32))
    (d / "no images").mkdir()
    (d / "no images" / "readme.md").write_text("nothing here")
    (d / "weights.pt").write_bytes(bytes(range(256)))
    torch.save({"foo": torch.zeros(2)}, d / "other model.pt")
    return d


@pytest.mark.parametrize("args, names", [
    (["restore", "missing file.png"], "missing file.png"),
    (["restore", "fehlt_ü.png"], "fehlt_ü.png"),
    (["restore", "truncated.png"], "truncated.png"),
    (["restore", "empty.png"], "empty.png"),
    (["restore", "random.png"], "random.png"),
    (["restore", "notes.txt"], "notes.txt"),
    (["restore", "nan.npy"], "nan.npy"),
    (["restore", "flat.npy"], "flat.npy"),
    (["restore", "no images"], "no images"),
    (["restore", "good image.png", "truncated.png"], "truncated.png"),
    (["restore", "good image.png", "--weights", "weights.pt"], "weights.pt"),
    (["restore", "good image.png", "--weights", "gone.safetensors"], "gone.safetensors"),
    (["restore", "good image.png", "--weights", "other model.pt"], "other model.pt"),
])
def test_restore_bad_inputs(files: Path, args: list[str], names: str) -> None:
    res = cli(*args, "--out", "out", "--model", "constyle_nafnet", *TINY_ARGS, cwd=files)
    assert_clean_failure(res, names)


@pytest.mark.parametrize("args, names", [
    (["restore", "good image.png", "--out", "o", "--model", "no_such_net"], "no_such_net"),
    (["restore", "good image.png", "--out", "o", "--model", "nafnet", "--model-arg", "width"], "width"),
    (["restore", "good image.png", "--out", "o", "--model", "nafnet", "--model-arg", "depth=3"], "nafnet"),
    (["restore", "good image.png", "--out", "o"], "no model name"),
    (["train", "no such config.yml"], "no such config.yml"),
    (["train", "smoke/constyle_nafnet", "total_iters"], "total_iters"),
    (["train", "smoke/constyle_nafnet", "no_such_key=1"], "no_such_key"),
    (["evaluate", "--benchmark", "BSD500", "--model", "nafnet"], "BSD500"),
    (["evaluate", "--benchmark", "GoPro", "--model", "nafnet", "--lq", "nowhere", "--gt", "nowhere"],
     "nowhere"),
    (["evaluate", "--benchmark", "minibench_denoise", "--weights", "empty.png"], "empty.png"),
    (["models", "no_such_net", "--no-time"], "no_such_net"),
])
def test_other_bad_inputs(files: Path, args: list[str], names: str) -> None:
    assert_clean_failure(cli(*args, cwd=files), names)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=3000),
       name=st.text(st.characters(whitelist_categories=("L", "N"), max_codepoint=0x3000),
                    min_size=1, max_size=12))
def test_random_bytes_named_png(files: Path, content: bytes, name: str) -> None:
    path = files / "fuzz" / f"{name} x.png"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    try:
        res = cli("restore", str(path), "--out", "out", "--model", "nafnet", cwd=files)
        assert_clean_failure(res, path.name)
    finally:
        path.unlink()


def test_debug_shows_the_traceback(files: Path) -> None:
    res = cli("--debug", "restore", "empty.png", "--out", "o", "--model", "nafnet", cwd=files)
    assert res.returncode != 0 and "Traceback" in res.stderr and "ImageError" in res.stderr
    res = cli("restore", "empty.png", "--out", "o", "--model", "nafnet", "--debug", cwd=files)
    assert "Traceback" in res.stderr


def test_help_explains_every_command(files: Path) -> None:
    top = cli("--help", cwd=files)
    assert top.returncode == 0
    for command in ("train", "evaluate", "restore", "models"):
        assert command in top.stdout
    res = cli("restore", "--help", cwd=files)
    assert res.returncode == 0 and "usage: irconstyle restore" in res.stdout
    assert all(opt in res.stdout for opt in ("--tile", "--weights", "--model-arg", "--self-ensemble"))
    res = cli("evaluate", "--help", cwd=files)
    assert all(opt in res.stdout for opt in ("--protocol", "--benchmark", "--variant", "canonical"))
    bad = cli("restore", "x.png", "--out", "o", "--tile", "-3", cwd=files)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--tile" in bad.stderr


def test_restore_good_run_matches_the_package(files: Path, tmp_path: Path) -> None:
    """A tiny ConStyle model exported as .safetensors with its metadata: the CLI needs no
    --model, restores a file with a non-ASCII name and a folder, with tiles."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = irconstyle.build_model("constyle_nafnet", **TINY, constyle_train=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0, 0.1)
    weights = tmp_path / "tiny weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights),
              metadata={"model": "constyle_nafnet", "model_kwargs": json.dumps(TINY), "weights": "ema"})
    src = files / "bild_äöü 画像.png"
    out = tmp_path / "restored ü"
    res = cli("restore", src, "--weights", weights, "--out", out, "--tile", "16", "--low-memory",
              cwd=files)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    written = out / "bild_äöü 画像.png"
    got = np.asarray(Image.open(written))
    x = torch.from_numpy(np.asarray(Image.open(src)) / 255.0).permute(2, 0, 1)[None].float()
    want = restore(model, x, tile=16)[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    assert got.shape == (20, 28, 3)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # thread-count rounding at most

    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(src).save(folder / "a.png")
    np.save(folder / "b.npy", np.asarray(Image.open(src)) / 255.0)
    res = cli("restore", folder, "--out", tmp_path / "o2", "--model", "constyle_nafnet", *TINY_ARGS,
              "--self-ensemble", cwd=files)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "o2").iterdir()) == ["a.png", "b.png"]
    res = cli("restore", folder, "--out", tmp_path / "o3", "--weights", weights, "--low-memory",
              cwd=files)
    assert res.returncode != 0 and "--low-memory applies to tiled restoration" in res.stderr
    assert "Traceback" not in res.stderr


def test_train_then_evaluate_ema_and_raw(tmp_path: Path) -> None:
    run = tmp_path / "run dir"
    res = cli("train", "smoke/constyle_nafnet", "total_iters=2", "val_every=2", "ckpt_every=2",
              "num_workers=0", "batch_size=2", f"out_dir={run}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (run / "last.pt").is_file()
    res = cli("evaluate", "--weights", run / "last.pt", "--benchmark", "minibench_denoise",
              "--protocol", "release", "--out", tmp_path / "ev", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for variant in ("ema", "raw"):
        saved = json.loads((tmp_path / "ev" / variant / "results.json").read_text())
        assert saved["protocol"] == "release" and saved["n_images"] == 2
        assert saved["weights"].endswith(f"[{variant}]")
    assert "[ema]" in res.stdout and "[raw]" in res.stdout and "(Y)" in res.stdout


def test_models_table(tmp_path: Path) -> None:
    res = cli("models", "constyle_nafnet", "--no-time", "--input-size", "32", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "constyle_nafnet" in res.stdout and "12,739,872" in res.stdout
