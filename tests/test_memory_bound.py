"""Issue 18.4: tiled restoration within a bounded footprint, untiled refusal when the
estimated memory exceeds what is available."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import irconstyle
from irconstyle.evaluation import tiling
from irconstyle.evaluation.evaluate import restore
from irconstyle.evaluation.tiling import FEATURE_MARGIN, ImageTooLargeError, estimate_forward_bytes, tiled_forward

TINY = dict(width=8, left_blk_num=(1, 1, 1), bottom_blk_num=1, right_blk_num=(1, 1, 1),
            constyle_train=False)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return irconstyle.build_model("constyle_nafnet", **TINY).eval()


def test_tiled_encoder_and_network_never_see_more_than_the_bound() -> None:
    """Record every input the encoder and the network get: none exceeds the resample
    bound or a tile plus the feature margin, however large the image."""
    model = _model()
    seen_enc, seen_net = [], []
    encode, restore_net = model.constyle.encode, model.restore
    model.constyle.encode = lambda x: (seen_enc.append(x.shape[-2] * x.shape[-1]), encode(x))[1]
    model.restore = lambda x, *a: (seen_net.append(x.shape[-2] * x.shape[-1]), restore_net(x, *a))[1]
    tile, bound = 64, 48 * 48
    for h, w in ((192, 256), (384, 320)):
        seen_enc.clear()
        seen_net.clear()
        out = tiled_forward(model, torch.rand(1, 3, h, w), tile=tile, overlap=16, encode_max_pixels=bound)
        assert out.shape == (1, 3, h, w) and torch.isfinite(out).all()
        assert max(seen_net) <= tile * tile
        assert max(seen_enc) <= max(bound, (tile + 2 * FEATURE_MARGIN) ** 2)
        assert len(seen_net) > 4  # it did tile


def test_estimate_covers_the_widest_activation() -> None:
    """ConStyle's first stage alone is 16 fp32 channels at full resolution: the estimate
    must exceed that and grow in proportion to the pixels."""
    model = _model()
    small, large = estimate_forward_bytes(model, 64, 64), estimate_forward_bytes(model, 128, 128)
    assert small > 16 * 4 * 64 * 64
    assert large == pytest.approx(4 * small, rel=0.01)


def test_untiled_restore_refuses_what_does_not_fit(monkeypatch) -> None:
    model = _model()
    x = torch.rand(1, 3, 64, 64)
    need = estimate_forward_bytes(model, 64, 64)
    monkeypatch.setattr(tiling, "available_memory_bytes", lambda device="cpu": need - 1)
    with pytest.raises(ImageTooLargeError, match="--tile"):
        restore(model, x)
    assert restore(model, x, tile=32).shape == x.shape  # tiled: no refusal
    monkeypatch.setattr(tiling, "available_memory_bytes", lambda device="cpu": need + 1)
    assert restore(model, x).shape == x.shape


def test_available_memory_is_read() -> None:
    avail = tiling.available_memory_bytes("cpu")
    assert avail is None or avail > 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_restore_s_allocator_setting_gives_freed_buffers_back() -> None:
    """After return_freed_memory(), a freed large buffer leaves the process at once
    (resident memory back to where it was), however many times buffers of growing size
    were allocated and freed before: the per-tile pattern that otherwise grows glibc's
    heap.  In a child process, since the setting is process-wide."""
    code = textwrap.dedent("""
        import torch
        from irconstyle.evaluation.tiling import return_freed_memory

        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096

        assert return_freed_memory()
        for mb in range(4, 24, 2):  # growing sizes: what raises glibc's dynamic threshold
            t = torch.ones(mb * 2**18)
            del t
        before = rss()
        t = torch.ones(16 * 2**18)  # 16 MiB, touched
        during = rss()
        del t
        after = rss()
        print(before, during, after)
        assert during - before > 15 * 2**20, (before, during)
        assert after - before < 2**20, (before, after)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
