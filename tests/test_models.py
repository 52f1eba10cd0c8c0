"""One parametrised forward/backward test over every model in the zoo (timm-style),
at tiny widths, plus the structural checks of the Restormer and plain builders."""
from __future__ import annotations

import pytest
import torch

from irconstyle import build_model, model_names, restoration_loss
from irconstyle.nets.restormer import LayerNorm, Restormer, TransformerBlock

_TEMPLATE = dict(width=8, left_blk_num=(1, 1, 1), bottom_blk_num=1, right_blk_num=(1, 1, 1))
_NAFNET = dict(width=8, enc_blk_nums=(1, 1, 1, 1), middle_blk_num=1, dec_blk_nums=(1, 1, 1, 1))
_MAXIM = dict(features=8, num_bottleneck_blocks=1)  # grids stay at the release's 16/8: factor 64
_CONSTYLE_MAXIM = dict(features=8, bottom_blk_num=1)

# Tiny builder overrides per zoo name.  A model added to the zoo without an entry here
# fails test_every_zoo_model_has_tiny_overrides (so it cannot escape the forward test).
TINY: dict[str, dict] = {
    "constyle_nafnet": _TEMPLATE,
    "general_nafnet": _TEMPLATE,
    "nafnet": _NAFNET,
    "nafnet_sidd_width32": _NAFNET,
    "nafnet_sidd_width64": _NAFNET,
    "nafnet_gopro_width32": _NAFNET,
    "nafnet_gopro_width64": _NAFNET,
    "constyle_restormer": {**_TEMPLATE, "num_refinement_blocks": 1},
    "general_restormer": {**_TEMPLATE, "num_refinement_blocks": 1},
    "restormer": dict(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1),
    "constyle_plain": _TEMPLATE,
    "plain": _TEMPLATE,
    "constyle_maxim": _CONSTYLE_MAXIM,
    "general_maxim": _CONSTYLE_MAXIM,
    "maxim": _MAXIM,
    "constyle_nafnet_ablated": _TEMPLATE,
    "constyle_restormer_ablated": {**_TEMPLATE, "num_refinement_blocks": 1},
    "constyle_plain_ablated": _TEMPLATE,
    "constyle_maxim_ablated": _CONSTYLE_MAXIM,
}
QUEUE = 8  # ConStyle queue size for the training forwards here


def tiny(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, **{**TINY[name], **kw})


def is_constyle(name: str) -> bool:
    return getattr(tiny(name), "constyle", None) is not None


def test_every_zoo_model_has_tiny_overrides() -> None:
    missing = sorted(set(model_names()) - set(TINY))
    assert not missing, f"add tiny overrides for {missing} to TINY in tests/test_models.py"


@pytest.mark.parametrize("name", model_names())
def test_eval_forward_keeps_any_input_size(name: str) -> None:
    model = tiny(name).eval()
    for h, w in [(16, 16), (17, 23), (5, 7)]:
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            y = model(x)
        assert y.shape == x.shape, (name, h, w)
        assert torch.isfinite(y).all(), (name, h, w)


@pytest.mark.parametrize("name", model_names())
def test_training_step_backward(name: str) -> None:
    kw = dict(constyle_kwargs=dict(queue_size=QUEUE)) if is_constyle(name) else {}
    model = tiny(name, **kw).train()
    lq, gt = torch.rand(2, 3, 13, 18), torch.rand(2, 3, 13, 18)
    out = model(lq, gt)
    assert out.image.shape == gt.shape
    if getattr(model, "constyle", None) is not None:
        assert out.constyle.logits.shape == (2, 1 + QUEUE)
    else:
        assert out.constyle is None
    loss = restoration_loss(out.image, gt, out.constyle).total
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(torch.isfinite(g).all() for g in grads if g is not None)


@pytest.mark.parametrize("name", [n for n in model_names() if n in TINY and is_constyle(n)])
def test_inference_build_has_no_memory(name: str) -> None:
    model = tiny(name, constyle_train=False)
    assert not hasattr(model.constyle, "encoder_k")
    assert not any("queue" in k or "encoder_k" in k for k in model.state_dict())
    trained = tiny(name, constyle_kwargs=dict(queue_size=QUEUE))
    assert any(k.startswith("constyle.encoder_k.") for k in trained.state_dict())


def test_restormer_blocks_follow_the_release() -> None:
    block = TransformerBlock(48, num_heads=2)
    sd = block.state_dict()
    assert sd["attn.temperature"].shape == (2, 1, 1)
    assert sd["ffn.project_in.weight"].shape == (2 * 127, 48, 1, 1)  # int(48 * 2.66) = 127
    assert "ffn.project_in.bias" not in sd  # bias False by default
    # 'WithBias' LayerNorm over channels == nn.LayerNorm on the channels-last view
    ln = LayerNorm(6)
    torch.nn.init.normal_(ln.body.weight)
    torch.nn.init.normal_(ln.body.bias)
    x = torch.randn(2, 6, 3, 4)
    mu, var = x.mean(1, keepdim=True), x.var(1, keepdim=True, unbiased=False)
    ref = (x - mu) / torch.sqrt(var + 1e-5) * ln.body.weight.view(1, -1, 1, 1) + ln.body.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(ln(x), ref)


def test_constyle_restormer_heads_and_head_module() -> None:
    m = tiny("constyle_restormer", constyle_train=False)
    temps = lambda seq: [b.attn.temperature.shape[0] for b in seq]  # noqa: E731
    assert [temps(e)[0] for e in m.encoders] == [1, 2, 4]
    assert temps(m.bottleneck) == [8]
    assert [temps(d)[0] for d in m.decoders] == [4, 2, 1]  # R3, R2, R1
    assert temps(m.finetune[:-1]) == [1]
    assert isinstance(m.injection.affine[0][1], torch.nn.PReLU)
    assert m.preprocess.proj.weight.shape == (8, 3, 3, 3)


def test_restormer_is_four_levels_with_size_factor_8() -> None:
    m = Restormer(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1)
    assert m.size_factor == 8 and m.constyle is None
    assert m.latent[0].norm1.body.weight.shape == (64,)  # 8d at the bottom


@pytest.mark.parametrize("base", ["nafnet", "restormer", "plain"])
def test_constyle_and_general_variants_share_every_block(base: str) -> None:
    """Every level's blocks (encoders, bottleneck, decoders, Finetune) have the same
    types and parameter shapes in the ConStyle and the general network; where the two
    differ (DC, UC3, the injection) is pinned in tests/test_unet.py.  (MAXIM's general
    network also widens its first decoder block, 4F instead of 3F input: see maxim.py.)"""
    with_cs = tiny(f"constyle_{base}", constyle_train=False)
    general = tiny("plain" if base == "plain" else f"general_{base}")
    assert general.constyle is None and general.injection is None

    def blocks(model: torch.nn.Module) -> list:
        parts = [*model.encoders, model.bottleneck, *model.decoders, model.finetune]
        return [[(type(m).__name__, tuple(p.shape)) for m in part.modules()
                 for p in m.parameters(recurse=False)] for part in parts]

    cs_blocks, gen_blocks = blocks(with_cs), blocks(general)
    assert len(cs_blocks) == len(gen_blocks) == 8
    for level, (a, b) in enumerate(zip(cs_blocks, gen_blocks)):
        assert a and a == b, f"{base}: part {level} differs"


def _conv_linear_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Independent count: hooks on every Conv2d/ConvTranspose2d/Linear."""
    total = 0

    def hook(m, args, out):
        nonlocal total
        if isinstance(m, torch.nn.Linear):
            total += out.numel() * m.in_features
        elif isinstance(m, torch.nn.ConvTranspose2d):  # each input pixel meets the whole kernel
            total += args[0].numel() * m.weight[0].numel()
        else:
            total += out.numel() * m.weight[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("name", ["plain", "constyle_plain"])
def test_model_table_counts_macs_and_parameters(name: str) -> None:
    from irconstyle.nets.model_table import model_table

    [row] = model_table([name], input_size=(1, 3, 16, 16), time_cpu=False, overrides=TINY)
    model = tiny(name)
    assert row["macs"] == _conv_linear_macs(model, torch.rand(1, 3, 16, 16))
    total = sum(p.numel() for p in model.parameters())
    momentum = sum(p.numel() for p in model.constyle.encoder_k.parameters()) if model.constyle else 0
    assert (row["params"], row["params_train"]) == (total - momentum, total)
    assert row["constyle"] == (model.constyle is not None) and "cpu_ms" not in row


def test_summarize_is_a_torchinfo_table() -> None:
    from irconstyle.nets.model_table import summarize

    text = summarize("constyle_restormer", input_size=(1, 3, 16, 16), depth=1,
                     **TINY["constyle_restormer"], constyle_train=False)
    assert "RestorationUNet" in text and "Total params" in text


def test_the_finite_check_can_be_turned_off_for_a_block_and_comes_back():
    """``finite_check(False)`` (the trainer's step) skips the NaN test, which reads a
    value back from the device; outside the block a NaN image is refused again."""
    from irconstyle.nets.padding import check_input, finite_check

    bad = torch.zeros(1, 3, 8, 8)
    bad[0, 1, 2, 3] = float("nan")
    with finite_check(False):
        check_input(bad, 3)  # not refused
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_input(bad, 3)
