"""Our networks equal the release's at sizes other than 64x64 (tests/fixtures/golden/README.md,
"Other sizes"): 96x160 for the NAFNet and Restormer families, 128x192 for MAXIM (whose grid
and block axes differ there), and the original NAFNet at 37x53, where it pads inside its
forward.  Weights follow the golden fill rule and go through the release loader.

The original NAFNet pads with zeros (right and bottom) to a multiple of 16, like the
release's ``check_image_size``; its channel attention pools over the padded map, so the
padding changes the whole output, not only the border.  Measured on this machine (1 thread):
every model agrees with the release to 1.7e-6 relative or better (worst: ConStyle-MAXIM,
1.6e-6; nafnet_odd 1.2e-6); ``nafnet_odd`` with ``pad_mode="reflect"`` is 0.59 away.  Both
MAXIM builds (with and without the release's dead modules) give the same numbers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from golden import rel_err
from irconstyle import build_model
from irconstyle.nets.nafnet import NAFNet
from irconstyle.checkpoints.release import load_release_checkpoint

# (golden name, model name, constructor arguments)
CASES = [
    ("constyle_nafnet", "constyle_nafnet", {}),
    ("constyle_nafnet", "constyle_nafnet", {"constyle_train": False}),
    ("nafnet", "nafnet", {}),
    ("constyle_restormer", "constyle_restormer", {}),
    ("restormer", "restormer", {}),
    # The default MAXIM builds leave out the modules the release builds but never calls;
    # the loader drops their keys (tests/test_golden_maxim.py checks both builds at 64x64).
    ("constyle_maxim", "constyle_maxim", {"constyle_train": False}),
    ("maxim", "maxim", {}),
    ("nafnet_odd", "nafnet", {}),
]


@pytest.fixture(scope="module")
def sizes(golden_dir: Path) -> dict[str, np.ndarray]:
    with np.load(golden_dir / "golden_sizes.npz") as z:
        return {k: z[k] for k in z.files}


def released(release_sd, name: str, **kw) -> torch.nn.Module:
    model = build_model(name, **kw)
    return load_release_checkpoint(model, name, {"params": release_sd(name)}).eval()


def test_every_golden_size_is_checked(sizes) -> None:
    """A model added to golden_sizes.npz cannot be left out here."""
    assert {k.rsplit("_", 1)[0] for k in sizes} == {golden for golden, _, _ in CASES}


@pytest.mark.parametrize("golden_name, name, kw", CASES,
                         ids=[f"{g}-{'inference' if kw else 'default'}" for g, _, kw in CASES])
def test_release_output_at_other_sizes(release_sd, sizes, golden_name, name, kw) -> None:
    x = torch.from_numpy(sizes[f"{golden_name}_input"])
    ref = sizes[f"{golden_name}_output"]
    model = released(release_sd, name, **kw)
    with torch.no_grad():
        out = model(x)
    assert out.shape == x.shape
    assert rel_err(out, ref) < 1e-5


def test_nafnet_pad_mode_is_what_the_release_does(release_sd, sizes) -> None:
    """The release's padding, shown two ways: the default build matches the golden output
    at 37x53 and ``pad_mode="reflect"`` does not (the switch is real)."""
    x = torch.from_numpy(sizes["nafnet_odd_input"])
    ref = sizes["nafnet_odd_output"]
    assert released(release_sd, "nafnet").pad_mode == "zeros"
    reflect = released(release_sd, "nafnet", pad_mode="reflect")
    with torch.no_grad():
        assert rel_err(reflect(x), ref) > 1e-2


@pytest.mark.parametrize("mode, torch_mode", [("zeros", "constant"), ("reflect", "reflect")])
def test_nafnet_pads_inside_then_crops(mode: str, torch_mode: str) -> None:
    """At 37x53 the model equals itself run on the input padded by ``F.pad`` to 48x64 (where
    it pads nothing), cropped back."""
    torch.manual_seed(0)
    model = NAFNet(width=8, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 1), dec_blk_nums=(1, 1, 1, 1),
                   pad_mode=mode).eval()
    with torch.no_grad():  # NAFNet starts as the identity (beta = gamma = 0): move it away
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.rand(2, 3, 37, 53)
    padded = F.pad(x, (0, 64 - 53, 0, 48 - 37), mode=torch_mode)
    with torch.no_grad():
        out = model(x)
        ref = model(padded)[..., :37, :53]
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_nafnet_rejects_an_unknown_pad_mode() -> None:
    with pytest.raises(ValueError, match="pad_mode"):
        NAFNet(width=8, enc_blk_nums=(1,), dec_blk_nums=(1,), middle_blk_num=1, pad_mode="circular")
