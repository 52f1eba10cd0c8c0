"""Loss terms on small hand-computed cases, and gradient flow through ConStyle-NAFNet."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from irconstyle import ConStyle, build_model
from irconstyle.method.losses import (LossWeights, content_loss, gram, infonce_loss, restoration_loss,
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


def _terms_by_hand(image, gt, logits, out1, query, key, nxt, cur) -> dict[str, float]:
    """The four terms from their definitions (the release's losses/basic_loss.py and
    models/ConStyle_model.py), in float64."""
    d = lambda t: t.detach().double()  # noqa: E731
    logits = d(logits)
    b, dim = query.shape

    def sim(x: torch.Tensor) -> torch.Tensor:
        return d(x) @ d(x).t() / (b * dim)

    return {"pixel": float((d(image) - d(gt)).abs().mean()),
            "infonce": float((torch.logsumexp(logits, 1) - logits[:, 0]).mean()),
            "content": float(((d(query) - d(key)) ** 2).mean()),
            "style": float(-((sim(out1) - sim(nxt)) ** 2).mean() - ((sim(query) - sim(cur)) ** 2).mean())}


def test_restoration_loss_terms_and_weights() -> None:
    torch.manual_seed(0)
    model = tiny().train()
    lq, gt = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16)
    out = model(lq, gt)
    cs = out.constyle
    w = LossWeights(pixel=2.0, infonce=0.5, content=3.0, style=7.0)
    terms = restoration_loss(out.image, gt, cs, w)
    ref = _terms_by_hand(out.image, gt, cs.logits, cs.out1, cs.code, cs.key, *cs.negatives)
    for name, value in ref.items():
        assert getattr(terms, name).item() == pytest.approx(value, rel=1e-5, abs=1e-12), name
    total = 2 * ref["pixel"] + 0.5 * ref["infonce"] + 3 * ref["content"] + 7 * ref["style"]
    assert terms.total.item() == pytest.approx(total, rel=1e-5)
    only_pixel = restoration_loss(out.image, gt, cs, w, use_constyle=False)
    assert only_pixel.infonce is None
    assert only_pixel.total.item() == pytest.approx(2 * ref["pixel"], rel=1e-6)


@pytest.mark.parametrize("enqueue", ["query", "key"])
def test_normalize_losses_use_the_queues_unit_vectors(enqueue: str) -> None:
    """With ``normalize=True`` the content and style losses compare the L2-normalised codes,
    the space the queue's entries live in, while the network still consumes the raw code.
    Reference: the encoders run again on copies (with the momentum update done by hand) and
    every term computed from its definition."""
    torch.manual_seed(0)
    cs = ConStyle(queue_size=16, normalize=True, enqueue=enqueue, momentum=0.9).train()
    enc_q, enc_k = copy.deepcopy(cs.encoder_q), copy.deepcopy(cs.encoder_k)
    with torch.no_grad():
        for pk, pq in zip(enc_k.parameters(), enc_q.parameters()):
            pk.copy_(0.9 * pk + 0.1 * pq)
    queue, ptr = cs.queue.clone(), int(cs.queue_ptr)
    lq, gt = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16)
    out = cs(lq, gt)
    with torch.no_grad():
        q_raw, q1_raw = enc_q(lq).code, enc_q(lq).out1
        k_raw = enc_k(gt).code
    unit = lambda x: x / x.norm(dim=1, keepdim=True)  # noqa: E731
    q, q1, k = unit(q_raw), unit(q1_raw), unit(k_raw)
    torch.testing.assert_close(out.code.detach(), q_raw, rtol=1e-5, atol=1e-6)  # the network's input
    nxt, cur = queue[:, ptr + 4:ptr + 8].t(), queue[:, ptr:ptr + 4].t()
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue], 1) / cs.temperature
    terms = restoration_loss(torch.zeros(1), torch.zeros(1), out)
    ref = _terms_by_hand(torch.zeros(1), torch.zeros(1), logits, q1, q, k, nxt, cur)
    for name in ("infonce", "content", "style"):
        assert getattr(terms, name).item() == pytest.approx(ref[name], rel=1e-4, abs=1e-9), name
    # The raw codes would give another content loss: the check can fail.
    assert abs(float(((q_raw - k_raw) ** 2).mean()) - ref["content"]) > 1e-3


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
