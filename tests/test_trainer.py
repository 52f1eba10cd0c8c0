"""The training loop: the ConStyle freeze (issue 8.2), parameter groups, batch-of-1
guard, data order, logs, validation of raw and EMA weights.

``SynthPairs`` and ``tiny_config`` are shared with the other training tests."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from irconstyle.train import ConfigError, Trainer, TrainConfig, run
from irconstyle.train.config import DataSplits, LogConfig, ModelConfig
from irconstyle.train.distributed import EpochShardSampler

TINY_NAFNET = dict(width=8, left_blk_num=[1, 1, 1], bottom_blk_num=1, right_blk_num=[1, 1, 1])


class SynthPairs(Dataset):
    """Random (lq, gt) pairs, a pure function of (seed, epoch, index), like the
    project's training datasets."""

    def __init__(self, n: int = 16, size: int = 16, seed: int = 0) -> None:
        self.n, self.size, self.seed, self.epoch = n, size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 1009 + i)
        gt = torch.rand(3, self.size, self.size, generator=g)
        lq = (gt + 0.1 * torch.randn(gt.shape, generator=g)).clamp(0, 1)
        return {"lq": lq, "gt": gt, "name": f"{self.epoch}-{i}"}


def tiny_config(out_dir: Path | str, **changes) -> TrainConfig:
    """A tiny ConStyle-NAFNet run on CPU with the scaled recipe; ``changes`` replace fields.
    The task is one the release freezes ConStyle in, so the scaled switch (35.5%) is
    exercised (the synthetic pairs themselves are noisy)."""
    cfg = TrainConfig(
        recipe="scaled", task="deblur",
        model=ModelConfig(name="constyle_nafnet", kwargs=dict(TINY_NAFNET)),
        data=DataSplits(val=None),
        total_iters=12, batch_size=2, num_workers=0, seed=3,
        val_every=1000, ckpt_every=1000, out_dir=str(out_dir), resume="never", device="cpu",
        log=LogConfig(every=1, progress=False))
    return dataclasses.replace(cfg, **changes)


def constyle_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.constyle.state_dict().items()}


# ---------------------------------------------------------------------------- the freeze
def test_freeze_is_real(tmp_path):
    """After constyle_iters, further steps leave encoders, BN statistics, queue and
    pointer bit-equal and ConStyle out of the optimizer; gradients reach encoder_q
    before the switch and nothing after."""
    cfg = tiny_config(tmp_path, constyle_iters=3, total_iters=8)
    tr = Trainer(cfg, train_set=SynthPairs())
    cs = tr.model.constyle
    q_params = list(cs.encoder_q.parameters())
    group = tr.opt.param_groups[tr.constyle_group]
    assert {id(p) for p in group["params"]} == {id(p) for p in q_params}
    assert not any(p is k for k in cs.encoder_k.parameters() for g in tr.opt.param_groups
                   for p in g["params"])

    before_training = constyle_state(tr)
    tr.fit(stop_at=3)
    assert not tr.frozen and not cs.frozen
    # Every parameter gets a gradient, non-zero except the biases of the Linear layers just
    # before a BatchNorm1d (mlp1.0, mlp2.0): BatchNorm subtracts the batch mean, so their
    # gradient is zero in exact arithmetic and rounding leaves it zero or tiny by machine.
    before_bn = {id(cs.encoder_q.mlp1[0].bias), id(cs.encoder_q.mlp2[0].bias)}
    assert all(p.grad is not None for p in q_params)
    assert all(p.grad.abs().sum() > 0 for p in q_params if id(p) not in before_bn)
    at_switch = constyle_state(tr)
    # ConStyle trained: encoders, BN statistics, queue and pointer all moved.
    for key in ("encoder_q.mlp1.1.running_mean", "encoder_k.mlp2.0.weight", "queue"):
        assert not torch.equal(before_training[key], at_switch[key]), key
    # Scaled queue for 3 active steps of batch 2: floor(2 * 3 / 5) = 1 -> 0, raised to two
    # batches = 4; after 3 steps of 2 codes the pointer is at 6 mod 4 = 2 (by hand).
    assert cs.queue_size == 4 and int(at_switch["queue_ptr"]) == 2
    backbone_before = {k: v.clone() for k, v in tr.model.state_dict().items()
                       if not k.startswith("constyle.")}

    tr.fit(stop_at=4)  # the first step after the switch
    assert tr.frozen and cs.frozen and not cs.training
    assert group["params"] == [] and not any(id(p) in {id(s) for s in tr.opt.state} for p in q_params)
    assert all(p.grad is None and not p.requires_grad for p in cs.parameters())
    tr.fit()  # 4 more steps
    after = constyle_state(tr)
    assert after.keys() == at_switch.keys()
    for key in at_switch:
        assert torch.equal(after[key], at_switch[key]), f"{key} changed after the freeze"
    assert all(p.grad is None for p in cs.parameters())
    assert not any(id(p) in {id(s) for s in tr.opt.state} for p in q_params)
    changed = [k for k, v in tr.model.state_dict().items()
               if not k.startswith("constyle.") and not torch.equal(v, backbone_before[k])]
    assert changed, "the backbone stopped training too"
    # L1 only after the switch: the ConStyle loss columns are empty from step 4 on.
    rows = (tmp_path / "train.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, 9))
    infonce = [r.split(",")[5] for r in rows]
    assert all(infonce[:3]) and not any(infonce[3:])


def test_missing_constyle_iters_never_freezes(tmp_path):
    cfg = tiny_config(tmp_path, recipe="release", constyle_iters=None, total_iters=5,
                      schedule=dataclasses.replace(TrainConfig().schedule, periods=[5], eta_mins=[1e-6]))
    tr = Trainer(cfg, train_set=SynthPairs())
    tr.fit()
    assert not tr.frozen and tr.model.constyle.training


def test_constyle_iters_zero_freezes_before_the_first_step(tmp_path):
    tr = Trainer(tiny_config(tmp_path, constyle_iters=0, total_iters=2), train_set=SynthPairs())
    q0 = constyle_state(tr)
    tr.fit()
    assert tr.frozen
    assert all(torch.equal(v, q0[k]) for k, v in constyle_state(tr).items())


# ---------------------------------------------------------------------------- guards
def test_batch_of_one_is_refused_before_the_step(tmp_path):
    with pytest.raises(ConfigError, match="batch_size must be >= 2"):
        Trainer(tiny_config(tmp_path, batch_size=1), train_set=SynthPairs())
    tr = Trainer(tiny_config(tmp_path), train_set=SynthPairs())
    item = SynthPairs()[0]
    with pytest.raises(ValueError, match="batch of 1"):
        tr.train_step({"lq": item["lq"][None], "gt": item["gt"][None]})


def test_dataset_smaller_than_a_batch(tmp_path):
    with pytest.raises(ConfigError, match="fewer than one batch"):
        Trainer(tiny_config(tmp_path, batch_size=4), train_set=SynthPairs(n=3))


def test_no_cuda_calls_in_the_training_code():
    root = Path(__file__).resolve().parents[1] / "irconstyle" / "train"
    for path in root.glob("*.py"):
        assert not re.search(r"\.cuda\(\)", path.read_text()), path


# ---------------------------------------------------------------------------- data order
def test_sampler_is_deterministic_resumable_and_sharded():
    full = list(EpochShardSampler(11, batch_size=2, seed=5, epoch=3))
    assert len(full) == 10 and len(set(full)) == 10  # drop_last: 5 full batches
    assert full == list(EpochShardSampler(11, batch_size=2, seed=5, epoch=3))
    assert full != list(EpochShardSampler(11, batch_size=2, seed=5, epoch=4))
    assert list(EpochShardSampler(11, batch_size=2, seed=5, epoch=3, start_batch=2)) == full[4:]
    shards = [list(EpochShardSampler(11, batch_size=2, seed=5, epoch=3, rank=r, world_size=2))
              for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 4 and not set(shards[0]) & set(shards[1])
    from irconstyle.data import item_generator  # the data layer's order stream for (seed, epoch)

    reference = torch.randperm(12, generator=item_generator(5, 3, 0, stream=1)).tolist()
    assert list(EpochShardSampler(12, batch_size=2, seed=5, epoch=3)) == reference


def test_batches_follow_the_step(tmp_path):
    """Batch k of a fresh run equals the first batch of a run whose step is k."""
    data = SynthPairs(n=7)  # 3 batches per epoch, one sample dropped
    tr = Trainer(tiny_config(tmp_path), train_set=data)
    it = tr._batches()
    seen = []
    for _ in range(5):
        seen.append(next(it))
        tr.step += 1
    it.close()
    assert all(b["lq"].shape[0] == 2 for b in seen)
    assert [b["name"][0].split("-")[0] for b in seen] == ["0", "0", "0", "1", "1"]
    tr2 = Trainer(tiny_config(tmp_path), train_set=SynthPairs(n=7))
    tr2.step = 4
    it2 = tr2._batches()
    assert torch.equal(next(it2)["lq"], seen[4]["lq"])
    it2.close()


# ---------------------------------------------------------------------------- outputs
def test_run_logs_validates_raw_and_ema_and_keeps_best_and_last(tmp_path):
    cfg = tiny_config(tmp_path, total_iters=6, val_every=3, ckpt_every=3,
                      data=DataSplits(val=None))
    result = run(cfg, train_set=SynthPairs(), val_set=SynthPairs(n=2, size=24, seed=9))
    assert set(result["metrics"]) == {"raw/psnr", "raw/psnr_y", "ema/psnr", "ema/psnr_y"}
    assert result["metrics"]["raw/psnr"] != result["metrics"]["ema/psnr"]
    for key in ("last", "best", "last_weights", "best_weights"):
        assert Path(result[key]).is_file(), key
    header, *rows = (tmp_path / "train.csv").read_text().splitlines()
    assert header.split(",")[:4] == ["step", "epoch", "lr", "loss"] and len(rows) == 6
    val = (tmp_path / "val.csv").read_text().splitlines()
    assert val[0].split(",") == ["step", "raw/psnr", "raw/psnr_y", "ema/psnr", "ema/psnr_y", "best"]
    assert [v.split(",")[0] for v in val[1:]] == ["3", "6"]
    assert result["best_step"] in (3, 6) and result["step"] == 6


def test_plain_model_trains_without_constyle_group(tmp_path):
    cfg = tiny_config(tmp_path, total_iters=3,
                      model=ModelConfig(name="nafnet", kwargs=dict(width=4, enc_blk_nums=[1],
                                                                   dec_blk_nums=[1], middle_blk_num=1)))
    tr = Trainer(cfg, train_set=SynthPairs())
    assert tr.constyle is None and tr.constyle_group is None and len(tr.opt.param_groups) == 1
    w0 = [p.clone() for p in tr.model.parameters()]
    tr.fit()
    assert any(not torch.equal(a, b) for a, b in zip(w0, tr.model.parameters()))


def test_grad_clip_is_applied(tmp_path, monkeypatch):
    calls = []
    real = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        calls.append(max_norm)
        return real(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    Trainer(tiny_config(tmp_path, total_iters=2, grad_clip=0.5), train_set=SynthPairs()).fit()
    assert calls == [0.5, 0.5]
    calls.clear()
    Trainer(tiny_config(tmp_path, total_iters=2), train_set=SynthPairs()).fit()
    assert calls == []


def test_constyle_kwargs_come_from_the_config_section(tmp_path):
    cfg = tiny_config(tmp_path)
    tr = Trainer(cfg, train_set=SynthPairs())
    assert tr.model.constyle.queue_size == tr.cfg.constyle.queue_size
    assert tr.model.constyle.momentum == tr.cfg.constyle.momentum
    bad = dataclasses.replace(cfg, model=ModelConfig(
        name="constyle_nafnet", kwargs=dict(TINY_NAFNET, constyle_kwargs=dict(queue_size=8))))
    with pytest.raises(ConfigError, match="constyle.queue_size"):
        Trainer(bad, train_set=SynthPairs())


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_branches_run_on_cpu(tmp_path, monkeypatch, dtype):
    """The CUDA AMP branches (autocast; fp16 with a GradScaler, as on a T4) exercised
    with CPU autocast; the scaler state goes into the checkpoint and comes back.
    (fp16's first steps overflow and are skipped by the scaler; torch warns about it.)"""
    import irconstyle.train.trainer as trainer_module

    assert trainer_module._amp_dtype(torch.device("cpu")) is None  # no AMP off CUDA
    monkeypatch.setattr(trainer_module, "_amp_dtype", lambda device: dtype)
    cfg = tiny_config(tmp_path, total_iters=4, constyle_iters=2, resume="auto")
    tr = Trainer(cfg, train_set=SynthPairs())
    assert tr.scaler.is_enabled() == (dtype == torch.float16)
    tr.fit(stop_at=3)
    assert all(torch.isfinite(p).all() for p in tr.model.parameters())
    resumed = Trainer(cfg, train_set=SynthPairs())
    assert resumed.step == 3
    if dtype == torch.float16:
        assert resumed.scaler.get_scale() == tr.scaler.get_scale()
        assert resumed.scaler.state_dict() == tr.scaler.state_dict()
    resumed.fit()


def test_tensorboard_log_holds_the_csv_scalars(tmp_path):
    """``log.tensorboard: true`` writes the same training scalars as train.csv."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(tmp_path, total_iters=4, log=LogConfig(every=1, progress=False, tensorboard=True))
    run(cfg, train_set=SynthPairs())
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    loss_tag = next(t for t in tags if t.endswith("loss"))
    steps = [e.step for e in acc.Scalars(loss_tag)]
    assert steps == [1, 2, 3, 4]
    csv_loss = [float(r.split(",")[3]) for r in (tmp_path / "train.csv").read_text().splitlines()[1:]]
    assert [e.value for e in acc.Scalars(loss_tag)] == pytest.approx(csv_loss, rel=1e-5)


def test_a_constyle_without_memory_cannot_train_its_losses(tmp_path):
    """constyle_train=False has no momentum encoder or queue: refuse instead of silently
    training on L1 alone."""
    cfg = tiny_config(tmp_path, model=ModelConfig(name="constyle_nafnet",
                                                  kwargs=dict(TINY_NAFNET, constyle_train=False)))
    with pytest.raises(ConfigError, match="constyle_train is false"):
        Trainer(cfg, train_set=SynthPairs())


def test_resume_with_another_queue_size_is_a_clear_error(tmp_path):
    run(tiny_config(tmp_path, total_iters=4, ckpt_every=2), train_set=SynthPairs())
    cfg = tiny_config(tmp_path, total_iters=6, resume="auto")
    cfg = dataclasses.replace(cfg, constyle=dataclasses.replace(cfg.constyle, queue_size=10))
    with pytest.raises(ConfigError, match="queue of"):
        Trainer(cfg, train_set=SynthPairs())


def test_exported_weights_leave_out_the_training_memory(tmp_path):
    from safetensors import safe_open

    result = run(tiny_config(tmp_path, total_iters=3), train_set=SynthPairs())
    with safe_open(result["last_weights"], "pt") as f:
        keys = set(f.keys())
    assert not any(k.startswith("constyle.encoder_k.") or k in ("constyle.queue", "constyle.queue_ptr")
                   for k in keys)
    assert any(k.startswith("constyle.encoder_q.") for k in keys)


# ---------------------------------------------------------------------------- freeze modes
def _probe_code(encoder: torch.nn.Module, lq: torch.Tensor) -> torch.Tensor:
    """The code of ``lq`` in the encoder's current modes, on a copy (so a BatchNorm in
    train mode does not update the trainer's running statistics)."""
    import copy
    with torch.no_grad():
        return copy.deepcopy(encoder)(lq).code


@pytest.mark.parametrize("mode", ["full", "release"])
def test_freeze_mode_decides_the_batchnorm_statistics_after_the_switch(tmp_path, mode):
    """``freeze_mode: release`` keeps the encoder's BatchNorm1d in train mode after the
    switch (batch statistics, running statistics still moving), as the release; ``full``
    uses the running statistics, so the code jumps at the switch.  Measured here: the
    relative change of a probe batch's code across the switch."""
    cfg = tiny_config(tmp_path, constyle_iters=6, total_iters=9, batch_size=4, freeze_mode=mode)
    tr = Trainer(cfg, train_set=SynthPairs(), val_set=SynthPairs(n=2, seed=5))
    enc = tr.model.constyle.encoder_q
    bns = [m for m in enc.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bns) == 2
    probe = torch.stack([SynthPairs(n=4, seed=99)[i]["lq"] for i in range(4)])
    tr.fit(stop_at=6)
    assert all(bn.training for bn in bns)
    before = _probe_code(enc, probe)  # batch statistics, the last step's weights
    tr.fit(stop_at=7)  # the switch, then one step
    assert tr.frozen and not enc.stage1.training  # the convolutions are frozen either way
    stats = [bn.running_mean.clone() for bn in bns]
    tr.validate()  # eval and back: the modes must survive it
    tr.fit(stop_at=9)
    after = _probe_code(enc, probe)
    moved = (after - before).norm() / before.norm()
    release = mode == "release"
    assert all(bn.training == release for bn in bns)
    assert all(torch.equal(a, bn.running_mean) != release for a, bn in zip(stats, bns))
    assert all(p.grad is None and not p.requires_grad for p in enc.parameters())
    if release:
        assert moved == 0, "release mode: the same weights and batch statistics give the same code"
    else:
        with torch.no_grad():
            running = copy_eval(enc)(probe).code
        torch.testing.assert_close(after, running)  # full mode reads the running statistics
        assert moved > 0.05, f"the code moved by {moved:.3f} only"
    print(f"freeze_mode={mode}: code moved by {float(moved):.4f} (relative) at the switch")


def copy_eval(module: torch.nn.Module) -> torch.nn.Module:
    import copy
    return copy.deepcopy(module).eval()


# ---------------------------------------------------------------------------- control arms
def test_ablated_control_trains_with_l1_only(tmp_path):
    """Arm (c): the ConStyle network with ConStyle replaced by learned constants trains
    as a plain network (L1 only, no freeze), constants included."""
    cfg = tiny_config(tmp_path, model=ModelConfig(name="constyle_nafnet_ablated",
                                                  kwargs=dict(TINY_NAFNET)), total_iters=3)
    tr = Trainer(cfg, train_set=SynthPairs())
    assert tr.constyle is None and tr.constyle_group is None
    assert not any(k.startswith("constyle.") for k in tr.model.state_dict())
    code = tr.model.style.code.detach().clone()
    tr.fit()
    assert not torch.equal(tr.model.style.code, code), "the learned code did not train"
    rows = [r.split(",") for r in (tmp_path / "train.csv").read_text().splitlines()[1:]]
    assert len(rows) == 3 and not any(r[5] or r[6] or r[7] for r in rows)  # no ConStyle losses
    assert all(float(r[3]) == pytest.approx(float(r[4])) for r in rows)  # loss == pixel


@pytest.mark.parametrize("memory", [True, False])
def test_constyle_losses_off_train_the_encoder_through_l1(tmp_path, memory):
    """Arm (b): loss weights 0 for InfoNCE, content and style.  The encoder then learns
    from L1 through the injection alone, so the momentum encoder and queue may be absent
    (``constyle_train: false``); the loss is L1 exactly."""
    from irconstyle.method.losses import LossWeights
    kwargs = dict(TINY_NAFNET) if memory else dict(TINY_NAFNET, constyle_train=False)
    cfg = tiny_config(tmp_path, model=ModelConfig(name="constyle_nafnet", kwargs=kwargs),
                      loss=LossWeights(infonce=0.0, content=0.0, style=0.0), total_iters=2,
                      constyle_iters=2)
    tr = Trainer(cfg, train_set=SynthPairs())
    assert tr.constyle.has_memory == memory
    before = {k: v.clone() for k, v in tr.model.constyle.encoder_q.state_dict().items()}
    terms = tr.train_step(next(tr._batches()))
    assert terms.infonce is None and terms.content is None and terms.style is None
    assert terms.total.item() == terms.pixel.item()
    q_grads = [p.grad for p in tr.model.constyle.encoder_q.parameters()]
    assert all(g is not None for g in q_grads) and any(g.abs().sum() > 0 for g in q_grads)
    after = tr.model.constyle.encoder_q.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items() if v.is_floating_point())


def test_constyle_train_false_with_its_losses_on_is_refused(tmp_path):
    cfg = tiny_config(tmp_path, model=ModelConfig(
        name="constyle_nafnet", kwargs=dict(TINY_NAFNET, constyle_train=False)))
    with pytest.raises(ConfigError, match="loss.infonce, loss.content and loss.style to 0"):
        Trainer(cfg, train_set=SynthPairs())


# ---------------------------------------------------------------------------- speed (issue 18)
def test_the_training_step_never_reads_a_value_back_to_the_host(tmp_path, monkeypatch):
    """No host synchronisation inside a step (what would make a GPU wait): the step
    must not turn a tensor into a Python number or truth value.  Checked on the CPU by
    making every such conversion raise while ``train_step`` runs, ConStyle training
    (momentum encoder, queue write) and frozen."""
    cfg = tiny_config(tmp_path, total_iters=4, constyle_iters=2)
    tr = Trainer(cfg, train_set=SynthPairs())
    batches = [SynthPairs()[i] for i in range(4)]
    batch = {"lq": torch.stack([b["lq"] for b in batches]), "gt": torch.stack([b["gt"] for b in batches])}

    def refuse(self, *args, **kwargs):
        raise AssertionError("a tensor was read back to the host inside the training step")

    ptr_before = tr.model.constyle.queue_ptr.clone()
    with monkeypatch.context() as m:
        for attr in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
            m.setattr(torch.Tensor, attr, refuse)
        tr.train_step(batch)
    assert int(tr.model.constyle.queue_ptr) == (int(ptr_before) + 4) % tr.model.constyle.queue_size
    tr._freeze_constyle()
    with monkeypatch.context() as m:
        for attr in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
            m.setattr(torch.Tensor, attr, refuse)
        tr.train_step(batch)


def test_the_trainer_uses_the_fast_layout_and_kernel_on_the_cpu(tmp_path):
    """channels_last weights and AdamW's fused kernel on a CPU by default (what
    benchmarks/sidebyside.py measured to pay), and the plain path when configured off."""
    from irconstyle.runtime.devices import fused_optimizer_supported
    from irconstyle.train.config import OptimConfig

    tr = Trainer(tiny_config(tmp_path), train_set=SynthPairs())
    convs = [m.weight for m in tr.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert bool(tr.opt.defaults.get("fused")) == fused_optimizer_supported(torch.device("cpu"))
    plain = Trainer(tiny_config(tmp_path / "plain", channels_last=False, optim=OptimConfig(fused=False)),
                    train_set=SynthPairs())
    assert any(not w.is_contiguous() for w in convs)  # some weights really were converted
    assert all(m.weight.is_contiguous() for m in plain.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert not plain.opt.defaults.get("fused")
