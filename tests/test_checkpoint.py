"""Checkpoints: atomic writes, ``weights_only=True`` loading, RNG states as tensors,
safetensors weights."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import irconstyle.train.checkpoint as ck
from irconstyle import build_model
from irconstyle.train import Trainer, load_weights, save_checkpoint, save_weights
from irconstyle.train.config import config_from_yaml_text
from irconstyle.checkpoints.weights import tensors_sha256
from test_trainer import TINY_NAFNET, SynthPairs, tiny_config


def test_trainer_checkpoint_loads_with_weights_only(tmp_path):
    tr = Trainer(tiny_config(tmp_path, total_iters=4, constyle_iters=2), train_set=SynthPairs())
    tr.fit()
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["step"] == 4 and ckpt["frozen"] is True
    assert {"model", "ema", "optimizer", "scheduler", "scaler", "rng", "best", "config"} <= set(ckpt)
    assert torch.equal(ckpt["model"]["constyle.queue"], tr.model.constyle.queue)
    assert torch.equal(ckpt["model"]["constyle.queue_ptr"], tr.model.constyle.queue_ptr)
    assert isinstance(ckpt["config"], str)
    assert config_from_yaml_text(ckpt["config"]) == tr.cfg
    assert all(isinstance(v, torch.Tensor) for v in ckpt["rng"].values() if not isinstance(v, list))


def test_rng_state_round_trip(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    np.random.normal()
    state = ck.rng_state()
    expected = (random.random(), random.gauss(0, 1), np.random.rand(3), np.random.normal(),
                torch.rand(3))
    path = save_checkpoint({"rng": state}, tmp_path / "r.pt")
    ck.set_rng_state(torch.load(path, weights_only=True)["rng"])
    got = (random.random(), random.gauss(0, 1), np.random.rand(3), np.random.normal(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and got[3] == expected[3]
    assert np.array_equal(got[2], expected[2]) and torch.equal(got[4], expected[4])


def test_atomic_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1, "w": torch.arange(4)}, path)

    def crash_mid_write(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial bytes")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(ck.torch, "save", crash_mid_write)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint({"step": 2, "w": torch.zeros(4)}, path)
    monkeypatch.undo()
    old = torch.load(path, weights_only=True)
    assert old["step"] == 1 and torch.equal(old["w"], torch.arange(4))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind


def test_interrupted_write_leaves_a_temporary_that_is_cleaned(tmp_path, monkeypatch):
    save_checkpoint({"step": 1}, tmp_path / "last.pt")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # a BaseException: the write is abandoned, not retried

    monkeypatch.setattr(ck.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"step": 2}, tmp_path / "last.pt")
    monkeypatch.undo()
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 1
    (tmp_path / ".last.pt.stale.tmp").write_bytes(b"x")  # as left by a SIGKILL
    ck.remove_stale_temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_safetensors_round_trip(tmp_path):
    torch.manual_seed(0)
    a = build_model("constyle_nafnet", **TINY_NAFNET, constyle_kwargs=dict(queue_size=8))
    torch.manual_seed(1)
    b = build_model("constyle_nafnet", **TINY_NAFNET, constyle_kwargs=dict(queue_size=8))
    assert not torch.equal(a.preprocess[0].weight, b.preprocess[0].weight)
    path = save_weights(a, tmp_path / "w.safetensors", metadata={"model": "constyle_nafnet"})
    load_weights(b, path)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta.pop("sha256") == tensors_sha256(a.state_dict())
    assert meta == {"model": "constyle_nafnet"}
    wrong = build_model("constyle_nafnet", **dict(TINY_NAFNET, width=16))
    with pytest.raises(RuntimeError):
        load_weights(wrong, path)


@pytest.mark.parametrize("offset", [-1, -100, -1000])
def test_safetensors_export_detects_a_flipped_bit(tmp_path, offset):
    """Safetensors carries no checksum; our exports record a SHA-256 of the tensors that
    both readers verify, so a damaged copy is refused instead of loading altered weights."""
    from irconstyle.checkpoints.weights import WeightsError, read_weights

    model = build_model("constyle_nafnet", **TINY_NAFNET, constyle_train=False)
    path = save_weights(model, tmp_path / "w.safetensors", metadata={"model": "constyle_nafnet"})
    assert read_weights(path).model_name == "constyle_nafnet"
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="SHA-256"):
        read_weights(path)
    with pytest.raises(ValueError, match="SHA-256"):
        load_weights(model, path)
