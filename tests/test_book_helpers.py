"""The helpers the notebooks rely on: the number formatter, the shipped result files,
the run profile (from the environment, never from the hardware) and the one way a tensor
reaches a model's device."""
from __future__ import annotations

import json
import random
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from irconstyle.runtime import profiles
from irconstyle.runtime.devices import model_device, to_model_device
from irconstyle.experiments.report import fmt, formatters
from irconstyle.results import load_result, results_dir

RESULTS = Path(__file__).resolve().parents[1] / "irconstyle" / "results"


# ---------------------------------------------------------------------------- fmt
def _decimal_reference(value: float, decimals: int) -> str:
    """Round the exact binary value half-to-even with decimal arithmetic."""
    text = str(Decimal(value).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN))
    return text[1:] if text.startswith("-") and Decimal(text) == 0 else text


def test_fmt_rounds_like_exact_decimal_arithmetic() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        value = rng.uniform(-1000, 1000) * 10 ** rng.randint(-4, 2)
        decimals = rng.randint(0, 4)
        assert fmt(value, decimals) == _decimal_reference(value, decimals), (value, decimals)


def test_fmt_edge_cases() -> None:
    assert fmt(23.249, 1) == "23.2" and fmt(23.251, 1) == "23.3"
    assert fmt(-0.04, 1) == "0.0"                    # no "-0.0" for a rounded zero
    assert (fmt(0.256, 2, signed=True), fmt(-0.004, 2, signed=True), fmt(-0.3, 2, signed=True)) \
        == ("+0.26", "0.00", "-0.30")                 # differences: a sign unless rounded to zero
    assert fmt(float("nan"), 2) == "nan" and fmt(float("-inf"), 1) == "-inf"
    assert fmt(0.0001234, sig=3) == "0.000123" and fmt(153.2, sig=3) == "153"
    assert fmt(torch.tensor(1.25), 1) == "1.2"       # a 0-d tensor, half to even
    for bad in ({}, {"decimals": 1, "sig": 2}, {"decimals": -1}, {"sig": 0}, {"decimals": 1.5}):
        with pytest.raises(ValueError, match="fmt"):
            fmt(1.0, **bad)


def test_formatters_feed_pandas_to_string() -> None:
    df = pd.DataFrame({"psnr": [23.249, 24.351], "loss": [0.001234, 153.2], "n": [2, 2]})
    text = df.to_string(index=False, formatters=formatters({"psnr": 1}, sig={"loss": 2}))
    lines = [line.split() for line in text.splitlines()]
    assert lines[0] == ["psnr", "loss", "n"]
    assert lines[1:] == [["23.2", "0.0012", "2"], ["24.4", "1.5e+02", "2"]]
    with pytest.raises(ValueError, match="both"):
        formatters({"psnr": 1}, sig={"psnr": 2})


# ---------------------------------------------------------------------------- results
def test_load_result_reads_the_shipped_file() -> None:
    assert results_dir() == RESULTS
    for name in ("model_table.json", "reliability.json"):
        assert load_result(name) == json.loads((RESULTS / name).read_text(encoding="utf-8"))


def test_load_result_absent_and_bad_names() -> None:
    assert load_result("no_such_result.json") is None
    for bad in ("model_table.csv", "../pyproject.json", "sub/model_table.json"):
        with pytest.raises(ValueError, match="result"):
            load_result(bad)


# ---------------------------------------------------------------------------- profiles
def test_profile_comes_from_the_environment_not_the_hardware(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU workstation
    monkeypatch.delenv("IRCONSTYLE_PROFILE", raising=False)
    assert profiles.active_profile() == "smoke"
    monkeypatch.setenv("IRCONSTYLE_PROFILE", "full")
    assert profiles.active_profile() == "full"
    assert profiles.active_profile("smoke") == "smoke"  # an argument wins
    monkeypatch.setenv("IRCONSTYLE_PROFILE", "gpu")
    with pytest.raises(ValueError, match="IRCONSTYLE_PROFILE='gpu'"):
        profiles.active_profile()


def test_step_and_batch_caps(monkeypatch) -> None:
    monkeypatch.delenv("IRCONSTYLE_MAX_STEPS", raising=False)
    monkeypatch.delenv("IRCONSTYLE_MAX_BATCH", raising=False)
    assert profiles.cap_steps(20000) == 20000 and profiles.cap_batch(16) == 16
    assert profiles.max_steps() is None
    monkeypatch.setenv("IRCONSTYLE_MAX_STEPS", "3")
    monkeypatch.setenv("IRCONSTYLE_MAX_BATCH", "2")
    assert profiles.cap_steps(20000) == 3 and profiles.cap_steps(2) == 2
    assert profiles.cap_batch(16) == 2 and profiles.cap_batch(1) == 1
    for bad in ("0", "-1", "three", "2.5"):
        monkeypatch.setenv("IRCONSTYLE_MAX_STEPS", bad)
        with pytest.raises(ValueError, match="IRCONSTYLE_MAX_STEPS"):
            profiles.cap_steps(10)


# ---------------------------------------------------------------------------- devices
def test_to_model_device_follows_the_model() -> None:
    x = torch.rand(1, 3, 4, 4)
    cpu_model = nn.Conv2d(3, 3, 1)
    assert to_model_device(x, cpu_model) is x  # already there: the same tensor
    meta_model = nn.Conv2d(3, 3, 1, device="meta")  # another device, no GPU needed
    moved = to_model_device(x, meta_model)
    assert moved.device.type == "meta" and moved.shape == x.shape
    assert model_device(nn.ReLU()) == torch.device("cpu")  # no tensors at all
    buffers_only = nn.BatchNorm2d(3, affine=False).to("meta")
    assert model_device(buffers_only).type == "meta"
    with pytest.raises(TypeError, match="tensor"):
        to_model_device([1.0], cpu_model)


# ------------------------------------------------------------------ speed.py (issue 18)
def _side(median, q1, q3, n=50, **extra):
    return {"median_s": median, "q1_s": q1, "q3_s": q3, "n": n, **extra}


def test_side_by_side_table_ratios_and_memory_from_the_rows():
    from irconstyle.book.speed import side_by_side_table

    result = {"rows": [
        {"model": "nafnet", "mode": "train", "size": 64, "batch": 2, "comparison": "fp32",
         "ours": _side(2.0, 1.8, 2.5, child_memory={"peak_bytes": 900, "baseline_bytes": 300}),
         "release": _side(3.0, 2.7, 3.6, n=49, child_memory={"peak_bytes": 1000, "baseline_bytes": 100})},
        {"model": "maxim", "mode": "infer", "size": 128, "batch": 1, "comparison": "bf16",
         "ours": _side(1.0, 0.9, 1.1, peak_bytes=5), "release": _side(0.5, 0.4, 0.6, peak_bytes=7)}]}
    t = side_by_side_table(result)
    first, second = t.iloc[0], t.iloc[1]
    assert first.speedup == 1.5 and first.speedup_low == 2.7 / 2.5 and first.speedup_high == 3.6 / 1.8
    assert first.steps == 49
    assert first.ours_step_memory_bytes == 600 and first.release_step_memory_bytes == 900
    assert second.speedup == 0.5 and second.ours_step_memory_bytes == 5


def test_profile_table_is_per_step_and_names_what_is_missing():
    from irconstyle.book.speed import profile_table

    prof = {"ours": {"steps": 2, "self_cpu_total_ms": 10.0,
                     "top": [{"op": "conv", "self_cpu_ms": 6.0, "calls": 4}, {"op": "mul", "self_cpu_ms": 2.0, "calls": 8}]},
            "release": {"steps": 4, "self_cpu_total_ms": 40.0,
                        "top": [{"op": "conv", "self_cpu_ms": 16.0, "calls": 8}, {"op": "norm", "self_cpu_ms": 8.0, "calls": 8}]}}
    t = profile_table({"profiles": {"nafnet/train/64/b2": prof}}, "nafnet/train/64/b2")
    assert list(t.index) == ["conv", "norm", "mul"]
    assert t.loc["conv", "ours ms/step"] == 3.0 and t.loc["conv", "release ms/step"] == 4.0
    assert pd.isna(t.loc["norm", "ours ms/step"])
    assert t.attrs["total_ms_per_step"] == {"ours": 5.0, "release": 10.0}
    with pytest.raises(KeyError, match="nafnet/train/64/b2"):
        profile_table({"profiles": {"nafnet/train/64/b2": prof}}, "maxim/train/64/b2")


def test_table_is_markdown_for_the_book_and_aligned_text_for_nbval() -> None:
    from irconstyle.experiments.report import Table
    rows = [{"arm": "a|b", "diff": "+0.12", "95% CI": "[-0.10, +0.30]", "n": "4,110"},
            {"arm": "c", "diff": "-1.00", "95% CI": "[-2.00, +0.10]", "n": "12"}]
    t = Table(rows, caption="Two arms", label="tab-two")
    md = t.to_markdown()
    assert md.startswith("```{table} Two arms\n:name: tab-two\n")
    assert "| arm | diff | 95% CI | n |" in md and "|:--|--:|--:|--:|" in md
    assert "| a\\|b | +0.12 |" in md  # a pipe in a cell cannot end the cell
    text = repr(t).splitlines()
    assert text[0] == "Two arms" and text[1].startswith("arm ") and text[2].startswith("a|b ")
    assert len({len(line) for line in text[1:]}) == 1  # aligned: every row equally wide
    assert Table(rows).to_markdown().startswith("| arm |")  # no caption: a bare table
    with pytest.raises(ValueError, match="lack the column"):
        Table([{"a": "1"}, {"b": "2"}])
    with pytest.raises(ValueError, match="no rows"):
        Table([])


def test_range_table_gives_mean_and_range_per_group() -> None:
    from irconstyle.experiments.report import range_table
    rows = [{"arm": "a", "seed": 0, "x": 0.1}, {"arm": "a", "seed": 1, "x": 0.3},
            {"arm": "b", "seed": 0, "x": -0.2}]
    t = range_table(rows, by=["arm"], columns=["x"], decimals=2)
    assert t.cells == [["a", "0.20 [0.10, 0.30]", "2"], ["b", "-0.20 [-0.20, -0.20]", "1"]]


def test_table_from_frame_formats_the_named_columns() -> None:
    from irconstyle.experiments.report import Table
    frame = pd.DataFrame({"arm": ["a", "b"], "psnr": [28.123456, float("nan")], "n": [3, 5]},
                         index=pd.Index(["x", "y"], name="key"))
    t = Table.from_frame(frame, decimals={"psnr": 2}, index=True)
    assert t.columns == ["key", "arm", "psnr", "n"]
    assert t.cells == [["x", "a", "28.12", "3"], ["y", "b", "-", "5"]]
