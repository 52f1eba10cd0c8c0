"""The general restoration network and ConStyle-NAFNet at the release's defaults."""
from __future__ import annotations

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
