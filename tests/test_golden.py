"""Our networks equal the authors' release: weights set by the golden fill rule in the
release's key names go through our checkpoint loader, and our outputs reproduce the
outputs the release's own code produced (tests/fixtures/golden/README.md).

MAXIM's golden checks live in tests/test_golden_maxim.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from golden import fill_tensor, golden_state_dict, rel_err
from irconstyle import ConStyle, build_model, content_loss, infonce_loss, style_loss
from irconstyle.checkpoints.release import load_release_checkpoint

CONSTYLE_MODELS = ["constyle_nafnet", "constyle_restormer"]
ORIGINAL_MODELS = ["nafnet", "restormer"]


@pytest.fixture(scope="module")
def summary(golden_dir: Path) -> dict:
    return json.loads((golden_dir / "summary.json").read_text())


def released(golden_dir: Path, name: str, **kw) -> torch.nn.Module:
    model = build_model(name, **kw)
    return load_release_checkpoint(model, name, {"params": golden_state_dict(golden_dir, name)}).eval()


@pytest.mark.parametrize("constyle_train", [True, False], ids=["train_build", "inference_build"])
@pytest.mark.parametrize("name", CONSTYLE_MODELS)
def test_constyle_model_reproduces_release_output(golden_dir, golden, name, constyle_train) -> None:
    model = released(golden_dir, name, constyle_train=constyle_train)
    x = torch.from_numpy(golden["input"])
    with torch.no_grad():
        out = model(x)
        code = model.constyle.encode(x).code
    assert rel_err(out, golden[f"{name}_output"]) < 1e-5
    assert rel_err(code, golden[f"{name}_code"]) < 1e-5


@pytest.mark.parametrize("name", ORIGINAL_MODELS)
def test_original_model_reproduces_release_output(golden_dir, golden, name) -> None:
    model = released(golden_dir, name)
    with torch.no_grad():
        out = model(torch.from_numpy(golden["input"]))
    assert rel_err(out, golden[f"{name}_output"]) < 1e-5


def test_constyle_training_forward_reproduces_release(golden, summary) -> None:
    """Two consecutive training forwards (K=64, B=8): logits, queue and the three
    ConStyle losses equal the release's."""
    cs = ConStyle(queue_size=64)
    cs.load_state_dict({k: fill_tensor(k, list(v.shape)) for k, v in cs.state_dict().items()})
    cs.train()
    for step in ("step1", "step2"):
        o = cs(torch.from_numpy(golden[f"{step}_lq"]), torch.from_numpy(golden[f"{step}_gt"]))
        assert rel_err(o.logits, golden[f"{step}_logits"]) < 1e-5, step
        assert rel_err(cs.queue, golden[f"{step}_queue_after"]) < 1e-5, step
        ref = summary["constyle_steps"][step]
        assert int(cs.queue_ptr) == ref["queue_ptr_after"]
        torch.testing.assert_close(infonce_loss(o.logits, o.labels).item(), ref["infonce"],
                                   rtol=1e-5, atol=0)
        torch.testing.assert_close(content_loss(o.code, o.key).item(), ref["content"],
                                   rtol=1e-5, atol=0)
        torch.testing.assert_close(style_loss(o.out1, o.code, o.negatives).item(), ref["style"],
                                   rtol=1e-5, atol=0)


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, inference, train", [
    ("constyle_nafnet", 12_739_872, 13_930_704),
    ("constyle_restormer", 15_574_960, 16_765_792),
])
def test_constyle_parameter_counts(name: str, inference: int, train: int) -> None:
    assert count(build_model(name, constyle_train=False)) == inference
    assert count(build_model(name)) == train


@pytest.mark.parametrize("name, params", [("nafnet", 87_404_483), ("restormer", 26_126_644)])
def test_original_parameter_counts(name: str, params: int) -> None:
    assert count(build_model(name)) == params


def test_constyle_restormer_submodule_counts() -> None:
    """The release's submodule breakdown (counted on its archs/ConStyle_Restormer_arch.py)."""
    m = build_model("constyle_restormer", constyle_train=False)
    assert [count(e) for e in m.encoders] == [125_116, 707_232, 1_558_572]
    assert count(m.bottleneck) == 3_650_848
    assert [count(d) for d in m.decoders] == [2_738_112, 1_558_560, 471_484]
    assert count(m.finetune) == 474_076
    assert [count(a) for a in m.injection.affine] == [1_584, 3_120, 6_192]
