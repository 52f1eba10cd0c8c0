"""Two full training steps of the package equal the release's (tests/fixtures/golden/README.md,
"Two full training steps").

The release's ConStyle-NAFNet at small widths, filled by the golden rule, goes through the
release loader into our model; the package's own ``Trainer.train_step``, configured by the
shipped release preset (AdamW lr 3e-4 / wd 1e-4, the four losses at weight 1, a constant lr in
the first period, no freeze) with only the sizes, the data and ``ema.mode: release`` (decay
0.999, parameters only, before backward) overridden, takes the two recorded steps.  Compared:
the loss terms of both steps, the gradient norms of step 1, the queue and its pointer, every
state-dict tensor and every EMA parameter at the recorded indices.

Tolerances (measured on this machine, 1 thread): losses 1e-5 relative (worst 3.4e-6); step-1
gradient norms 1e-4 relative (worst 1.7e-5); parameters and EMA 1e-5 absolute (worst 1.6e-6);
the EMA (1 - decay) times the parameters' tolerance (worst 0 outside the biases below);
the queue columns written at step 1 1e-5 relative (2.8e-6), those of step 2 2e-4 relative
(8.2e-5: step 2's codes come from weights after one AdamW step, whose first update is
+-lr for every element whatever its gradient's size, so rounding noise in near-zero gradients
moves them).  Exceptions, as the README explains: the biases of the two Linear layers that
feed a BatchNorm1d have a true gradient of zero, so AdamW turns rounding noise into steps of
up to +-lr of arbitrary sign: up to 2 lr apart per step (measured 1.17e-3 after two steps);
the running means of those BatchNorms follow them with BatchNorm's momentum 0.1 (6.0e-5).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from golden import fill_tensor
from irconstyle.checkpoints.release import load_release_checkpoint, rename_release_key
from irconstyle.train import Trainer, load_config

MODEL = "constyle_nafnet"
# Gradient exactly zero in exact arithmetic (a BatchNorm follows): noise-level only.
BN_FED_BIASES = ("constyle.encoder_q.mlp1.0.bias", "constyle.encoder_q.mlp2.0.bias")
BN_RUNNING_MEANS = ("constyle.encoder_q.mlp1.1.running_mean", "constyle.encoder_q.mlp2.1.running_mean")
BN_MOMENTUM = 0.1
# Adam's bias-corrected step |m_hat| / sqrt(v_hat) is at most 1.0014 after two steps with
# betas (0.9, 0.999) (Cauchy-Schwarz), so two runs whose noise has opposite signs end at most
# 2 * 1.0014 * lr apart per step; 2 lr per step plus the general tolerance covers it.
ATOL = 1e-5


@pytest.fixture(scope="module")
def record(golden_dir: Path) -> dict:
    spec = json.loads((golden_dir / "golden_train_step.json").read_text())
    with np.load(golden_dir / "golden_train_step.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return {**spec, **arrays}


@pytest.fixture(scope="module")
def trained(record: dict, tmp_path_factory) -> dict:
    """The trainer after the two recorded steps, with the loss terms and step-1 gradients."""
    kw = record["release_kwargs"]
    small = {"width": kw["dim"], "left_blk_num": kw["left_blk_num"],
             "bottom_blk_num": kw["bottom_blk_num"], "right_blk_num": kw["right_blk_num"]}
    out_dir = tmp_path_factory.mktemp("train_step")
    cfg = load_config("release/constyle_nafnet_denoise", [
        f"model.kwargs={json.dumps(small)}", f"constyle.queue_size={record['queue_size']}",
        "ema.mode=release", f"batch_size={record['batch']}", "data.val=null", "num_workers=0",
        "amp=false", "device=cpu", "resume=never", f"out_dir={out_dir}",
        "log.progress=false", "log.csv=false"])
    # The preset is the release's: the settings the golden steps were taken in.
    opt = record["optimizer"]
    assert (cfg.optim.lr, cfg.optim.weight_decay, list(cfg.optim.betas)) == (
        opt["lr"], opt["weight_decay"], opt["betas"])
    assert cfg.ema.decay == record["ema_decay"] and cfg.schedule.eta_mins[0] == cfg.optim.lr
    batches = [{"lq": torch.from_numpy(record[f"step{s}_lq"]), "gt": torch.from_numpy(record[f"step{s}_gt"])}
               for s in (1, 2)]
    items = [{"lq": batches[0]["lq"][i], "gt": batches[0]["gt"][i]} for i in range(record["batch"])]
    trainer = Trainer(cfg, train_set=items)
    release_sd = {k: fill_tensor(k, shape) for k, shape in record["keys"].items()}
    load_release_checkpoint(trainer.model, MODEL, {"params": release_sd})
    # The release's EMA starts as a copy of the network it trains (here: the loaded one).
    trainer.ema.module.load_state_dict(trainer.model.state_dict())
    trainer.model.train()
    terms, grads = [], {}
    for step, batch in enumerate(batches, start=1):
        lr = trainer.opt.param_groups[0]["lr"]
        assert lr == opt["lr"], f"step {step} ran at lr {lr}"
        terms.append(trainer.train_step(batch))
        if step == 1:
            grads = {n: p.grad.norm().item() for n, p in trainer.model.named_parameters()
                     if p.grad is not None}
    return {"trainer": trainer, "terms": terms, "grads": grads}


@pytest.mark.parametrize("step", [1, 2])
def test_losses_match(record, trained, step) -> None:
    ref = record["losses"][step - 1]
    ours = trained["terms"][step - 1]
    for field, key in [("pixel", "l_pix"), ("infonce", "l_CrossEntropy"), ("content", "l_content"),
                       ("style", "l_style"), ("total", "l_total")]:
        value = getattr(ours, field).item()
        assert value == pytest.approx(ref[key], rel=1e-5, abs=0), (step, field)


def test_step1_gradient_norms_match(record, trained) -> None:
    grads = trained["grads"]
    for key, ref in record["grad_norm_step1"].items():
        name = rename_release_key(MODEL, key)
        if name in BN_FED_BIASES:
            assert grads.get(name, 0.0) < 1e-3 * max(record["grad_norm_step1"].values()), name
            continue
        assert name in grads, f"{name} got no gradient at step 1"
        assert grads[name] == pytest.approx(ref, rel=1e-4, abs=1e-9), name


def test_queue_and_pointer_after_step2(record, trained) -> None:
    cs = trained["trainer"].constyle
    ref = torch.from_numpy(record["queue_after_step2"])
    batch = record["batch"]
    scale = ref.abs().max()
    err = (cs.queue - ref).abs()
    assert float(err[:, :batch].max() / scale) < 1e-5  # written by step 1
    assert float(err.max() / scale) < 2e-4             # step 2's codes: see the docstring
    assert cs.queue_ptr.tolist() == record["queue_ptr_after_step2"].tolist()


def _tolerance(name: str, lr: float, steps: int = 2) -> float:
    if name in BN_FED_BIASES:
        return 2 * lr * steps + ATOL
    if name in BN_RUNNING_MEANS:  # follows the bias after step 1 with BatchNorm's momentum
        return BN_MOMENTUM * 2 * lr + ATOL
    return ATOL


def test_every_tensor_at_the_recorded_indices(record, trained) -> None:
    state = trained["trainer"].model.state_dict()
    lr = record["optimizer"]["lr"]
    assert len(record["after_step2"]) == len(state)
    failures = []
    for key, rec in record["after_step2"].items():
        name = rename_release_key(MODEL, key)
        ours = state[name].flatten()[torch.tensor(rec["index"])].double()
        err = float((ours - torch.tensor(rec["value"], dtype=torch.double)).abs().max())
        if err > _tolerance(name, lr):
            failures.append(f"{name}: {err:.3g}")
    assert not failures, failures


def test_ema_at_the_recorded_indices(record, trained) -> None:
    """The release's EMA after two updates is d^2 p0 + d(1-d) p0 + (1-d) p1: only the weights
    after step 1 enter, with weight 1-d, so its tolerance is (1-d) times theirs (1e-8; the
    full mode, updated after the step, is 6e-7 away and fails)."""
    ema = dict(trained["trainer"].ema.module.named_parameters())
    lr, keep = record["optimizer"]["lr"], 1.0 - record["ema_decay"]
    assert len(record["ema_after_step2"]) == len(ema)
    failures = []
    for key, values in record["ema_after_step2"].items():
        name = rename_release_key(MODEL, key)
        index = torch.tensor(record["after_step2"][key]["index"])
        ours = ema[name].detach().flatten()[index].double()
        err = float((ours - torch.tensor(values, dtype=torch.double)).abs().max())
        if err > keep * _tolerance(name, lr, steps=1):
            failures.append(f"{name}: {err:.3g}")
    assert not failures, failures
