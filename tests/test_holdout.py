"""The validation split held out of a training folder (issue 13.1): both sides apply the
same rule, groups stay together, and the split is a pure function of the file names."""
from __future__ import annotations

import pytest
import torch

from irconstyle.data import build_dataset, write_image
from irconstyle.data.holdout import HeldOut
from irconstyle.train.config import DataConfig, HoldOutConfig
from irconstyle.train.trainer import _dataset


def _pairs(root, names):
    for sub in ("input", "target"):
        (root / sub).mkdir(parents=True)
        for n in names:
            write_image(root / sub / f"{n}.png", torch.rand(3, 8, 8))
    return dict(lq_dir=str(root / "input"), gt_dir=str(root / "target"))


# Ten backgrounds "0".."9" (sorted as strings) with three rain variants each.
NAMES = [f"{i}_{k}" for i in range(10) for k in (1, 2, 3)]


def test_every_nth_group_is_held_out_on_both_sides(tmp_path):
    folders = _pairs(tmp_path, NAMES)
    rule = dict(every=4, group=r"(.+)_\d+")
    train = HeldOut(build_dataset("paired", split="train", patch_size=4, **folders), **rule)
    val = HeldOut(build_dataset("paired", split="val", **folders), **rule)
    # sorted keys 0..9, every 4th from the first: 0, 4, 8 (by hand), all variants of each
    val_names = {val[i]["name"] for i in range(len(val))}
    assert val_names == {f"{i}_{k}" for i in (0, 4, 8) for k in (1, 2, 3)}
    train_names = {train.load(i)[2] for i in range(train.num_sources())}
    assert train_names == set(NAMES) - val_names and len(train) == 21
    assert {train[i]["name"] for i in range(len(train))} <= train_names  # training crops too
    assert train[3]["lq"].shape == (3, 4, 4)


def test_default_group_is_the_whole_name_and_denoise_folders_work(tmp_path):
    names = [f"DIV2K-{i:04d}_s{k:03d}" for i in range(3) for k in range(2)]
    for n in names:
        write_image(tmp_path / f"{n}.png", torch.rand(3, 8, 8))
    per_file = HeldOut(build_dataset("denoise", split="val", gt_dir=str(tmp_path), sigma=15), every=5)
    assert [per_file[i]["name"] for i in range(len(per_file))] == [names[0], names[5]]
    per_photo = HeldOut(build_dataset("denoise", split="val", gt_dir=str(tmp_path), sigma=15),
                        every=2, group=r"(.+?)(?:_s\d+)?")
    assert [per_photo[i]["name"] for i in range(len(per_photo))] == [
        "DIV2K-0000_s000", "DIV2K-0000_s001", "DIV2K-0002_s000", "DIV2K-0002_s001"]


def test_trainer_datasets_apply_the_config_rule(tmp_path):
    folders = _pairs(tmp_path, NAMES)
    rule = HoldOutConfig(every=3, group=r"(.+)_\d+")
    train = _dataset(DataConfig(kind="paired", split="train", kwargs=dict(folders, patch_size=4),
                                hold_out=rule), seed=1)
    val = _dataset(DataConfig(kind="paired", split="val", kwargs=folders, hold_out=rule))
    held = {val[i]["name"] for i in range(len(val))}
    assert held == {f"{i}_{k}" for i in (0, 3, 6, 9) for k in (1, 2, 3)}
    assert not held & {train.load(i)[2] for i in range(train.num_sources())}


def test_bad_hold_out_rules_are_clear_errors(tmp_path):
    folders = _pairs(tmp_path, NAMES)
    with pytest.raises(ValueError, match="test split has no use"):
        HeldOut(build_dataset("paired", split="test", **folders), every=4)
    with pytest.raises(ValueError, match="every must be >= 2"):
        HeldOut(build_dataset("paired", split="val", **folders), every=1)
    with pytest.raises(ValueError, match=r"does not match the source name '0_1'"):
        HeldOut(build_dataset("paired", split="val", **folders), every=4, group=r"(\d+)-\d+")
    with pytest.raises(TypeError, match="needs a folder dataset"):
        HeldOut(build_dataset("minibench", split="val", task="denoise"), every=4)
