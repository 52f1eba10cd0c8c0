"""benchmarks/throughput.py at tiny sizes: the functions run and the JSON record is
well formed. No timing assertions (timings belong in irconstyle/results/)."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from irconstyle.data import read_image
from irconstyle.data.subimages import tile_boxes

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"
TINY = '{"width": 8, "left_blk_num": [1, 1, 1], "bottom_blk_num": 1, "right_blk_num": [1, 1, 1]}'


@pytest.fixture(scope="module")
def throughput():
    spec = importlib.util.spec_from_file_location("throughput_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_photo_mosaic_is_real_content_and_deterministic(throughput):
    a = throughput.photo_mosaic(3, 40, 64)
    assert a.shape == (3, 40, 64) and a.dtype == torch.float32
    assert 0 <= a.min() and a.max() <= 1
    assert a.std() > 0.05  # photo content, not a flat image
    assert torch.equal(a, throughput.photo_mosaic(3, 40, 64))
    assert not torch.equal(a, throughput.photo_mosaic(4, 40, 64))


@pytest.mark.parametrize("kind", ["paired", "denoise"])
def test_prepare_sources(throughput, tmp_path, kind):
    src = throughput.prepare_sources(tmp_path, count=2, size=(40, 72), kind=kind, crop=32, step=24)
    assert set(src) == {"full", "sub"}
    per_image = len(tile_boxes(40, 72, 32, 24))
    assert src["full"]["images"] == 2 and src["sub"]["images"] == src["sub"]["tiles"] == 2 * per_image
    sides = {"lq_dir", "gt_dir"} if kind == "paired" else {"gt_dir"}
    for name, size in (("full", (40, 72)), ("sub", (32, 32))):
        assert sides <= set(src[name]["kwargs"])
        first = sorted(Path(src[name]["kwargs"]["gt_dir"]).glob("*.png"))[0]
        assert tuple(read_image(first).shape[-2:]) == size
        assert src[name]["mean_gt_png_bytes"] > 0
    if kind == "paired":  # the lq side is a blurred copy, not the gt itself
        lq = read_image(Path(src["full"]["kwargs"]["lq_dir"]) / "0000.png")
        gt = read_image(Path(src["full"]["kwargs"]["gt_dir"]) / "0000.png")
        assert lq.shape == gt.shape and not torch.equal(lq, gt)


def test_benchmark_record(throughput, tmp_path):
    out = tmp_path / "throughput.json"
    result = throughput.main(["--model", "constyle_nafnet", "--model-kwargs", TINY,
                              "--device", "cpu", "--batch-size", "2", "--patch", "16",
                              "--steps", "1", "--warmup", "1", "--workers", "0",
                              "--images", "2", "--image-size", "32", "48", "--sub-crop", "24",
                              "--sub-step", "16", "--note", "test", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["note"] == "test" and result["device"] == "cpu"
    assert result["command"].startswith("python ")
    for key in ("git_commit", "device_name", "environment", "settings", "sources"):
        assert key in result
    assert result["environment"]["torch"] == torch.__version__
    s = result["settings"]
    assert (s["batch_size"], s["patch"], s["steps"], s["workers"]) == (2, 16, 1, [0])
    assert s["queue_size"] == 65760  # the release recipe

    def rate_ok(rec: dict, key: str) -> None:
        assert math.isfinite(rec[key]) and rec[key] > 0 and rec["seconds"] > 0
        assert rec["images_per_s"] == pytest.approx(rec[key] * 2, rel=1e-3)

    rate_ok(result["model_only"], "steps_per_s")
    assert [(r["source"], r["workers"]) for r in result["runs"]] == [("full", 0), ("sub", 0)]
    for r in result["runs"]:
        rate_ok(r["loader"], "batches_per_s")
        rate_ok(r["end_to_end"], "steps_per_s")
        slower = "data" if r["loader"]["images_per_s"] < result["model_only"]["images_per_s"] else "model"
        assert r["bottleneck"] == slower
        assert r["model_busy_fraction"] > 0


def test_patch_larger_than_sub_images_is_refused(throughput, tmp_path):
    with pytest.raises(SystemExit, match="--patch"):
        throughput.main(["--patch", "600", "--out", str(tmp_path / "x.json")])
