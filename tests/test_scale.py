"""The scale line of a campaign against the release preset is read from the two configs."""
from __future__ import annotations

import pytest

from irconstyle.book import evidence
from irconstyle.experiments.scale import scale_against_release
from irconstyle.train import load_config


def test_cpu_campaign_against_the_release_derain_preset() -> None:
    s = scale_against_release(evidence.spec("cpu_campaign"), task="derain", arm="constyle",
                              preset="release/constyle_nafnet_derain")
    rows = {r["setting"]: r for r in s.rows}
    rel = load_config("release/constyle_nafnet_derain")
    assert rows["training steps"]["release"] == f"{rel.total_iters:,}"
    ours_steps = int(rows["training steps"]["ours"].replace(",", ""))
    assert rows["training steps"]["fraction"] == f"{ours_steps / rel.total_iters:.3%}"
    assert rows["width (channels)"]["release"] == "48"  # the builder's default: kwargs are {}
    assert rows["training data"]["release"] == "derain/train/Rain14000"
    batch, patch = int(rows["batch"]["ours"]), int(rows["patch"]["ours"].split("x")[0])
    expected = ours_steps * batch * patch ** 2 / (rel.total_iters * rel.batch_size * 128 ** 2)
    assert s.pixel_fraction == pytest.approx(expected)
