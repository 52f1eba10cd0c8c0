"""Loss terms on small hand-computed cases, and gradient flow through ConStyle-NAFNet."""
from __future__ import annotations

import math

import pytest
import torch

from irconstyle import build_model
from irconstyle.losses import (LossWeights, content_loss, gram, infonce_loss, restoration_loss,
                               style_loss)


def tiny(**kw):
    return build_model("constyle_nafnet", width=8, left_blk_num=(1, 1, 1), bottom_blk_num=1,
                       right_blk_num=(1, 1, 1), constyle_kwargs=dict(queue_size=16), **kw)


def test_infonce_hand_computed() -> None:
    logits = torch.tensor([[2.0, 0.0, 1.0]])
    expected = -2.0 + math.log(math.exp(2) + 1 + math.exp(1))
    assert infonce_loss(logits, torch.zeros(1, dtype=torch.long)).item() == pytest.approx(expected, rel=1e-6)


def test_content_is_mean_squared_difference() -> None:
    q = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    k = torch.tensor([[0.0, 2.0], [0.0, 2.0]])
    assert content_loss(q, k).item() == pytest.approx((1 + 0 + 0 + 4) / 4)


def test_style_loss_hand_computed_and_sign() -> None:
    """n = dim * B; -MSE(S(out1), S(next)) - MSE(S(out2), S(cur))."""
    out1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    code = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    nxt = torch.zeros(2, 2)
    cur = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    n = 4
    # S(out1) = I/4 -> MSE against 0 = (2 * (1/4)^2) / 4; S(code) == S(cur) -> 0
    expected = -(2 * (1 / n) ** 2) / 4
    assert style_loss(out1, code, (nxt, cur)).item() == pytest.approx(expected)
    assert torch.equal(gram(code, n), torch.full((2, 2), 0.5))
    assert style_loss(out1, code, (nxt, cur)).item() <= 0  # the release maximises distance
    assert style_loss(out1, code, (nxt, cur), bound="log").item() == pytest.approx(-math.log1p(-expected))


def test_restoration_loss_combines_weights() -> None:
    torch.manual_seed(0)
    model = tiny().train()
    lq, gt = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16)
    out = model(lq, gt)
    w = LossWeights(pixel=2.0, infonce=0.5, content=3.0, style=1.0)
    terms = restoration_loss(out.image, gt, out.constyle, w)
    manual = 2 * terms.pixel + 0.5 * terms.infonce + 3 * terms.content + terms.style
    assert terms.total.item() == pytest.approx(manual.item(), rel=1e-6)
    only_pixel = restoration_loss(out.image, gt, out.constyle, w, use_constyle=False)
    assert only_pixel.infonce is None and only_pixel.total.item() == pytest.approx(2 * only_pixel.pixel.item())


def test_gradients_reach_encoder_and_backbone_then_only_backbone_after_freeze() -> None:
    torch.manual_seed(0)
    model = tiny().train()
    lq, gt = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16)
    out = model(lq, gt)
    restoration_loss(out.image, gt, out.constyle).total.backward()
    enc_q = list(model.constyle.encoder_q.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc_q[:4])
    assert all(p.grad is None for p in model.constyle.encoder_k.parameters())
    assert model.injection.mlp[0].weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    model.constyle.freeze()
    out = model(lq, gt)
    assert out.constyle.logits is None
    restoration_loss(out.image, gt, out.constyle, use_constyle=False).total.backward()
    assert all(p.grad is None for p in model.constyle.parameters())
    assert model.injection.mlp[0].weight.grad is not None
    assert model.preprocess[0].weight.grad is not None


def test_one_cpu_training_step_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = tiny().train()
    lq = torch.rand(4, 3, 16, 16)
    gt = (lq + 0.1).clamp(0, 1)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def pixel_loss() -> float:
        model.eval()
        with torch.no_grad():
            v = torch.nn.functional.l1_loss(model(lq), gt).item()
        model.train()
        return v

    before = pixel_loss()
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        out = model(lq, gt)
        restoration_loss(out.image, gt, out.constyle).total.backward()
        opt.step()
    assert pixel_loss() < before
