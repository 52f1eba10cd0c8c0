"""MAXIM blocks, the MAXIM-1S baseline and ConStyle-MAXIM: parameter counts at the
release's defaults, the partition layouts, the size factor and the uniform model API."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from irconstyle import build_model, restoration_loss
from irconstyle.nets.maxim import (MAXIM, AxisDense, CrossGatingSkips, MultiScaleInputs, constyle_maxim,
                                   maxim_size_factor, nearest_downsample)
from irconstyle.nets.unet import RestorationUNet, UpConcat


def count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ----------------------------------------------------------------- parameter counts
def test_maxim_parameter_counts_at_release_defaults() -> None:
    assert count(MAXIM(release_dead_modules=True)) == 8_175_683
    assert count(MAXIM()) == 6_134_371  # without the 2,041,312 dead parameters


def test_constyle_maxim_parameter_counts_at_release_defaults() -> None:
    inference = constyle_maxim(constyle_train=False, release_dead_modules=True)
    assert count(inference) == 8_101_664
    assert count(constyle_maxim(release_dead_modules=True)) == 9_292_496  # + momentum encoder
    assert count(constyle_maxim(constyle_train=False)) == 6_572_576  # without 1,529,088 dead
    # the release's submodule breakdown (counted on its archs/ConStyle_Maxim_arch.py)
    assert [count(e) for e in inference.encoders] == [601_168, 824_480, 702_960]
    assert count(inference.bottleneck) == 891_648
    assert [count(g) for g in inference.skip_fusion.gates] == [282_880, 282_880, 45_312]
    assert [count(u) for u in inference.ups] == [331_776, 331_776, 147_456]
    assert [count(d) for d in inference.decoders] == [709_104, 830_624, 828_576]
    assert count(inference.injection.mlp) == 16_512


def test_constyle_maxim_is_the_template_with_maxim_variation_points() -> None:
    m = constyle_maxim(features=8, constyle_train=False)
    assert isinstance(m, RestorationUNet) and m.preprocess is None
    assert isinstance(m.scale_inputs, MultiScaleInputs) and isinstance(m.skip_fusion, CrossGatingSkips)
    assert all(isinstance(u, UpConcat) and isinstance(u.reduce, torch.nn.Identity) for u in m.ups)
    assert m.constyle is not None and build_model("maxim", features=8).constyle is None
    assert build_model("general_maxim", features=8).constyle is None


# ----------------------------------------------------------------- resampling and layouts
@pytest.mark.parametrize("size", [64, 70, 13])
@pytest.mark.parametrize("factor", [2, 4])
def test_nearest_downsample_is_the_release_index_rule(size: int, factor: int) -> None:
    """Output i reads input floor((i + 0.5) / ratio), as the release's float indexing."""
    x = torch.arange(size * size, dtype=torch.float32).reshape(1, 1, size, size)
    idx = np.floor((np.arange(int(size / factor)) + 0.5) * factor).astype(int)
    assert torch.equal(nearest_downsample(x, factor), x[:, :, idx][:, :, :, idx])


def _influence(layer: AxisDense, h: int, w: int, r: int, c: int) -> torch.Tensor:
    """Which output pixels change when input pixel (r, c) changes."""
    torch.nn.init.normal_(layer.weight)
    x = torch.zeros(1, h, w, 1)
    base = layer(x)
    x[0, r, c, 0] = 1.0
    return (layer(x) - base).abs()[0, :, :, 0] > 0


def test_block_axis_mixes_within_fixed_blocks() -> None:
    moved = _influence(AxisDense("block", (4, 4), bias=False), 16, 8, r=5, c=6)
    expected = torch.zeros(16, 8, dtype=torch.bool)
    expected[4:8, 4:8] = True  # the 4x4 block holding (5, 6)
    assert torch.equal(moved, expected)


def test_grid_axis_mixes_strided_pixels_of_a_fixed_grid() -> None:
    # a 4x2 grid over a 16x8 map: 4x4 patches; tokens = same offset in every patch
    moved = _influence(AxisDense("grid", (4, 2), bias=False), 16, 8, r=5, c=6)
    expected = torch.zeros(16, 8, dtype=torch.bool)
    expected[1::4, 2::4] = True
    assert torch.equal(moved, expected)


def test_axis_dense_names_the_problem_on_a_wrong_size() -> None:
    with pytest.raises(ValueError, match="maxim.py: a 12x16 feature map"):
        AxisDense("block", (8, 8))(torch.zeros(1, 12, 16, 4))


def test_size_factor() -> None:
    hr, lr = ((16, 16), (16, 16)), ((8, 8), (8, 8))
    assert maxim_size_factor([hr, hr, lr, lr]) == 64  # bottom: 8 * 8
    assert maxim_size_factor([hr, hr, hr, hr]) == 128
    assert MAXIM(features=8).size_factor == 64
    assert constyle_maxim(features=8, constyle_train=False).size_factor == 64
    assert constyle_maxim(features=8, block_size_hr=(4, 4), grid_size_hr=(4, 4), block_size_lr=(2, 2),
                          grid_size_lr=(2, 2), constyle_train=False).size_factor == 16


# ----------------------------------------------------------------- uniform API
@pytest.mark.parametrize("name", ["constyle_maxim", "general_maxim", "maxim"])
@pytest.mark.parametrize("size", [(64, 64), (70, 50)])
def test_training_forward_and_backward(name: str, size: tuple[int, int]) -> None:
    kw = dict(constyle_kwargs=dict(queue_size=8)) if name == "constyle_maxim" else {}
    torch.manual_seed(0)
    model = build_model(name, features=8, **kw).train()
    lq, gt = torch.rand(2, 3, *size), torch.rand(2, 3, *size)
    out = model(lq, gt)
    assert out.image.shape == gt.shape
    assert (out.constyle is not None) == (name == "constyle_maxim")
    loss = restoration_loss(out.image, gt, out.constyle).total
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", ["constyle_maxim", "maxim"])
@pytest.mark.parametrize("size", [(5, 7), (70, 50), (64, 130)])
def test_eval_forward_keeps_any_input_size(name: str, size: tuple[int, int]) -> None:
    model = build_model(name, features=8).eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_dead_modules_get_no_gradient() -> None:
    """Why DDP needs find_unused_parameters=True with release_dead_modules=True."""
    model = MAXIM(features=8, release_dead_modules=True).train()
    x = torch.rand(1, 3, 64, 64)
    model(x, x).image.sum().backward()
    no_grad = {n for n, p in model.named_parameters() if p.grad is None}
    dead = {n for n, _ in model.named_parameters() if ".unused_" in n}
    assert dead and no_grad == dead
    assert len([n for n in dead if ".unused_down." in n]) == 2 * 3  # decoders' Conv_1


def test_template_needs_a_preprocess_or_scale_inputs() -> None:
    m = constyle_maxim(features=8, constyle_train=False)
    with pytest.raises(ValueError, match="preprocess=None needs scale_inputs"):
        RestorationUNet(preprocess=None, encoders=m.encoders, downs=m.downs, bottleneck=m.bottleneck,
                        ups=m.ups, decoders=m.decoders, finetune=m.finetune)


def test_resize_runs_in_half_precision_on_the_cpu():
    """bf16 autocast hands MAXIM's resampling bf16 tensors, for which torch has no CPU
    antialiased kernel; the package resamples them in float32 (found by the bf16
    side-by-side benchmark)."""
    import torch.nn.functional as F

    from irconstyle.nets.maxim import resize_bilinear

    x = torch.rand(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    for dtype in (torch.bfloat16, torch.float16):
        got = resize_bilinear(x.to(dtype), (8, 8))
        want = F.interpolate(x.to(dtype).float(), size=(8, 8), mode="bilinear", align_corners=False,
                             antialias=True).to(dtype)
        assert got.dtype == dtype and torch.equal(got, want)
    model = build_model("constyle_maxim", constyle_train=False).eval()
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(image)
    assert out.shape == image.shape and torch.isfinite(out).all()
