"""CUDA-only checks of issue 18.3, run first by ``benchmarks/gpu_session.sh`` whenever a
GPU is lent. On a machine without CUDA each test is skipped with the reason "needs a CUDA
GPU" (the CPU counterparts are in ``test_trainer.py``: no host read-back inside a step, the
default layout and optimizer kernel).

What they check on the GPU: a training step of the trainer at its CUDA defaults (bf16
autocast, channels_last, fused AdamW) makes no host synchronisation
(``torch.cuda.set_sync_debug_mode("error")`` turns any into an error), and fp32 outputs on
the GPU equal the CPU's up to rounding with TF32 off."""
from __future__ import annotations

import pytest
import torch

from irconstyle import build_model
from irconstyle.train import Trainer
from test_trainer import TINY_NAFNET, SynthPairs, tiny_config

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("frozen", [False, True])
def test_a_cuda_training_step_never_synchronises(tmp_path, frozen):
    cfg = tiny_config(tmp_path, total_iters=4, constyle_iters=2, device="cuda")
    tr = Trainer(cfg, train_set=SynthPairs())
    assert tr.channels_last and tr.opt.defaults.get("fused")
    items = [SynthPairs()[i] for i in range(4)]
    batch = {k: torch.stack([it[k] for it in items]).to("cuda") for k in ("lq", "gt")}
    if frozen:
        tr._freeze_constyle()
    tr.train_step(batch)  # warm-up: lazy initialisation and cuDNN's choices may synchronise
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        tr.train_step(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    assert all(torch.isfinite(p).all() for p in tr.model.parameters())


@cuda
@pytest.mark.parametrize("name", ["constyle_nafnet", "nafnet", "constyle_restormer", "constyle_maxim"])
def test_fp32_outputs_on_the_gpu_equal_the_cpu(name):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    small = {"constyle_nafnet": dict(TINY_NAFNET, constyle_train=False), "nafnet": {},
             "constyle_restormer": {"constyle_train": False}, "constyle_maxim": {"constyle_train": False}}
    torch.manual_seed(0)
    model = build_model(name, **small[name]).eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x)
        got = model.to("cuda", memory_format=torch.channels_last)(x.to("cuda")).cpu()
    assert (got - want).abs().max() < 1e-4
