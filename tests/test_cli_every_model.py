"""Every command-line verb that takes a model, over every zoo name (issue 24).

The parametrisation is ``irconstyle.model_names()`` itself, so a model added to the zoo
is run through ``models``, ``restore``, ``evaluate`` and ``train`` here and fails until all
four work for it (its tiny builder arguments come from ``TINY`` in tests/test_models.py,
which fails for a name without an entry).  The verbs run in-process
(``irconstyle.cli.main``) at tiny widths passed as ``--model-arg`` / ``model.kwargs``, so
the whole file takes about a minute on one core.  The ``models`` verb with no name runs
the release-size zoo, as a newcomer types it, with ``--no-time`` and a small input.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from irconstyle import build_model, model_names
from irconstyle.cli import main
from irconstyle.method.constyle import ConStyle
from irconstyle.nets.padding import pad_to_multiple
from irconstyle.nets.model_table import count_macs, count_parameters
from test_models import TINY

NAMES = model_names()
ABLATED = [n for n in NAMES if n.endswith("_ablated")]


def model_args(name: str) -> list[str]:
    """``--model-arg KEY=VALUE`` for the tiny build of ``name`` (VALUE as YAML)."""
    return [w for k, v in TINY[name].items() for w in ("--model-arg", f"{k}={json.dumps(v)}")]


def run(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    """``irconstyle ARGV`` in-process: (exit status, stdout, stderr)."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small photo (not noise: scikit-image's cat, downsampled) written as PNG."""
    from skimage import data

    path = tmp_path_factory.mktemp("photo") / "cat photo.png"
    Image.fromarray(data.chelsea()[::8, ::8]).save(path)  # 38 x 57: odd sizes, padded inside
    return path


def test_every_name_has_tiny_arguments() -> None:
    """The tiny builds below come from TINY: a new model needs an entry (tests/test_models.py)."""
    assert not sorted(set(NAMES) - set(TINY))
    assert len(ABLATED) == 4


@pytest.mark.parametrize("name", NAMES)
def test_models_row_for_every_model(name: str, capsys: pytest.CaptureFixture) -> None:
    """``irconstyle models NAME --json`` with timing: the row's parameter count is the tiny
    inference build's, and its MAC count and time are positive numbers."""
    rc, out, err = run(capsys, "models", name, "--input-size", "16", "--json", *model_args(name))
    assert rc == 0, err
    [row] = json.loads(out)
    torch.manual_seed(0)
    params, params_train = count_parameters(build_model(name, **TINY[name]))
    assert row["name"] == name
    assert (row["params"], row["params_train"]) == (params, params_train)
    assert isinstance(row["macs"], int) and row["macs"] > 0
    assert row["cpu_ms"] > 0


def test_models_without_a_name_lists_every_model(capsys: pytest.CaptureFixture) -> None:
    """``irconstyle models`` (all release-size models; MACs only, small input): one row per
    name with numeric parameters and MACs; the ablated rows have the encoder's parameters
    less ConStyle's and no more MACs than their ConStyle network."""
    rc, out, err = run(capsys, "models", "--no-time", "--input-size", "16")
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split() == ["model", "ConStyle", "pad", "params", "GMACs"]
    rows = {}
    for line in lines[1:]:
        m = re.fullmatch(r"(\S+)\s+(yes|no)\s+(\d+)\s+([\d,]+)\s+(\d+\.\d\d)", line)
        assert m, line
        rows[m[1]] = (m[2], int(m[4].replace(",", "")), float(m[5]))
    assert sorted(rows) == NAMES
    assert all(params > 0 and macs > 0 for _, params, macs in rows.values())
    for name in ABLATED:
        full = name.removesuffix("_ablated")
        assert rows[name][0] == "no" and rows[full][0] == "yes"
        # the constants (352 parameters) stand in for ConStyle's query encoder (1,190,832)
        assert rows[full][1] - rows[name][1] == 1_190_832 - 352
        assert rows[name][2] <= rows[full][2]
    assert "learned constants" in err


def test_models_refuses_model_args_it_cannot_apply(capsys: pytest.CaptureFixture) -> None:
    """Without names (the families' arguments differ) or with one a builder refuses: one
    error line that names the problem and the model."""
    rc, _, err = run(capsys, "models", "--model-arg", "width=8")
    assert rc == 1 and "--model-arg needs model names" in err
    rc, _, err = run(capsys, "models", "plain", "nafnet", "--model-arg", "depth=3", "--no-time")
    assert rc == 1 and err.startswith("irconstyle: error: model 'plain'") and "depth" in err


@pytest.mark.parametrize("name", ABLATED)
def test_ablated_macs_are_the_network_without_the_encoder(name: str) -> None:
    """What the ablated control computes: the ConStyle network's MACs less its query
    encoder's (run at the padded input), so the injection's convolutions on the broadcast
    constants and the code's Linear are counted as in the ConStyle network; counting
    leaves requires_grad as it was."""
    x = (1, 3, 20, 28)
    torch.manual_seed(0)
    ablated = build_model(name, **TINY[name])
    full = build_model(name.removesuffix("_ablated"), **TINY[name], constyle_train=False)
    padded = tuple(pad_to_multiple(torch.zeros(x), full.size_factor).shape)
    encoder = count_macs(ConStyle(train=False), padded)
    frozen = next(ablated.parameters()).requires_grad_(False)  # a frozen one stays frozen
    macs = count_macs(ablated, x)
    assert macs == count_macs(full, x) - encoder
    assert macs > 0
    assert all(p.requires_grad == (p is not frozen) for p in ablated.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_restore_with_every_model(name: str, photo: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    rc, out, err = run(capsys, "restore", photo, "--out", tmp_path / "out", "--model", name,
                       *model_args(name))
    assert rc == 0, err
    written = tmp_path / "out" / photo.name
    assert f"-> {written}" in out
    restored = np.asarray(Image.open(written))
    assert restored.shape == np.asarray(Image.open(photo)).shape


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_every_model(name: str, capsys: pytest.CaptureFixture) -> None:
    rc, out, err = run(capsys, "evaluate", "--benchmark", "minibench_denoise", "--model", name,
                       *model_args(name))
    assert rc == 0, err
    m = re.search(r"untrained \(no weights\): PSNR (\d+\.\d+) SSIM (\d\.\d+) \(RGB\)", out)
    assert m, out
    assert 0 < float(m[1]) < 100 and 0 <= float(m[2]) <= 1
    assert "over 2 images" in out


@pytest.mark.parametrize("name", NAMES)
def test_train_two_steps_then_restore_every_model(name: str, photo: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    """Two training steps of the tiny model (the scaled recipe needs two; the smoke preset
    with model.name and model.kwargs overridden), then ``restore`` from its checkpoint
    alone: the file names its model and its builder arguments."""
    run_dir = tmp_path / "run"
    kwargs = json.dumps(TINY[name])
    rc, out, err = run(capsys, "train", "smoke/nafnet", f"model.name={name}",
                       f"model.kwargs={kwargs}", "total_iters=2", "batch_size=2",
                       "num_workers=0", "val_every=2", "ckpt_every=2", f"out_dir={run_dir}")
    assert rc == 0, err[-2000:]
    assert (run_dir / "last.pt").is_file()
    result = json.loads(out[out.index("\n{") + 1:])  # the JSON after the validation line
    assert result["step"] == 2 and Path(result["last"]) == run_dir / "last.pt"
    assert all(np.isfinite(v) for v in result["metrics"].values()) and result["metrics"]
    rc, _, err = run(capsys, "restore", photo, "--out", tmp_path / "out",
                     "--weights", run_dir / "last.pt")
    assert rc == 0, err
    assert f"weights: {run_dir / 'last.pt'} [ema]" in err
    assert (tmp_path / "out" / photo.name).is_file()
