"""The loader for the authors' released checkpoints: state dicts laid out in the
release's names (the golden key lists) load into every backbone, and every kind of
wrong file is refused with the keys or the file named."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from irconstyle import build_model
from irconstyle.checkpoints.release import (RELEASE_KEY_RULES, ReleaseCheckpointError, load_release_checkpoint,
                                rename_release_key)

MODELS = ["constyle_nafnet", "nafnet", "constyle_restormer", "restormer"]


def inference_keys(golden_dir: Path, name: str) -> list[str]:
    return json.loads((golden_dir / f"{name}_keys.json").read_text())["inference_keys"]


def assert_loaded(model: torch.nn.Module, name: str, sd: dict[str, torch.Tensor]) -> None:
    ours = model.state_dict()
    n = 0
    for key, value in sd.items():
        new = rename_release_key(name, key.removeprefix("module."))
        if new in ours:
            assert torch.equal(ours[new], value.to(ours[new].dtype)), (key, new)
            n += 1
    assert n == len(ours)


@pytest.mark.parametrize("name", MODELS)
def test_every_backbone_has_rules(name: str) -> None:
    assert name in RELEASE_KEY_RULES


@pytest.mark.parametrize("param_key", ["params", "params_ema"])
@pytest.mark.parametrize("name", MODELS)
def test_release_layout_loads(release_sd, name: str, param_key: str) -> None:
    sd = release_sd(name)
    kw = dict(constyle_train=False) if name.startswith("constyle_") else {}
    model = build_model(name, **kw)  # an inference build drops encoder_k and the queue
    load_release_checkpoint(model, name, {param_key: sd}, param_key=param_key)
    assert_loaded(model, name, sd)


@pytest.mark.parametrize("name", ["constyle_nafnet", "constyle_restormer"])
def test_training_build_takes_the_momentum_encoder_and_queue(release_sd, name: str) -> None:
    sd = release_sd(name)
    model = build_model(name)
    load_release_checkpoint(model, name, {"params": sd})
    assert_loaded(model, name, sd)
    assert torch.equal(model.constyle.queue, sd["ConStyle.queue"])


def test_ema_is_preferred_and_param_key_is_honoured(golden_dir, release_sd) -> None:
    name = "constyle_restormer"
    sd = {k: release_sd(name)[k] for k in inference_keys(golden_dir, name)}
    doubled = {k: v * 2 if v.is_floating_point() else v for k, v in sd.items()}
    model = build_model(name, constyle_train=False)
    load_release_checkpoint(model, name, {"params": sd, "params_ema": doubled})
    assert_loaded(model, name, doubled)
    load_release_checkpoint(model, name, {"params": sd, "params_ema": doubled}, param_key="params")
    assert_loaded(model, name, sd)
    # DataParallel / DDP checkpoints
    load_release_checkpoint(model, name, {"params": {f"module.{k}": v for k, v in doubled.items()}})
    assert_loaded(model, name, doubled)


def test_release_file_on_disk_loads(golden_dir, release_sd, tmp_path) -> None:
    name = "constyle_restormer"
    sd = {k: release_sd(name)[k] for k in inference_keys(golden_dir, name)}
    path = tmp_path / "net_g_latest.pth"
    torch.save({"params_ema": sd}, path)
    model = load_release_checkpoint(build_model(name, constyle_train=False), name, path)
    assert_loaded(model, name, sd)


class TestRefusals:
    name = "constyle_restormer"

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls):
        return build_model(cls.name, constyle_train=False)

    @pytest.fixture()
    def sd(self, golden_dir, release_sd):
        return {k: release_sd(self.name)[k] for k in inference_keys(golden_dir, self.name)}

    def refuse(self, model, source, match: str, **kw) -> str:
        with pytest.raises(ReleaseCheckpointError, match=match) as info:
            load_release_checkpoint(model, self.name, source, **kw)
        return str(info.value)

    def test_missing_key(self, model, sd) -> None:
        del sd["Process_Module_l1.0.attn.temperature"]
        msg = self.refuse(model, {"params": sd}, "missing")
        assert "encoders.0.0.attn.temperature" in msg and "unexpected" not in msg

    def test_extra_key(self, model, sd) -> None:
        sd["Process_Module_l1.9.attn.temperature"] = torch.ones(1, 1, 1)
        msg = self.refuse(model, {"params": sd}, "unexpected")
        assert "encoders.0.9.attn.temperature [Process_Module_l1.9.attn.temperature]" in msg
        assert "missing" not in msg

    def test_wrong_shape(self, model, sd) -> None:
        sd["Finetune_Module.4.weight"] = torch.zeros(3, 96, 1, 1)
        msg = self.refuse(model, {"params": sd}, "shape of finetune.4.weight")
        assert "(3, 96, 1, 1)" in msg and "(3, 96, 3, 3)" in msg

    def test_inference_file_into_training_build(self, sd) -> None:
        msg = self.refuse(build_model(self.name, constyle_kwargs=dict(queue_size=8)),
                          {"params": sd}, "missing")
        assert "missing (25)" in msg and "constyle.encoder_k." in msg  # 23 encoder_k + queue + ptr

    def test_other_backbone_checkpoint(self, model, release_sd) -> None:
        msg = self.refuse(model, {"params": release_sd("restormer")}, "missing")
        assert "unexpected (494)" in msg and "[decoder_level1.0.attn.qkv.weight]" in msg

    def test_partial_file_on_disk(self, model, sd, tmp_path) -> None:
        path = tmp_path / "partial.pth"
        torch.save({"params": dict(list(sd.items())[:10])}, path)
        msg = self.refuse(model, path, "missing")
        assert str(path) in msg

    def test_non_dict_file(self, model, tmp_path) -> None:
        path = tmp_path / "list.pth"
        torch.save([torch.zeros(1)], path)
        assert str(path) in self.refuse(model, path, "expected a dict")

    def test_dict_without_params(self, model, tmp_path) -> None:
        path = tmp_path / "opt.pth"
        torch.save({"iter": 5, "optimizers": []}, path)
        assert str(path) in self.refuse(model, path, "no 'params_ema' or 'params' entry")

    def test_garbage_file(self, model, tmp_path) -> None:
        path = tmp_path / "garbage.pth"
        path.write_bytes(b"this is not a checkpoint")
        assert str(path) in self.refuse(model, path, "cannot read")

    def test_missing_file(self, model, tmp_path) -> None:
        path = tmp_path / "absent.pth"
        assert str(path) in self.refuse(model, path, "cannot read")


def test_unknown_model_has_no_rules() -> None:
    with pytest.raises(KeyError, match="no release key mapping"):
        rename_release_key("no_such_model", "x.weight")
