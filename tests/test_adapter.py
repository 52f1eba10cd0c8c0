"""ConStyle attached to a U-Net that is not part of the package (written only here),
by naming its encoder stages and bottleneck."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from irconstyle import restoration_loss
from irconstyle.nets.adapter import ConStyleAdapter, attach_constyle
from irconstyle.nets.unet import TrainOutput


def conv_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU())


class TinyUNet(nn.Module):
    """A textbook U-Net a researcher might bring: strided-conv downsampling,
    transposed-conv upsampling, concatenated skips, a global residual."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.inc = conv_relu(3, c)
        self.down1 = conv_relu(c, 2 * c, 2)        # H/2
        self.down2 = conv_relu(2 * c, 4 * c, 2)    # H/4
        self.down3 = conv_relu(4 * c, 4 * c, 2)    # H/8
        self.mid = nn.Sequential(conv_relu(4 * c, 4 * c), conv_relu(4 * c, 4 * c))
        self.up3 = nn.ConvTranspose2d(4 * c, 4 * c, 2, stride=2)
        self.dec3 = conv_relu(8 * c, 2 * c)
        self.up2 = nn.ConvTranspose2d(2 * c, 2 * c, 2, stride=2)
        self.dec2 = conv_relu(4 * c, c)
        self.up1 = nn.ConvTranspose2d(c, c, 2, stride=2)
        self.out = nn.Conv2d(2 * c, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        e0 = self.inc(x)
        e1 = self.down1(e0)
        e2 = self.down2(e1)
        m = self.mid(self.down3(e2))
        y = self.dec3(torch.cat([self.up3(m), e2], 1))
        y = self.dec2(torch.cat([self.up2(y), e1], 1))
        return self.out(torch.cat([self.up1(y), e0], 1)) + x


STAGES = {"down1": 16, "down2": 32, "down3": 32}  # H/2, H/4, H/8: ConStyle's resolutions
RESIZED = {"inc": 8, "down1": 16, "down2": 32}  # H, H/2, H/4: features are resized


def make(stages=STAGES, **kw) -> tuple[TinyUNet, ConStyleAdapter]:
    torch.manual_seed(0)
    host = TinyUNet()
    adapter = attach_constyle(host, encoder_stages=stages, bottleneck=("mid", 32),
                              constyle_kwargs=dict(queue_size=16), **kw)
    return host, adapter


def wake(adapter: ConStyleAdapter) -> None:
    """Give the zero-initialised fusion convs weights, as training would."""
    torch.manual_seed(1)
    for m in [adapter.injection.fusion, *adapter.merges]:
        nn.init.normal_(m.weight, std=0.1)


@pytest.mark.parametrize("stages", [STAGES, RESIZED], ids=["same_resolution", "resized"])
def test_attachment_leaves_host_output_unchanged(stages) -> None:
    torch.manual_seed(0)
    reference = TinyUNet().eval()
    host, adapter = make(stages)
    adapter.eval()
    x = torch.rand(2, 3, 24, 32)
    with torch.no_grad():
        assert torch.equal(adapter(x), reference(x))
        assert torch.equal(host(x), reference(x))  # host alone: hooks do nothing


def test_code_and_features_change_the_output_once_fusion_is_trained() -> None:
    _, adapter = make()
    wake(adapter)
    adapter.eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        before = adapter(x)
        adapter.constyle.encoder_q.mlp2[0].bias.add_(1.0)  # changes the code only
        after_code = adapter(x)
        adapter.constyle.encoder_q.stage1[0][0].weight.mul_(2.0)  # changes fea1..fea3
        after_features = adapter(x)
    assert not torch.allclose(before, after_code)
    assert not torch.allclose(after_code, after_features)


def test_gradients_reach_constyle_encoder() -> None:
    _, adapter = make()
    adapter.train()
    lq, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    # At attachment only the fusion convs get a pixel-loss gradient (they start at zero).
    out = adapter(lq, gt)
    restoration_loss(out.image, gt, out.constyle, use_constyle=False).total.backward()
    assert adapter.injection.fusion.weight.grad.abs().sum() > 0
    assert all(m.weight.grad.abs().sum() > 0 for m in adapter.merges)
    adapter.zero_grad(set_to_none=True)
    wake(adapter)
    out = adapter(lq, gt)
    restoration_loss(out.image, gt, out.constyle, use_constyle=False).total.backward()
    enc = adapter.constyle.encoder_q
    assert enc.stage1[0][0].weight.grad.abs().sum() > 0  # through the feature maps
    assert enc.mlp2[0].weight.grad.abs().sum() > 0  # through the code
    assert all(p.grad is None for p in adapter.constyle.encoder_k.parameters())


def test_training_steps_lower_the_losses() -> None:
    _, adapter = make()
    adapter.train()
    torch.manual_seed(2)
    gt = torch.rand(4, 3, 16, 16)
    lq = (gt + 0.2 * torch.randn_like(gt)).clamp(0, 1)
    opt = torch.optim.AdamW([p for p in adapter.parameters() if p.requires_grad], lr=1e-3)
    history = []
    for _ in range(12):
        out = adapter(lq, gt)
        assert isinstance(out, TrainOutput) and out.constyle.logits.shape == (4, 17)
        terms = restoration_loss(out.image, gt, out.constyle)
        opt.zero_grad(set_to_none=True)
        terms.total.backward()
        opt.step()
        history.append((terms.pixel.item(), terms.total.item()))
    # L1 falls steadily; the total (with InfoNCE against a queue that starts as noise)
    # first rises as the queue fills with real codes, then falls below its start.
    assert history[-1][0] < 0.95 * history[0][0]
    assert history[-1][1] < history[0][1]
    assert int(adapter.constyle.queue_ptr) == (12 * 4) % 16


@pytest.mark.parametrize("size", [(16, 16), (17, 23), (5, 7)])
def test_inference_any_size(size) -> None:
    torch.manual_seed(0)
    adapter = attach_constyle(TinyUNet(), encoder_stages=STAGES, bottleneck=("mid", 32),
                              constyle_train=False)
    assert not hasattr(adapter.constyle, "encoder_k")
    wake(adapter)
    adapter.eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        y = adapter(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert adapter.size_factor == 8


def test_state_dict_round_trip_and_copies_are_independent() -> None:
    _, adapter = make()
    wake(adapter)
    adapter.eval()
    x = torch.rand(1, 3, 16, 16)
    _, fresh = make()
    fresh.load_state_dict(adapter.state_dict())
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(x), adapter(x))
        twin = copy.deepcopy(adapter)  # e.g. an EMA copy: its hooks must use its own weights
        nn.init.zeros_(twin.injection.fusion.weight)
        for m in twin.merges:
            nn.init.zeros_(m.weight)
        assert not torch.equal(twin(x), adapter(x))
        assert torch.equal(twin(x), twin.host(x))


def test_detach_returns_the_plain_host() -> None:
    torch.manual_seed(0)
    reference = TinyUNet().eval()
    host, adapter = make()
    wake(adapter)
    x = torch.rand(1, 3, 16, 16)
    assert adapter.detach() is host
    with torch.no_grad():
        assert torch.equal(host.eval()(x), reference(x))


def test_wrong_descriptions_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="no submodule 'down9'"):
        attach_constyle(TinyUNet(), encoder_stages={"down9": 16}, bottleneck=("mid", 32))
    with pytest.raises(ValueError, match="1 to 3 stages"):
        attach_constyle(TinyUNet(), encoder_stages={"inc": 8, **STAGES}, bottleneck=("mid", 32))
    adapter = attach_constyle(TinyUNet(), encoder_stages={"down1": 99}, bottleneck=("mid", 32),
                              constyle_train=False).eval()
    with pytest.raises(ValueError, match="'down1' returns 16 channels"):
        adapter(torch.rand(1, 3, 16, 16))
    # a stage returning a tuple cannot take the fusion
    host = TinyUNet()
    host.down1.register_forward_hook(lambda m, a, out: (out, out))
    adapter = attach_constyle(host, encoder_stages={"down1": 16}, bottleneck=("mid", 32),
                              constyle_train=False).eval()
    with pytest.raises(TypeError, match="must return one NCHW tensor"):
        adapter(torch.rand(1, 3, 16, 16))
