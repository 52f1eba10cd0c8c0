"""The cost table (issue 14.8): CPU step times of the release presets scaled to the
release's batch, and the clearly-labelled FLOP-based estimate."""
from __future__ import annotations

import statistics

import pytest

from irconstyle.experiments.cost import (RECIPE_STEPS, cost_table, flops_hours,
                                         format_cost_table, from_cost_benchmark)
from irconstyle.results import load_result


def entry(batch: int, release: int, s_per_step: float) -> dict:
    return {"batch_size": batch, "release_batch_size": release, "seconds_per_step": s_per_step,
            "patch_size": 128, "provenance": {"processor": "x86_64", "cpu_threads": 1}}


def test_cost_benchmark_rows_scale_to_the_release_batch():
    result = {"models": {"nafnet": entry(2, 16, 10.0), "restormer": entry(8, 8, 30.0)}}
    rows = cost_table(from_cost_benchmark(result, source="cost_cpu.json"))
    by = {r.model: r for r in rows}
    # 10 s for 2 images = 5 s per image; 16 images per release step = 80 s
    assert by["nafnet"].seconds_per_step == pytest.approx(80.0)
    assert by["nafnet"].hours == pytest.approx(80.0 * 703_632 / 3600)
    assert by["nafnet"].timed_batch_size == 2 and by["nafnet"].batch_size == 16
    assert by["restormer"].timed_batch_size is None and by["restormer"].seconds_per_step == 30.0
    text = format_cost_table(rows)
    assert "16 (timed at 2, scaled)" in text and "(timed at 8" not in text


def test_flops_estimate_by_hand():
    # 4e9 MACs at 256x256 -> 1e9 at 128x128; x3 (fwd+bwd) x2 FLOPs/MAC x16 images = 9.6e10
    # FLOPs per step; 703,632 steps at 1e12 FLOP/s = 67,548.672 s
    hours = flops_hours(4e9, image_pixels=256 * 256, batch_size=16, patch_size=128,
                        flops_per_second=1e12)
    assert hours == pytest.approx(9.6e10 * 703_632 / 1e12 / 3600)
    assert RECIPE_STEPS == 703_632
    with pytest.raises(ValueError, match="flops_per_second"):
        flops_hours(4e9, image_pixels=65536, batch_size=16, patch_size=128, flops_per_second=0)


def test_shipped_cost_measurements_are_complete():
    """What benchmarks/cost.py wrote: each model's median of its timed steps, the load
    average around it, and its provenance; a model absent from the file is unmeasured."""
    result = load_result("cost_cpu.json")
    assert result is not None, "irconstyle/results/cost_cpu.json: run benchmarks/cost.py"
    assert {"constyle_nafnet", "nafnet"} <= set(result["models"])
    for name, e in result["models"].items():
        assert e["preset"].startswith(f"release/{name}_"), name
        assert e["seconds_per_step"] == pytest.approx(statistics.median(e["step_seconds"]), abs=1e-3)
        assert e["load_average_1m_before"] is not None and e["provenance"]["command"]
        assert e["losses"] == {"pixel": 1.0, "infonce": 1.0, "content": 1.0, "style": 1.0}
