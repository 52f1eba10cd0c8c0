"""The general restoration network and ConStyle-NAFNet at the release's defaults."""
from __future__ import annotations

import re

import pytest
import torch

from irconstyle import build_model, model_names
from irconstyle.nets.padding import pad_to_multiple


def count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_release_parameter_counts() -> None:
    inference = build_model("constyle_nafnet", constyle_train=False)
    assert count(inference) == 12_739_872
    assert count(build_model("constyle_nafnet")) == 13_930_704
    assert count(build_model("nafnet")) == 87_404_483
    sub = {"preprocess": 1_296, "bottleneck": 2_379_456, "finetune": 2_592}
    assert {k: count(getattr(inference, k)) for k in sub} == sub
    assert [count(e) for e in inference.encoders] == [123_984, 541_440, 1_349_136]
    assert [count(d) for d in inference.downs] == [5_184, 20_736, 46_656]
    assert [count(u) for u in inference.ups] == [801_792, 1_368_576, 764_928]
    assert [count(d) for d in inference.decoders] == [2_379_456, 1_199_232, 473_760]
    assert count(inference.injection.mlp) == 24_768
    assert count(inference.injection.fusion) == 55_296


def test_nafnet_baseline_size_factor_is_16() -> None:
    """Correction to the spec: four levels -> factor 16."""
    assert build_model("nafnet").size_factor == 16
    assert build_model("constyle_nafnet", width=8).size_factor == 8


@pytest.mark.parametrize("name", ["constyle_nafnet", "general_nafnet"])
@pytest.mark.parametrize("size", [(16, 16), (17, 23), (5, 7), (1, 9)])
def test_any_input_size(name: str, size: tuple[int, int]) -> None:
    model = build_model(name, width=8, left_blk_num=(1, 1, 1), bottom_blk_num=1,
                        right_blk_num=(1, 1, 1)).eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_pad_falls_back_when_reflection_does_not_fit() -> None:
    x = torch.rand(1, 3, 5, 7)
    y = pad_to_multiple(x, 64)
    assert y.shape == (1, 3, 64, 64)
    assert torch.equal(y[..., :5, :7], x)
    # reflected where it fits: column 7 mirrors column 5
    assert torch.equal(y[..., :5, 7], x[..., :5, 5])


def test_training_forward_returns_constyle_outputs() -> None:
    model = build_model("constyle_nafnet", width=8, left_blk_num=(1, 1, 1), bottom_blk_num=1,
                        right_blk_num=(1, 1, 1), constyle_kwargs=dict(queue_size=16)).train()
    out = model(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))
    assert out.image.shape == (2, 3, 16, 16)
    assert out.constyle.logits.shape == (2, 17)
    plain = build_model("general_nafnet", width=8, left_blk_num=(1, 1, 1), bottom_blk_num=1,
                        right_blk_num=(1, 1, 1)).train()
    out = plain(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))
    assert out.constyle is None


def test_unknown_model_name_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown model 'nafnett'"):
        build_model("nafnett")
    assert "constyle_nafnet" in model_names()


# ---------------------------------------------------------------------------- the controls
ABLATED = ["constyle_nafnet", "constyle_restormer", "constyle_plain", "constyle_maxim"]


def _tiny(name: str, seed: int = 0, **kw) -> torch.nn.Module:
    from test_models import TINY
    torch.manual_seed(seed)
    return build_model(name, **{**TINY[name], **kw})


@pytest.mark.parametrize("base", ABLATED)
def test_ablated_control_keeps_the_topology_without_constyle(base: str) -> None:
    """Every backbone and injection parameter of the ConStyle network, same names and
    shapes; no ConStyle encoder; only the constants (code + one vector per feature map)
    added; and from the same seed the same initial backbone."""
    full = _tiny(base, constyle_train=False)
    ablated = _tiny(f"{base}_ablated")
    assert ablated.constyle is None and ablated.style is not None
    full_sd, abl_sd = full.state_dict(), ablated.state_dict()
    backbone = {k: v for k, v in full_sd.items() if not k.startswith("constyle.")}
    assert {k: v.shape for k, v in abl_sd.items() if not k.startswith("style.")} == \
        {k: v.shape for k, v in backbone.items()}
    assert not any(k.startswith("constyle.") for k in abl_sd)
    feature_channels = [at[0].in_channels for at in full.injection.affine]
    assert feature_channels == [32, 64, 128]
    assert {k: tuple(v.shape) for k, v in abl_sd.items() if k.startswith("style.")} == {
        "style.code": (128,), "style.features.0": (32, 1, 1), "style.features.1": (64, 1, 1),
        "style.features.2": (128, 1, 1)}
    assert count(ablated) == count(full) - count(full.constyle) + 128 + 32 + 64 + 128
    assert all(torch.equal(abl_sd[k], v) for k, v in backbone.items()), \
        "the same seed must give the control the ConStyle network's initial backbone"


def test_ablated_control_feeds_the_injection_constants_of_constyles_shapes() -> None:
    """The maps the injection receives have the shapes ConStyle's encoder gives for the
    same padded input, and do not depend on the image."""
    full = _tiny("constyle_nafnet", constyle_train=False).eval()
    ablated = _tiny("constyle_nafnet_ablated").eval()
    seen = []
    ablated.injection.affine[0].register_forward_hook(lambda m, args, out: seen.append(args[0]))
    x = pad_to_multiple(torch.rand(2, 3, 24, 40), 8)
    with torch.no_grad():
        enc = full.constyle.encode(x)
        code, maps = ablated.style(x)
        ablated(x)
        ablated(torch.rand(2, 3, 24, 40))
    assert code.shape == enc.code.shape
    assert [m.shape for m in maps] == [f.shape for f in enc.features]
    assert torch.equal(seen[0], seen[1]) and seen[0].shape == enc.features[0].shape


def test_ablated_control_trains_its_constants() -> None:
    model = _tiny("constyle_nafnet_ablated").train()
    with torch.no_grad():  # away from zero, so the AT convs pass gradient to every input
        for f in model.style.features:
            f.normal_()
    lq, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    out = model(lq, gt)
    assert out.constyle is None  # nothing for ConStyle's losses
    torch.nn.functional.l1_loss(out.image, gt).backward()
    grads = [model.style.code.grad, *[f.grad for f in model.style.features],
             model.injection.mlp[0].weight.grad, model.injection.affine[2][0].weight.grad]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_ablation_needs_constyle() -> None:
    from irconstyle.nets.unet import ablate_constyle
    with pytest.raises(ValueError, match="needs a network with ConStyle"):
        ablate_constyle(_tiny("general_nafnet"))
    with pytest.raises(ValueError, match="use_constyle=False is the general network"):
        _tiny("constyle_nafnet_ablated", use_constyle=False)


@pytest.mark.parametrize("base", ["nafnet", "restormer", "plain"])
def test_general_network_differs_from_the_constyle_one_exactly_as_documented(base: str) -> None:
    """unet.py's docstring: besides ConStyle and the injection (ATs, mlp, local_fusion),
    the general network adds a 1x1 n -> n+d after each DC and widens UC3 (4d -> 16d
    up conv, 7d -> 4d 1x1, instead of 3d -> 12d and 6d -> 4d); nothing else differs."""
    general_name = "plain" if base == "plain" else f"general_{base}"
    d = 8
    cs = {k: tuple(v.shape) for k, v in _tiny(f"constyle_{base}", constyle_train=False).state_dict().items()}
    gen = {k: tuple(v.shape) for k, v in _tiny(general_name).state_dict().items()}
    # The general DC is Sequential(DownConcat, 1x1): its conv is downs.i.0.0, the 1x1 downs.i.1.
    renamed = {re.sub(r"^downs\.(\d)\.0\.0\.", r"downs.\1.0.", k): v for k, v in gen.items()}
    only_cs = cs.keys() - renamed.keys()
    assert {k.split(".")[0] for k in only_cs} == {"constyle", "injection"}
    assert {k for k in cs if k.startswith(("constyle.", "injection."))} == only_cs
    extra = {k: v for k, v in renamed.items() if k not in cs}
    assert extra == {"downs.0.1.weight": (2 * d, d, 1, 1), "downs.1.1.weight": (3 * d, 2 * d, 1, 1),
                     "downs.2.1.weight": (4 * d, 3 * d, 1, 1)}
    changed = {k: (cs[k], v) for k, v in renamed.items() if k in cs and cs[k] != v}
    assert changed == {"ups.0.up.0.weight": ((12 * d, 3 * d, 3, 3), (16 * d, 4 * d, 3, 3)),
                       "ups.0.reduce.weight": ((4 * d, 6 * d, 1, 1), (4 * d, 7 * d, 1, 1))}
