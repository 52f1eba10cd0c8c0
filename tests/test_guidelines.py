"""The switches that test the paper's three guidelines: in-batch negatives instead of the
queue (1), code only or feature maps only (2), instance discrimination instead of the
degraded-to-clean pretext (3).  Each checked against an independent computation."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from irconstyle import ConStyle, build_model
from irconstyle.data.augment import dihedral
from irconstyle.train import Trainer
from irconstyle.train.config import ConStyleConfig, load_config

from test_trainer import SynthPairs, tiny_config

TINY = dict(width=8, left_blk_num=(1, 1, 1), bottom_blk_num=1, right_blk_num=(1, 1, 1))


# ---------------------------------------------------------------------------- guideline 1
def test_batch_negatives_are_the_other_keys_of_the_batch() -> None:
    torch.manual_seed(0)
    cs = ConStyle(queue_size=16, negatives="batch").train()
    assert not hasattr(cs, "queue"), "in-batch negatives allocate no queue"
    seen = {}
    cs.encoder_q.register_forward_hook(lambda m, a, out: seen.__setitem__("q", out.code.detach()))
    cs.encoder_k.register_forward_hook(lambda m, a, out: seen.__setitem__("k", out.code.detach()))
    lq, gt = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16)
    out = cs(lq, gt)
    q, k = seen["q"].double(), seen["k"].double()
    expected = torch.tensor([[float(q[i] @ k[i])] + [float(q[i] @ k[j]) for j in range(4) if j != i]
                             for i in range(4)], dtype=torch.float64) / cs.temperature
    assert out.logits.shape == (4, 4)
    torch.testing.assert_close(out.logits.double(), expected, rtol=1e-5, atol=1e-4)
    assert out.labels.tolist() == [0, 0, 0, 0]
    # the style loss's two slots: row i holds the key of image i - 1 (a negative of query i)
    for slot in out.negatives:
        assert torch.equal(slot[1:], out.key[:-1]) and torch.equal(slot[0], out.key[-1])


def test_queue_is_the_default_and_batch_reaches_the_model_from_the_config(tmp_path) -> None:
    assert ConStyle(queue_size=8).negatives == "queue"
    cfg = tiny_config(tmp_path, total_iters=2, constyle=ConStyleConfig(negatives="batch"))
    tr = Trainer(cfg, train_set=SynthPairs())
    assert tr.model.constyle.negatives == "batch" and "constyle.queue" not in tr.model.state_dict()
    assert tr.model_kwargs["constyle_kwargs"]["negatives"] == "batch"
    tr.fit()
    default = Trainer(tiny_config(tmp_path / "q", total_iters=2), train_set=SynthPairs())
    assert "negatives" not in default.model_kwargs["constyle_kwargs"]  # release exports unchanged
    assert load_config("smoke/constyle_nafnet", ["constyle.negatives=batch"]).constyle.negatives == "batch"


# ---------------------------------------------------------------------------- guideline 2
def _inputs_seen(model: torch.nn.Module, images: list[torch.Tensor]) -> tuple[list, list]:
    """(what the three AT convs received, what the code MLP received) for each image."""
    maps, codes = [], []
    hooks = [at.register_forward_hook(lambda m, a, out: maps[-1].append(a[0].clone()))
             for at in model.injection.affine]
    hooks.append(model.injection.mlp.register_forward_hook(lambda m, a, out: codes.append(a[0].clone())))
    with torch.no_grad():
        for x in images:
            maps.append([])
            model(x)
    for h in hooks:
        h.remove()
    return maps, codes


@pytest.mark.parametrize("inject", ["code", "features"])
def test_half_ablation_keeps_one_part_live_and_the_other_constant(inject: str) -> None:
    torch.manual_seed(0)
    model = build_model("constyle_nafnet", constyle_inject=inject, **TINY).eval()
    x1, x2 = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    maps, codes = _inputs_seen(model, [x1, x2])
    maps_equal = all(torch.equal(a, b) for a, b in zip(maps[0], maps[1]))
    code_equal = torch.equal(codes[0], codes[1])
    if inject == "code":
        assert maps_equal and not code_equal
        # the live code is the encoder's, computed independently
        torch.testing.assert_close(codes[1], model.constyle.encode(x2).code)
    else:
        assert code_equal and not maps_equal
        torch.testing.assert_close(maps[1][0], model.constyle.encode(x2).features[0])


def test_code_only_encoder_still_trains_with_its_losses() -> None:
    from irconstyle.method.losses import restoration_loss
    torch.manual_seed(0)
    model = build_model("constyle_nafnet", constyle_inject="code",
                        constyle_kwargs=dict(queue_size=8), **TINY).train()
    names = {k for k, _ in model.named_parameters()}
    assert "style.code" not in names and {"style.features.0", "style.features.2"} <= names
    out = model(torch.rand(2, 3, 16, 16), gt := torch.rand(2, 3, 16, 16))
    assert out.constyle.logits is not None  # InfoNCE, content and style are computed
    restoration_loss(out.image, gt, out.constyle).total.backward()
    # the code path and the encoder's first stage (whose maps the network no longer reads
    # directly) both get gradients: the latter only through the code and the losses
    assert model.constyle.encoder_q.stage1[0][0].weight.grad.abs().sum() > 0
    assert model.injection.mlp[0].weight.grad.abs().sum() > 0
    default = build_model("constyle_nafnet", **TINY)
    assert default.style is None


# ---------------------------------------------------------------------------- guideline 3
def _key_encoder_input(tr: Trainer, batch: dict) -> torch.Tensor:
    seen = []
    h = tr.model.constyle.encoder_k.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    tr.train_step(batch)
    h.remove()
    return seen[0]


def _batch(n: int = 4, size: int = 16) -> dict:
    data = SynthPairs(size=size)
    items = [data[i] for i in range(n)]
    return {k: torch.stack([it[k] for it in items]) for k in ("lq", "gt")}


def test_instance_pretext_feeds_the_momentum_encoder_a_view_of_the_degraded_patch(tmp_path) -> None:
    batch = _batch()
    release = Trainer(tiny_config(tmp_path / "r"), train_set=SynthPairs())
    assert torch.equal(_key_encoder_input(release, batch), batch["gt"])

    cfg = tiny_config(tmp_path / "i", constyle=ConStyleConfig(pretext="instance"))
    tr = Trainer(cfg, train_set=SynthPairs())
    key = _key_encoder_input(tr, batch)
    lq = batch["lq"]
    assert key.shape == lq.shape and not torch.equal(key, batch["gt"])
    for i in range(lq.shape[0]):
        # each view is one of the 8 dihedral transforms of its own lq, circularly shifted
        matches = [(k, dy, dx) for k in range(8) for dy in range(16) for dx in range(16)
                   if torch.equal(dihedral(lq[i], k).roll((dy, dx), dims=(-2, -1)), key[i])]
        assert matches, f"sample {i}: the key encoder's input is not a view of its lq patch"
    # a pure function of the step: the same views after a resume, new ones at the next step
    assert torch.equal(tr.key_input(lq, batch["gt"], 1), key)
    assert not torch.equal(tr.key_input(lq, batch["gt"], 2), key)


def test_instance_pretext_refuses_non_square_patches(tmp_path) -> None:
    cfg = tiny_config(tmp_path, constyle=ConStyleConfig(pretext="instance"))
    tr = Trainer(cfg, train_set=SynthPairs())
    with pytest.raises(ValueError, match="square"):
        tr.key_input(torch.rand(2, 3, 16, 24), torch.rand(2, 3, 16, 24), 1)


def test_pretext_and_negatives_are_validated_in_yaml() -> None:
    from irconstyle.train.config import ConfigError
    with pytest.raises(ConfigError, match="pretext"):
        load_config("smoke/constyle_nafnet", ["constyle.pretext=instanse"])
    cfg = load_config("smoke/constyle_nafnet", ["constyle.pretext=instance"])
    assert dataclasses.asdict(cfg.constyle)["pretext"] == "instance"
