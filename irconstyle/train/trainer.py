"""The training loop: one readable ``fit`` over a config, nanoGPT style.

One iteration ``t`` (1-based, the release's count):

1. if ``t > constyle_iters`` and ConStyle still trains, freeze it for good: eval mode,
   no gradients, no momentum update, no enqueue, and its parameters leave the optimizer
   (the release only flipped ``requires_grad``, bugs B5-B7); the step counter lives here.
   ``freeze_mode: release`` keeps the encoder's BatchNorm1d in train mode, as the release;
2. forward ``model(lq, gt)`` (autocast on CUDA), loss = L1 (+ InfoNCE + content + style
   while ConStyle trains, unless all three weights are 0: then the encoder learns from
   L1 through the injection only and the momentum encoder and queue play no part);
3. backward, optional gradient clipping, AdamW step, then the EMA update (after the
   step, bug B9; ``ema.mode: release`` updates parameters only, before the step, as the
   release did), then the scheduler step;
4. every ``val_every``: PSNR (RGB and Y) of the raw and the EMA weights on the
   validation split; every ``ckpt_every`` (and on a new best): an atomic checkpoint.

Resuming is exact: the data order is a pure function of (seed, epoch, step), the lr a
pure function of the step, and every state (queue included) is in the checkpoint.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..method.constyle import MEMORY_KEYS
from ..data import build_dataset
from ..data.holdout import HeldOut
from ..data.augment import DIHEDRAL_COUNT, dihedral
from ..data.sampling import item_generator, seed_worker
from ..runtime.devices import channels_last_pays, fused_optimizer_supported
from ..method.losses import LossTerms, restoration_loss
from ..evaluation.metrics import psnr
from ..nets.padding import finite_check
from ..runtime.profiles import seed_everything
from ..nets.zoo import build_model
from .checkpoint import (load_checkpoint, remove_stale_temporaries, rng_state, save_checkpoint,
                         save_weights, set_rng_state)
from .config import ConfigError, TrainConfig, config_from_yaml_text, config_to_dict, config_to_yaml
from .distributed import EpochShardSampler, init_distributed, pick_device
from .ema import ModelEMA
from .recipe import resolve_config
from .schedule import CyclicCosine, build_scheduler

__all__ = ["Trainer", "run"]

TRAIN_FIELDS = ["step", "epoch", "lr", "loss", "pixel", "infonce", "content", "style", "seconds"]
VAL_FIELDS = ["step", "raw/psnr", "raw/psnr_y", "ema/psnr", "ema/psnr_y", "best"]


class _CsvLog:
    """Append-only CSV that, on resume, drops the rows written after the checkpoint."""

    def __init__(self, path: Path, fields: list[str], keep_until: int) -> None:
        self.path, self.fields = path, fields
        rows = []
        if keep_until > 0 and path.is_file():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(float(r["step"])) <= keep_until]
        self.file = path.open("w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=fields, extrasaction="ignore")
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.file.flush()

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class Trainer:
    """``Trainer(cfg).fit()`` trains, validates, checkpoints and resumes.

    ``train_set`` / ``val_set`` replace the datasets named in the config: any
    ``Dataset`` of dicts ``{"lq", "gt", ...}`` (float CHW in [0, 1]) works; a
    ``set_epoch(epoch)`` method, if present, is called before each epoch.
    """

    def __init__(self, cfg: TrainConfig, *, train_set: Dataset | None = None,
                 val_set: Dataset | None = None) -> None:
        device = pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
        self.dist = init_distributed(device)
        self.device = device
        self.cfg = cfg = resolve_config(cfg, world_size=self.dist.world_size)
        _check(cfg)
        self.is_main = self.dist.is_main
        self.out_dir = Path(cfg.out_dir)
        seed_everything(cfg.seed)

        self.train_set = train_set if train_set is not None else _dataset(cfg.data.train, cfg.seed)
        self.val_set = val_set if val_set is not None else (
            _dataset(cfg.data.val) if cfg.data.val is not None else None)
        self.batches_per_epoch = EpochShardSampler.batches_per_epoch(
            len(self.train_set), cfg.batch_size, self.dist.world_size)
        if self.batches_per_epoch == 0:
            raise ConfigError(f"the training set has {len(self.train_set)} samples, fewer than one "
                              f"batch of {cfg.batch_size} x {self.dist.world_size} process(es)")

        self.model, self.model_kwargs = self._build_model()
        self.constyle = getattr(self.model, "constyle", None)
        self.constyle_iters = cfg.constyle_iters if cfg.constyle_iters is not None else math.inf
        # ConStyle's own losses (all three weights 0: the encoder learns from L1 alone).
        self.constyle_losses = any(w != 0 for w in (cfg.loss.infonce, cfg.loss.content, cfg.loss.style))
        if (self.constyle is not None and self.constyle_iters >= 1 and self.constyle_losses
                and not self.constyle.has_memory):
            raise ConfigError("model.kwargs.constyle_train is false: this ConStyle has no momentum "
                              "encoder or queue, so its losses could not train it (remove the key, "
                              "set constyle_iters: 0 to train the backbone only, or set "
                              "loss.infonce, loss.content and loss.style to 0)")
        bn_trains = self.constyle_iters >= 1 or cfg.freeze_mode == "release"
        if self.constyle is not None and bn_trains and cfg.batch_size < 2:
            raise ConfigError("batch_size must be >= 2 while ConStyle's BatchNorm1d is in train "
                              "mode (while ConStyle trains, or always with freeze_mode: release): "
                              "it cannot normalise a batch of 1 (set batch_size >= 2)")
        self.channels_last = cfg.channels_last and channels_last_pays(device)
        self.model.to(device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.ema = (ModelEMA(self.model, decay=cfg.ema.decay, mode=cfg.ema.mode, warmup=cfg.ema.warmup)
                    if cfg.ema.decay > 0 else None)

        self.opt, self.constyle_group = self._build_optimizer()
        self.schedule = CyclicCosine(base_lr=cfg.optim.lr, periods=cfg.schedule.periods,
                                     eta_mins=cfg.schedule.eta_mins,
                                     restart_weights=cfg.schedule.restart_weights,
                                     warmup_iters=cfg.schedule.warmup_iters)
        self.sched = build_scheduler(self.opt, self.schedule)
        self.amp_dtype = _amp_dtype(device) if cfg.amp else None
        self.scaler = _grad_scaler(device, enabled=self.amp_dtype == torch.float16)

        self.step = 0
        self.frozen = False
        self.best: dict[str, float] = {"value": -math.inf, "step": 0}
        self.metrics: dict[str, float] = {}
        self._train_log = self._val_log = self._tb = None
        self._wrap()
        self._resume()

    # ------------------------------------------------------------------ construction
    def _build_model(self) -> tuple[nn.Module, dict]:
        """Build ``cfg.model``; ConStyle models get the queue size, momentum and kind of
        negatives of ``cfg.constyle`` (rebuilt from the same seed when they differ from
        the defaults).  The negatives' kind enters the saved model kwargs only when it is
        not the default, so the release's checkpoints and exports are unchanged."""
        cfg = self.cfg
        kwargs = dict(cfg.model.kwargs)
        given = dict(kwargs.get("constyle_kwargs") or {})
        for key in ("queue_size", "momentum", "negatives"):
            if key in given:
                raise ConfigError(f"model.kwargs.constyle_kwargs.{key}: set constyle.{key} instead "
                                  "(one place for the queue and its negatives)")
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model.name, **kwargs)
        cs = getattr(model, "constyle", None)
        if cs is not None:
            want = {"queue_size": cfg.constyle.queue_size, "momentum": cfg.constyle.momentum}
            if cfg.constyle.negatives != "queue":
                want["negatives"] = cfg.constyle.negatives
            kwargs["constyle_kwargs"] = {**given, **want}
            if ((cs.queue_size, cs.momentum, cs.negatives)
                    != (want["queue_size"], want["momentum"], cfg.constyle.negatives)):
                torch.manual_seed(cfg.seed)
                model = build_model(cfg.model.name, **kwargs)
        return model, kwargs

    def _build_optimizer(self) -> tuple[torch.optim.Optimizer, int | None]:
        """AdamW with ConStyle's trainable parameters in their own group, so the freeze
        can take them out; the momentum encoder is never in it (no gradients)."""
        cs_params = ([p for p in self.constyle.parameters() if p.requires_grad]
                     if self.constyle is not None else [])
        cs_ids = {id(p) for p in cs_params}
        backbone = [p for p in self.model.parameters() if p.requires_grad and id(p) not in cs_ids]
        groups = [{"params": backbone, "name": "backbone"}]
        if cs_params:
            groups.append({"params": cs_params, "name": "constyle"})
        o = self.cfg.optim
        fused = fused_optimizer_supported(self.device) if o.fused is None else o.fused
        opt = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay, betas=tuple(o.betas),
                                **({"fused": True} if fused else {}))
        return opt, (1 if cs_params else None)

    def _wrap(self) -> None:
        """The module the training step calls: DDP and/or compiled around ``self.model``
        (rebuilt after the freeze, since DDP fixes its parameter set at construction)."""
        module: nn.Module = self.model
        if self.dist.enabled:
            module = DistributedDataParallel(
                module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.cfg.find_unused_parameters)
        if self.cfg.compile:
            if self.constyle is not None:
                # ConStyle stays eager: it writes its queue in place between forward and
                # backward, and a compiled graph may recompute the logits' queue snapshot
                # from the (by then modified) queue in the backward pass.
                self.constyle.forward = torch.compiler.disable(type(self.constyle).forward.__get__(
                    self.constyle))
            module = torch.compile(module)
        self.train_model = module

    def _freeze_constyle(self) -> None:
        """The switch after ``constyle_iters``: ConStyle frozen for good and out of the
        optimizer (its AdamW moments are dropped, so nothing can move its parameters
        again).

        ``freeze_mode: full`` also freezes the BatchNorm1d heads (eval mode, running
        statistics), which moves the code at the switch; ``release`` keeps them in train
        mode as the release did, so the code keeps its batch-normalised distribution and
        the running statistics keep moving (validation and inference read them).  How far
        a probe batch's code moves across the switch (relative L2 change), measured by
        tests/test_trainer.py (width-8 NAFNet, switch after 6 steps of batch 4): release
        0 exactly, full 1.007 (running statistics after 6 updates at BatchNorm's momentum
        0.1 are far from the batch's).
        """
        self.constyle.freeze()
        for p in self.constyle.parameters():
            p.grad = None  # zero_grad no longer reaches them once out of the optimizer
        if self.constyle_group is not None:
            group = self.opt.param_groups[self.constyle_group]
            for p in group["params"]:
                self.opt.state.pop(p, None)
            group["params"] = []
        self.frozen = True
        self._train_mode()
        if self.dist.enabled:
            self._wrap()

    def _train_mode(self) -> None:
        """``model.train()``, with ``freeze_mode: release``'s exception: a frozen ConStyle
        stays in eval mode except its BatchNorm layers."""
        self.model.train()
        if self.frozen and self.cfg.freeze_mode == "release":
            for m in self.constyle.encoder_q.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.train()

    # ------------------------------------------------------------------ data
    def _batches(self) -> Iterator[dict]:
        """Batches from the current step on: epoch and position are derived from
        ``self.step``, so a resumed run continues mid-epoch with the same samples."""
        cfg = self.cfg
        while True:
            epoch, start = divmod(self.step, self.batches_per_epoch)
            if hasattr(self.train_set, "set_epoch"):
                self.train_set.set_epoch(epoch)
            sampler = EpochShardSampler(len(self.train_set), batch_size=cfg.batch_size, seed=cfg.seed,
                                        epoch=epoch, rank=self.dist.rank,
                                        world_size=self.dist.world_size, start_batch=start)
            loader = DataLoader(self.train_set, batch_size=cfg.batch_size, sampler=sampler,
                                drop_last=True, num_workers=cfg.num_workers,
                                pin_memory=self.device.type == "cuda",
                                # worker seeds from (seed, epoch), so they change every
                                # epoch (D12) and repeat after a resume
                                generator=item_generator(cfg.seed, epoch, 0, stream=2),
                                worker_init_fn=seed_worker)
            yield from loader

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    # ------------------------------------------------------------------ one step
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def key_input(self, lq: torch.Tensor, gt: torch.Tensor, step: int) -> torch.Tensor:
        """What ConStyle's momentum encoder sees at ``step`` (1-based): the pretext task.

        ``restoration`` (the release; the paper's guideline 3): the clean ``gt``, the
        positive key of the degraded query.  ``instance`` (instance discrimination, the
        DASR / AirNet pretext): a second view of the same *degraded* patch, each sample
        transformed by its own random dihedral transform (one of the 8 flips and quarter
        turns, :func:`irconstyle.data.augment.dihedral`) followed by a random circular
        shift (``torch.roll`` by a uniform offset in each axis).  Why this view: DASR and
        AirNet take two crops of one degraded image at its native scale, so both carry the
        same degradation and the same scene; here the batch holds only the query's patch,
        and a dihedral transform plus a circular shift is a permutation of its pixels at
        the native scale: no resampling, so the noise of an i.i.d. noise model keeps its
        exact distribution (a random-resized crop would rescale the noise and change the
        degradation), the view has the query's size, and its content is the same scene
        seen at another position and orientation.  Not exact for anisotropic degradations:
        quarter turns and flips turn rain streaks and motion-blur paths.  Square patches
        only.  The draws come from a generator seeded by (seed, step), a pure function of
        the step, so a resumed run draws the same views.
        """
        if self.cfg.constyle.pretext == "restoration" or self.constyle is None:
            return gt
        b, _, h, w = lq.shape
        if h != w:
            raise ValueError(f"constyle.pretext: instance needs square training patches "
                             f"(its dihedral views), got {h}x{w}")
        g = item_generator(self.cfg.seed, step, 0, stream=3)
        ks = torch.randint(0, DIHEDRAL_COUNT, (b,), generator=g).tolist()
        shifts = torch.randint(0, h, (b, 2), generator=g).tolist()
        return torch.stack([dihedral(x, k).roll(tuple(s), dims=(-2, -1))
                            for x, k, s in zip(lq, ks, shifts)])

    def train_step(self, batch: dict) -> LossTerms:
        lq, gt = self._to_device(batch["lq"]), self._to_device(batch["gt"])
        bn_trains = not self.frozen or self.cfg.freeze_mode == "release"
        if self.constyle is not None and bn_trains and lq.shape[0] < 2:
            raise ValueError(f"step {self.step + 1}: a batch of {lq.shape[0]} would reach ConStyle's "
                             "BatchNorm1d in train mode; use batch_size >= 2")
        # No NaN check of the input inside the step (it would make a GPU wait): the data
        # were checked when read, and the loss is checked at every log step.
        with self._autocast(), finite_check(False):
            # gt reaches ConStyle's momentum encoder only (the loss below reads gt itself)
            out = self.train_model(lq, self.key_input(lq, gt, self.step + 1))
            terms = restoration_loss(out.image, gt, out.constyle, self.cfg.loss,
                                     use_constyle=self.constyle_losses and not self.frozen)
        if self.ema is not None and self.cfg.ema.mode == "release":
            self.ema.update(self.model)  # the release's order: before the optimizer step
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(terms.total).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.opt)
            nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]],
                                     self.cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.ema is not None and self.cfg.ema.mode == "full":
            self.ema.update(self.model)
        self.sched.step()
        return terms

    # ------------------------------------------------------------------ the loop
    def fit(self, stop_at: int | None = None) -> dict[str, Any]:
        """Train to ``total_iters`` (or pause at ``stop_at``, saving a checkpoint there)."""
        cfg = self.cfg
        end = cfg.total_iters if stop_at is None else min(stop_at, cfg.total_iters)
        bar = tqdm(total=cfg.total_iters, initial=self.step, dynamic_ncols=True, desc="train",
                   disable=not (self.is_main and cfg.log.progress))
        self._open_logs()
        batches = self._batches()
        started, start_step = time.perf_counter(), self.step
        self._train_mode()
        try:
            while self.step < end:
                step = self.step + 1
                if self.constyle is not None and not self.frozen and step > self.constyle_iters:
                    self._freeze_constyle()
                lr = self.opt.param_groups[0]["lr"]  # the lr this step uses
                terms = self.train_step(next(batches))
                self.step = step
                bar.update(1)
                if step % cfg.log.every == 0 or step == end:
                    self._log_train(terms, lr, time.perf_counter() - started, step - start_step, bar)
                improved = False
                if self.val_set is not None and (step % cfg.val_every == 0 or step == cfg.total_iters):
                    improved = self._validate_and_track()
                if step % cfg.ckpt_every == 0 or step == end or improved:
                    self._save(best=improved)
        finally:
            batches.close()
            bar.close()
        if self.step == cfg.total_iters and self.is_main:
            self._export(self.out_dir / "last.safetensors")
        self._close_logs()
        return self.summary()

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean PSNR (RGB and Y, BasicSR's convention) of the raw and the EMA weights
        on the full validation images, in float32."""
        if self.val_set is None:
            return {}
        models = {"raw": self.model}
        if self.ema is not None:
            models["ema"] = self.ema.module
        sums: dict[str, float] = {}
        count = 0
        self.model.eval()
        for item in DataLoader(self.val_set, batch_size=1, num_workers=0):
            lq = item["lq"].to(self.device)
            gt = item["gt"].float()
            for tag, model in models.items():
                out = model(lq).float().cpu()
                for key, y in (("psnr", False), ("psnr_y", True)):
                    sums[f"{tag}/{key}"] = sums.get(f"{tag}/{key}", 0.0) + psnr(out, gt, y_channel=y)
            count += 1
        self._train_mode()
        if count == 0:
            raise ConfigError("the validation set is empty")
        return {k: v / count for k, v in sums.items()}

    def _validate_and_track(self) -> bool:
        """Validate (main process only) and say whether the selection metric improved."""
        if not self.is_main:
            return False
        self.metrics = self.validate()
        key = f"{'ema' if self.ema is not None else 'raw'}/{self.cfg.best_metric}"
        improved = self.metrics[key] > self.best["value"]
        if improved:
            self.best = {"value": float(self.metrics[key]), "step": self.step}
        row = {"step": self.step, **self.metrics, "best": self.best["value"]}
        if self._val_log is not None:
            self._val_log.write(row)
        if self._tb is not None:
            for k, v in self.metrics.items():
                self._tb.add_scalar(f"val/{k}", v, self.step)
        tqdm.write(f"step {self.step}: " + ", ".join(f"{k} {v:.3f}" for k, v in self.metrics.items()))
        return improved

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs; loads with ``torch.load(weights_only=True)``."""
        return {
            "step": self.step,
            "frozen": self.frozen,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "best": dict(self.best),
            "metrics": dict(self.metrics),
            "world_size": self.dist.world_size,
            "model_kwargs_json": json.dumps(self.model_kwargs),
            "config": config_to_yaml(self.cfg),
        }

    def _save(self, best: bool) -> None:
        """best.pt first, then last.pt: if a kill falls between them, last.pt is the
        older state and the resumed run re-validates and rewrites best.pt."""
        if not self.is_main:
            return
        state = self.state_dict()
        if best:
            save_checkpoint(state, self.out_dir / "best.pt")
            self._export(self.out_dir / "best.safetensors")
        save_checkpoint(state, self.out_dir / "last.pt")

    def _export(self, path: Path) -> None:
        """Inference weights: EMA (or raw) without ConStyle's training memory (the
        momentum encoder and queue, which inference never reads and the EMA copy does
        not track)."""
        model = self.ema.module if self.ema is not None else self.model
        save_weights(model, path, drop=MEMORY_KEYS, metadata={
            "model": self.cfg.model.name, "model_kwargs": json.dumps(self.model_kwargs),
            "weights": "ema" if self.ema is not None else "raw", "step": str(self.step)})

    def _resume(self) -> None:
        cfg = self.cfg
        if cfg.resume == "never":
            return
        path = self.out_dir / "last.pt" if cfg.resume == "auto" else Path(cfg.resume)
        if not path.is_file():
            if cfg.resume != "auto":
                raise FileNotFoundError(f"resume: checkpoint {path} does not exist")
            return
        ckpt = load_checkpoint(path, map_location="cpu")  # load_state_dict moves to the device
        self._warn_if_config_differs(ckpt["config"], path)
        if self.constyle is not None and "constyle.queue" in ckpt["model"]:
            saved_k = ckpt["model"]["constyle.queue"].shape[1]
            if saved_k != self.constyle.queue_size:
                raise ConfigError(
                    f"resume: {path} has a ConStyle queue of {saved_k}, this run {self.constyle.queue_size} "
                    f"(the scaled recipe sizes the queue by the global batch: {ckpt.get('world_size', 1)} "
                    f"process(es) then, {self.dist.world_size} now); resume with the same number of "
                    f"processes or set constyle.queue_size={saved_k}")
        if int(ckpt.get("world_size", 1)) != self.dist.world_size and self.is_main:
            warnings.warn(f"{path} was written by {ckpt.get('world_size')} process(es), resumed with "
                          f"{self.dist.world_size}: the data order will differ from an "
                          "uninterrupted run", stacklevel=2)
        if ckpt["frozen"] and not self.frozen:
            self._freeze_constyle()  # before the optimizer state, whose groups match then
        self.model.load_state_dict(ckpt["model"])
        if self.ema is not None and ckpt["ema"] is not None:
            self.ema.load_state_dict(ckpt["ema"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        if ckpt["scaler"]:
            self.scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        self.step = int(ckpt["step"])
        self.best = {"value": float(ckpt["best"]["value"]), "step": int(ckpt["best"]["step"])}
        self.metrics = dict(ckpt["metrics"])
        if self.is_main:
            tqdm.write(f"resumed from {path} at step {self.step}")

    def _warn_if_config_differs(self, saved_yaml: str, path: Path) -> None:
        volatile = {"resume", "out_dir", "num_workers", "log", "compile", "device"}
        saved = config_to_dict(config_from_yaml_text(saved_yaml, str(path)))
        now = config_to_dict(self.cfg)
        diff = sorted(k for k in now if k not in volatile and now[k] != saved.get(k))
        if diff and self.is_main:
            warnings.warn(f"resuming {path} with a different config in: {', '.join(diff)}",
                          stacklevel=3)

    # ------------------------------------------------------------------ logging
    def _open_logs(self) -> None:
        """(Re)open the logs, keeping the rows up to the current step."""
        self._close_logs()
        if not self.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.out_dir)
        (self.out_dir / "config.yml").write_text(config_to_yaml(self.cfg))
        if self.cfg.log.csv:
            self._train_log = _CsvLog(self.out_dir / "train.csv", TRAIN_FIELDS, self.step)
            self._val_log = _CsvLog(self.out_dir / "val.csv", VAL_FIELDS, self.step)
        if self.cfg.log.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("log.tensorboard: true needs the tensorboard package "
                                  "(pip install tensorboard)") from None
            self._tb = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=self.step + 1)

    def _log_train(self, terms: LossTerms, lr: float, seconds: float, steps_done: int,
                   bar: tqdm) -> None:
        values = {k: (None if v is None else float(v.detach())) for k, v in terms._asdict().items()}
        values["loss"] = values.pop("total")
        if not math.isfinite(values["loss"]):
            raise FloatingPointError(f"step {self.step}: the loss is {values['loss']}")
        if not self.is_main:
            return
        row = {"step": self.step, "epoch": (self.step - 1) // self.batches_per_epoch, "lr": lr,
               **values, "seconds": round(seconds, 3)}
        if self._train_log is not None:
            self._train_log.write(row)
        if self._tb is not None:
            for k, v in values.items():
                if v is not None:
                    self._tb.add_scalar(f"train/{k}", v, self.step)
            self._tb.add_scalar("train/lr", lr, self.step)
        bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{lr:.2e}",
                        it_s=f"{steps_done / max(seconds, 1e-9):.2f}")

    def _close_logs(self) -> None:
        for log in (self._train_log, self._val_log):
            if log is not None:
                log.close()
        if self._tb is not None:
            self._tb.close()
        self._train_log = self._val_log = self._tb = None

    def summary(self) -> dict[str, Any]:
        def existing(name: str) -> str | None:
            p = self.out_dir / name
            return str(p) if self.is_main and p.is_file() else None
        return {"out_dir": str(self.out_dir), "step": self.step, "frozen": self.frozen,
                "last": existing("last.pt"), "best": existing("best.pt"),
                "last_weights": existing("last.safetensors"),
                "best_weights": existing("best.safetensors"),
                "metrics": dict(self.metrics),
                "best_value": self.best["value"] if math.isfinite(self.best["value"]) else None,
                "best_step": self.best["step"], "best_metric": self.cfg.best_metric}

    def close(self) -> None:
        self._close_logs()
        self.dist.close()


def run(cfg: TrainConfig, **datasets: Dataset) -> dict[str, Any]:
    """Train ``cfg`` to the end (resuming per ``cfg.resume``); returns paths and metrics."""
    trainer = Trainer(cfg, **datasets)
    try:
        return trainer.fit()
    finally:
        trainer.close()


# ---------------------------------------------------------------------------- helpers
def _amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on GPUs that compute in it natively (Ampere and newer), else fp16 (with a
    GradScaler; e.g. Colab's T4, where bf16 would only be emulated); no AMP off CUDA."""
    if device.type != "cuda":
        return None
    try:
        native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.3 has no including_emulation and no emulation
        native_bf16 = torch.cuda.is_bf16_supported()
    return torch.bfloat16 if native_bf16 else torch.float16


def _grad_scaler(device: torch.device, enabled: bool):
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device.type, enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)  # torch < 2.3


def _dataset(data, seed: int | None = None) -> Dataset:
    """Build a configured dataset; a training set gets the run's seed unless its kwargs
    name one (evaluation sets are seeded by image, independent of the run)."""
    kwargs = dict(data.kwargs)
    if seed is not None:
        kwargs.setdefault("seed", seed)
    dataset = build_dataset(data.kind, split=data.split, **kwargs)
    if data.hold_out is not None:
        dataset = HeldOut(dataset, every=data.hold_out.every, group=data.hold_out.group)
    return dataset


def _check(cfg: TrainConfig) -> None:
    for key in ("total_iters", "batch_size", "val_every", "ckpt_every"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    if cfg.log.every < 1:
        raise ConfigError(f"log.every must be >= 1, got {cfg.log.every}")
    if cfg.num_workers < 0:
        raise ConfigError(f"num_workers must be >= 0, got {cfg.num_workers}")
    if sum(cfg.schedule.periods) < cfg.total_iters:
        raise ConfigError(f"schedule.periods sum to {sum(cfg.schedule.periods)}, fewer than "
                          f"total_iters={cfg.total_iters}: the lr would be undefined at the end "
                          "(use recipe: scaled, or set schedule.periods)")
    train, val = cfg.data.train, cfg.data.val
    if val is not None and (train.hold_out is not None or val.hold_out is not None):
        if train.hold_out != val.hold_out or train.kind != val.kind or _folders(train) != _folders(val):
            raise ConfigError(
                "data.train and data.val must name the same kind, folders and hold_out: the "
                "validation images are held out of the training folder by the same rule "
                f"(train: {train.kind} {_folders(train)} {train.hold_out}; "
                f"val: {val.kind} {_folders(val)} {val.hold_out})")
    if cfg.resume not in ("auto", "never") and not cfg.resume.endswith((".pt", ".pth")):
        raise ConfigError(f"resume must be 'auto', 'never' or a .pt path, got {cfg.resume!r}")


def _folders(data) -> dict[str, Any]:
    """The folder arguments of a dataset entry (``*_dir``, ``root``)."""
    return {k: v for k, v in data.kwargs.items() if k.endswith("_dir") or k == "root"}
