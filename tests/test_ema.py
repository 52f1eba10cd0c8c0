"""The EMA: full state (BatchNorm statistics included) except ConStyle's queue and
pointer, updated after the optimizer step; ``mode: release`` = parameters only, before
the step (bugs B8, B9)."""
from __future__ import annotations

import pytest
import torch

from irconstyle import build_model
from irconstyle.train import ModelEMA, Trainer
from irconstyle.train.config import EMAConfig
from test_trainer import TINY_NAFNET, SynthPairs, tiny_config


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("constyle_nafnet", **TINY_NAFNET, constyle_kwargs=dict(queue_size=8))


def train_forward(model: torch.nn.Module) -> None:
    """One training forward: moves BN statistics, the momentum encoder and the queue."""
    model.train()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model(torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g))


@pytest.mark.parametrize("mode", ["full", "release"])
def test_update_rule(mode):
    model = tiny_model()
    ema = ModelEMA(model, decay=0.75, mode=mode)
    initial = {k: v.clone() for k, v in ema.module.state_dict().items()}
    train_forward(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    current = model.state_dict()
    averaged = ema.module.state_dict()
    params = dict(model.named_parameters())
    for k in params:
        assert torch.allclose(averaged[k], 0.75 * initial[k] + 0.25 * current[k], atol=1e-6), k
    bn = "constyle.encoder_q.mlp1.1"
    assert not torch.equal(current[f"{bn}.running_mean"], initial[f"{bn}.running_mean"])
    # the queue and its pointer are never averaged nor copied
    for k in ("constyle.queue", "constyle.queue_ptr"):
        assert torch.equal(averaged[k], initial[k]) and not torch.equal(current[k], initial[k]), k
    if mode == "full":
        for stat in ("running_mean", "running_var"):
            k = f"{bn}.{stat}"
            assert torch.allclose(averaged[k], 0.75 * initial[k] + 0.25 * current[k], atol=1e-6)
        assert torch.equal(averaged[f"{bn}.num_batches_tracked"], current[f"{bn}.num_batches_tracked"])
    else:  # the release: buffers stay at their initial values (mean 0, var 1)
        for k in averaged:
            if k not in params:
                assert torch.equal(averaged[k], initial[k]), k


def test_warmup_decay():
    ema = ModelEMA(torch.nn.Linear(2, 2), decay=0.999, warmup=True)
    assert ema.current_decay() == pytest.approx(1 / 10)
    ema.num_updates = 90
    assert ema.current_decay() == pytest.approx(91 / 100)
    ema.num_updates = 10**6
    assert ema.current_decay() == 0.999


def test_bad_arguments():
    with pytest.raises(ValueError):
        ModelEMA(torch.nn.Linear(2, 2), decay=1.0)
    with pytest.raises(ValueError):
        ModelEMA(torch.nn.Linear(2, 2), decay=0.9, mode="buffers")


@pytest.mark.parametrize("mode", ["full", "release"])
def test_order_relative_to_the_optimizer_step(tmp_path, mode):
    """With a tiny decay the EMA equals the weights it last saw: the weights after the
    step ('full', B9 fixed) or before it ('release')."""
    cfg = tiny_config(tmp_path, total_iters=2, ema=EMAConfig(decay=1e-30, mode=mode))
    tr = Trainer(cfg, train_set=SynthPairs())
    tr.fit(stop_at=1)
    before = {k: v.clone() for k, v in tr.model.named_parameters()}
    tr.fit()
    after = dict(tr.model.named_parameters())
    ema = dict(tr.ema.module.named_parameters())
    expected = after if mode == "full" else before
    other = before if mode == "full" else after
    name = "injection.fusion.weight"
    assert torch.allclose(ema[name], expected[name], atol=1e-12, rtol=0)
    assert not torch.allclose(ema[name], other[name], atol=1e-12, rtol=0)
    assert not tr.ema.module.training
    assert all(not p.requires_grad for p in tr.ema.module.parameters())
