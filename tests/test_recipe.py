"""Configs, presets and the recipe: the release's presets keep the release's numbers
exactly; every short preset scales them with ``scale_recipe`` (issue 9.1)."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from irconstyle import model_names
from irconstyle.data import BENCHMARKS
from irconstyle.train import (ConfigError, Trainer, TrainConfig, list_presets, load_config,
                              resolve_config, scale_recipe)
from irconstyle.train.config import DataConfig, DataSplits, config_from_yaml_text, config_to_yaml
from irconstyle.train.recipe import task_of
from irconstyle.train.schedule import cyclic_cosine_lr
from test_trainer import SynthPairs, tiny_config

# The release's training YAMLs (options/train/<backbone>/train_*.yml in
# github.com/Dongqi-Fan/IRConStyle), transcribed: (batch size, ConStyle_iter) per YAML.
TASKS = ("denoise", "denoise15", "denoise25", "denoise50", "deblur", "derain", "dehaze")
RELEASE_TABLE: dict[str, tuple[int, int | None]] = {}
for task in TASKS:
    freeze = None if task.startswith("denoise") else 250000
    for backbone in ("nafnet", "maxim"):
        RELEASE_TABLE[f"constyle_{backbone}_{task}"] = (16, freeze or 999999)
        RELEASE_TABLE[f"{backbone}_{task}"] = (16, None)
    RELEASE_TABLE[f"constyle_restormer_{task}"] = (16 if task == "dehaze" else 8,
                                                   999999 if task == "deblur" else freeze or 999999)
    RELEASE_TABLE[f"restormer_{task}"] = (16 if task in ("dehaze", "denoise") else 8, None)


# ---------------------------------------------------------------------------- release presets
def test_every_release_recipe_has_a_preset():
    release = {p.split("/", 1)[1] for p in list_presets() if p.startswith("release/")}
    assert release == set(RELEASE_TABLE)


@pytest.mark.parametrize("name", sorted(RELEASE_TABLE))
def test_release_preset_keeps_the_release_numbers(name):
    batch, constyle_iters = RELEASE_TABLE[name]
    raw = load_config(f"release/{name}")
    cfg = resolve_config(raw)
    if not name.startswith("constyle_"):  # no ConStyle: its section is irrelevant, left out
        raw = dataclasses.replace(raw, constyle=cfg.constyle)
    assert raw == cfg, "a release preset states every recipe value explicitly"
    assert cfg.recipe == "release" and cfg.model.name == name.rsplit("_", 1)[0]
    assert cfg.batch_size == batch and cfg.constyle_iters == constyle_iters
    assert cfg.total_iters == 703632 and cfg.val_every == 5000 and cfg.seed == 10
    assert cfg.schedule.periods == [243312, 460320] and cfg.schedule.eta_mins == [3e-4, 1e-6]
    assert cfg.schedule.restart_weights == [1, 1] and cfg.schedule.warmup_iters == 0
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.betas) == (3e-4, 1e-4, [0.9, 0.999])
    assert cfg.ema.decay == 0.999
    assert dataclasses.astuple(cfg.loss)[:4] == (1.0, 1.0, 1.0, 1.0)
    if name.startswith("constyle_"):
        assert (cfg.constyle.queue_size, cfg.constyle.momentum) == (65760, 0.999)
    assert cfg.data.train.kwargs["patch_size"] == 128 and cfg.data.train.split == "train"
    assert cfg.data.val is not None and cfg.data.val.split == "val"
    if "denoise" in name:
        sigma = name.rsplit("denoise", 1)[1]
        assert cfg.data.train.kwargs["sigma"] == (int(sigma) if sigma else "random")
        if not sigma:
            assert cfg.data.train.kwargs["sigma_range"] == [0, 50]


# Every registered test benchmark's prepared folders, as the data layer lays them out.
TEST_FOLDERS = [Path(folder) for b in BENCHMARKS.values() if b.role == "test"
                for folder in b.dataset_spec("data")[1].values()]


@pytest.mark.parametrize("name", sorted(RELEASE_TABLE))
def test_release_presets_never_select_on_a_test_set(name):
    """Bug B18 / issue 13.1: the validation images (which pick best.*) are held out of the
    training folder by the same rule on both sides, never a test benchmark's folder."""
    cfg = load_config(f"release/{name}")
    train, val = cfg.data.train, cfg.data.val
    val_paths = [Path(v) for k, v in val.kwargs.items() if k.endswith("_dir") or k == "root"]
    assert val_paths, "the validation set names its folders"
    for path in val_paths:
        for test in TEST_FOLDERS:
            assert not (path == test or test in path.parents or path in test.parents), \
                f"{name}: validation folder {path} is (in) the test benchmark folder {test}"
        assert "/train/" in path.as_posix()
    assert val.kind == train.kind != "minibench"
    assert {k: v for k, v in val.kwargs.items() if k.endswith("_dir")} == \
        {k: v for k, v in train.kwargs.items() if k.endswith("_dir")}
    assert train.hold_out is not None and val.hold_out == train.hold_out


def test_mismatched_hold_out_is_refused(tmp_path):
    cfg = load_config("release/constyle_nafnet_derain", ["data.val.hold_out.every=50"])
    with pytest.raises(ConfigError, match="same kind, folders and hold_out"):
        Trainer(dataclasses.replace(cfg, out_dir=str(tmp_path), device="cpu"), train_set=SynthPairs())


def test_release_presets_name_models_of_the_zoo():
    missing = {load_config(f"release/{n}").model.name for n in RELEASE_TABLE} - set(model_names())
    assert not missing, f"models not in irconstyle.nets.zoo: {sorted(missing)}"


def test_release_recipe_lr_values():
    cfg = resolve_config(load_config("release/constyle_nafnet_deblur"))
    lr = lambda t: cyclic_cosine_lr(t, base_lr=cfg.optim.lr, periods=cfg.schedule.periods,  # noqa: E731
                                    eta_mins=cfg.schedule.eta_mins)
    assert lr(243312) == pytest.approx(3e-4, rel=1e-12)
    assert lr(473472) == pytest.approx(1.505e-4, rel=1e-5)
    assert lr(703632) == pytest.approx(1e-6, rel=1e-7)


# ---------------------------------------------------------------------------- short presets
# Hand-computed for 300 steps of batch 8, the size of every short preset (all denoising):
# never frozen (the release's denoise rule); K = 300 * 8 / 5 = 480, a multiple of 8;
# memory 300 / 20 = 15 steps, so decay 1 - 1/15; constant lr for
# round(300 * 243312 / 703632) = round(103.74) = 104 steps.
SHORT_PRESET = dict(queue_size=480, constyle_iters=None, periods=[104, 196])


@pytest.mark.parametrize("name", [p for p in list_presets() if not p.startswith("release/")])
def test_short_presets_use_the_scaled_recipe(name):
    raw = load_config(name)
    assert raw.recipe == "scaled" and (raw.total_iters, raw.batch_size) == (300, 8)
    assert task_of(raw) == "denoise"
    cfg = resolve_config(raw)
    got = dict(queue_size=cfg.constyle.queue_size, constyle_iters=cfg.constyle_iters,
               periods=cfg.schedule.periods)
    assert got == SHORT_PRESET
    assert cfg.constyle.momentum == cfg.ema.decay == pytest.approx(1 - 1 / 15, rel=1e-12)
    assert resolve_config(cfg) == cfg  # idempotent (a checkpoint's config resolves to itself)


# (steps, batch, world, freeze) -> (queue, decay, constyle_iters, periods), each worked by
# hand from the rules in recipe.py's docstring:
#   constyle_iters = round(steps * 250000 / 703632) when frozen, else None (never);
#   K = floor(B_total * active / 5) rounded down to a multiple of B_total, within
#       [2 B_total, 65760], active = constyle_iters or steps;
#   decay = min(0.999, 1 - 1 / max(steps / 20, 2)); constant = round(steps * 243312 / 703632).
SCALED_CASES = {
    # 106.59 -> 107 active; 8 * 107 / 5 = 171.2 -> 168; memory 15; 103.74 -> 104
    (300, 8, 1, True): (168, 1 - 1 / 15, 107, (104, 196)),
    # never frozen: 8 * 300 / 5 = 480
    (300, 8, 1, False): (480, 1 - 1 / 15, None, (104, 196)),
    # 710.60 -> 711; 16 * 711 / 5 = 2275.2 -> 2272; memory 100 -> 0.99; 691.59 -> 692
    (2000, 16, 1, True): (2272, 0.99, 711, (692, 1308)),
    # 4 x 16 = 64 per step; 64 * 20000 / 5 = 256000 capped at 65760 = 1027.5 x 64 -> 65728;
    # memory 1000 -> 0.999; 6915.89 -> 6916
    (20000, 16, 4, False): (65728, 0.999, None, (6916, 13084)),
    # 17.76 -> 18; 2 * 18 / 5 = 7.2 -> 6; memory max(2.5, 2) -> 1 - 1/2.5 = 0.6; 17.29 -> 17
    (50, 2, 1, True): (6, 0.6, 18, (17, 33)),
    # 7.11 -> 7; 8 * 7 / 5 = 11.2 -> 8, raised to two batches = 16; memory max(1, 2) -> 0.5
    (20, 8, 1, True): (16, 0.5, 7, (7, 13)),
    # 355299.36 -> 355299; the release's K (65760 = 4110 x 16); memory capped at 0.999;
    # 345794.39 -> 345794
    (10**6, 16, 1, True): (65760, 0.999, 355299, (345794, 654206)),
}


@pytest.mark.parametrize("case", sorted(SCALED_CASES, key=str))
def test_scale_recipe_hand_computed(case):
    steps, batch, world, freeze = case
    queue, decay, constyle_iters, periods = SCALED_CASES[case]
    r = scale_recipe(steps, batch, world_size=world, freeze=freeze)
    assert r.queue_size == queue and r.constyle_iters == constyle_iters and r.periods == periods
    assert r.momentum == pytest.approx(decay, rel=1e-12)
    assert r.ema_decay == pytest.approx(decay, rel=1e-12)
    assert r.eta_mins == (3e-4, 1e-6)


def test_release_refill_and_memory_ratios_of_the_docstring():
    """The ratios recipe.py's docstring says the scaled recipe cannot keep, from the
    release's numbers (iterations x batch / K, and iterations / memory 1 / (1 - 0.999))."""
    import irconstyle.train.recipe as recipe
    doc = recipe.__doc__
    assert f"{703632 * 16 / 65760:.1f}" == "171.2" and "171.2" in doc
    assert f"{250000 * 16 / 65760:.1f}" == "60.8" and "60.8" in doc
    assert round(703632 * (1 - 0.999)) == 704 and "steps/704" in doc


def _scaled(task=None, data_kind="minibench", data_kwargs=None, **changes):
    data = DataSplits(train=DataConfig(kind=data_kind, kwargs=data_kwargs or {}), val=None)
    return TrainConfig(recipe="scaled", task=task, data=data, total_iters=300, batch_size=8,
                       **changes)


@pytest.mark.parametrize("task,frozen_at", [("denoise", None), ("deblur", 107), ("derain", 107),
                                             ("dehaze", 107)])
def test_scaled_recipe_follows_the_release_task_rule(task, frozen_at):
    """The release never freezes ConStyle in denoising (ConStyle_iter 999999) and freezes
    it after 250000 of 703632 iterations (300 steps: 106.59 -> 107) otherwise."""
    by_field = resolve_config(_scaled(task=task, data_kind="paired"))
    by_data = resolve_config(_scaled(data_kwargs={"task": task}))
    assert by_field.constyle_iters == by_data.constyle_iters == frozen_at
    assert by_field.constyle.queue_size == (480 if frozen_at is None else 168)


def test_task_comes_from_the_data_kind_or_is_asked_for():
    assert task_of(_scaled(data_kind="denoise")) == "denoise"
    assert task_of(_scaled(data_kind="dehaze")) == "dehaze"
    assert task_of(_scaled(data_kind="paired")) is None  # GoPro or Rain14000: cannot tell
    with pytest.raises(ConfigError, match="needs the task.*set task: denoise"):
        resolve_config(_scaled(data_kind="paired"))
    with pytest.raises(ConfigError, match="task: derain but the training data.*denoise"):
        task_of(_scaled(task="derain", data_kind="denoise"))
    # an explicit constyle_iters needs no task, and >= total_iters means never
    assert resolve_config(_scaled(data_kind="paired", constyle_iters=50)).constyle_iters == 50
    never = resolve_config(_scaled(data_kind="paired", constyle_iters=999999))
    assert never.constyle.queue_size == 480


def test_scaled_run_fills_the_queue_early_and_has_the_recipe_lr_shape(tmp_path, monkeypatch):
    steps = 60
    cfg = tiny_config(tmp_path, total_iters=steps, batch_size=4, val_every=30, ckpt_every=1000)
    trainer = Trainer(cfg, train_set=SynthPairs(n=16), val_set=SynthPairs(n=2, seed=7))
    cs = trainer.model.constyle
    initial = cs.queue.clone()
    written: dict[int, set[int]] = {}
    real = cs.dequeue_and_enqueue

    def tracking(emb):
        ptr, n = int(cs.queue_ptr), emb.shape[0]
        written[trainer.step + 1] = {(ptr + i) % cs.queue_size for i in range(n)}
        return real(emb)

    monkeypatch.setattr(cs, "dequeue_and_enqueue", tracking)
    result = trainer.fit(stop_at=steps // 2)
    columns = set().union(*written.values())
    assert columns == set(range(cs.queue_size)), "a queue column never held a real embedding"
    assert max(written) <= steps // 2
    assert not torch.isclose(cs.queue, initial).all(dim=0).any()
    assert set(result["metrics"]) == {"raw/psnr", "raw/psnr_y", "ema/psnr", "ema/psnr_y"}
    trainer.fit()
    # deblur freezes after round(60 * 250000 / 703632) = round(21.32) = 21 steps, and
    # nothing is enqueued after the freeze
    assert trainer.cfg.constyle_iters == 21 and max(written) == 21
    lrs = [float(r.split(",")[2]) for r in (tmp_path / "train.csv").read_text().splitlines()[1:]]
    constant = trainer.cfg.schedule.periods[0]
    assert constant == 21 and len(lrs) == steps  # round(60 * 243312 / 703632) = round(20.75)
    assert lrs == pytest.approx([cyclic_cosine_lr(t, base_lr=3e-4, periods=trainer.cfg.schedule.periods,
                                                  eta_mins=[3e-4, 1e-6]) for t in range(1, steps + 1)])
    assert all(lr == pytest.approx(3e-4) for lr in lrs[:constant])
    assert all(a > b for a, b in zip(lrs[constant:], lrs[constant + 1:]))
    assert lrs[-1] < 0.01 * 3e-4


# ---------------------------------------------------------------------------- config loading
def test_overrides_are_yaml_parsed_and_typed():
    cfg = load_config("smoke/constyle_nafnet", ["optim.lr=1e-4", "total_iters=100",
                                                 "model.kwargs.width=8", "data.val=null",
                                                 "schedule.periods=[40, 60]"])
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)  # "1e-4" is a str in YAML 1.1
    assert cfg.total_iters == 100 and cfg.model.kwargs["width"] == 8 and cfg.data.val is None
    assert cfg.schedule.periods == [40, 60]


def test_unknown_keys_name_the_key_and_the_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("optim:\n  lrr: 1.0e-4\n")
    with pytest.raises(ConfigError, match=r"bad\.yml.*unknown key 'optim\.lrr'.*did you mean 'optim\.lr'"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match=r"override 'ema\.decai=0\.9'.*unknown key 'ema\.decai'"):
        load_config("smoke/constyle_nafnet", ["ema.decai=0.9"])
    with pytest.raises(ConfigError, match="batch_size' must be an integer"):
        load_config("smoke/constyle_nafnet", ["batch_size=2.5"])
    with pytest.raises(ConfigError, match="must be one of"):
        load_config("smoke/constyle_nafnet", ["ema.mode=sometimes"])
    with pytest.raises(ConfigError, match="did you mean smoke/constyle_nafnet"):
        load_config("smoke/constyle_nafnett")


def test_yaml_round_trip():
    cfg = resolve_config(load_config("release/constyle_restormer_derain"))
    assert config_from_yaml_text(config_to_yaml(cfg)) == cfg


def test_periods_shorter_than_the_run_are_refused(tmp_path):
    cfg = dataclasses.replace(tiny_config(tmp_path, recipe="release", total_iters=10),
                              data=DataSplits(val=None))
    with pytest.raises(ConfigError, match="schedule.periods sum to 703632"):
        Trainer(dataclasses.replace(cfg, total_iters=10**6), train_set=SynthPairs())
    assert math.isclose(sum(resolve_config(TrainConfig()).schedule.periods), 703632)
