"""The general restoration network: Preprocess / Process / Finetune, and the one
mechanism that injects ConStyle into it.

Data flow (ConStyle variant, ``d`` = base width, verified against the release):

    inp -> preprocess (d) -> enc0 (d)  -> down0 ++ AT0(fea1) -> (2d)
        -> enc1 (2d) -> down1 ++ AT1(fea2) -> (3d) -> enc2 (3d) -> down2 ++ AT2(fea3) -> (4d)
        -> bottleneck (4d) -> fusion(cat[x, x * mlp(code)]) -> (3d)
        -> up2 ++ skip2 -> 1x1 -> dec (4d) -> up1 ++ skip1 -> 1x1 -> dec (3d)
        -> up0 ++ skip0 -> 1x1 -> dec (2d) -> finetune -> + inp

Everything a backbone changes is a constructor argument of :class:`RestorationUNet`:
the block type (through the modules built by the backbone's builder), the
affine-transform activation, the Finetune head, multi-scale inputs
(``scale_inputs``), skip fusion such as MAXIM's cross-gating (``skip_fusion``) and
the merges (concatenate + 1x1, or concatenate alone).

Three networks come out of the template for every backbone (d = base width):

* the **ConStyle network** (``constyle_*``): as drawn above;
* the **ablated control** (``constyle_*_ablated``, :func:`ablate_constyle`): the same
  network, every module and parameter name of the backbone and the injection kept, with
  ConStyle's encoder replaced by :class:`ConstantStyle` (a learned code and learned
  per-channel feature maps broadcast over space).  It isolates what the image-dependent
  code and features contribute: same topology, same widths, same injection modules;
* the **half-ablated networks** (``build_model("constyle_*", constyle_inject="code")``
  or ``"features"``, :func:`ablate_constyle` with ``inject=``): ConStyle kept and trained
  with its losses, but only its code (or only its feature maps) reaches the injection,
  the other replaced by learned constants.  ``inject="code"`` tests the paper's second
  guideline (use the encoder's intermediate feature maps, not only its code);
* the **general network** (``general_*``, ``use_constyle=False``), which is *not* only
  the ConStyle network minus ConStyle.  Measured on NAFNet, d = 48 (12,094,128 against
  11,458,224 parameters for the ConStyle network without ConStyle and injection):
  every DC gets an extra Conv1x1 n -> n+d in place of the AT concatenation (+4,608,
  +13,824, +27,648 parameters); there is no injection, so no AT convs, no mlp and no
  ``local_fusion``, and the bottleneck's 4d output goes straight to UC3, whose up
  conv is 4d -> 16d instead of 3d -> 12d and whose 1x1 is 7d -> 4d instead of
  6d -> 4d (1,391,616 against 801,792 parameters).  UC2, UC1, the blocks and Finetune
  are the same.
"""
from __future__ import annotations

from typing import Callable, Literal, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from ..method.constyle import ConStyle, ConStyleOutput, ConvAct
from .padding import check_input, crop_to, pad_to_multiple

__all__ = [
    "ConStyleInjection",
    "DownConcat",
    "UpConcat",
    "RestorationUNet",
    "TrainOutput",
    "ConstantStyle",
    "ablate_constyle",
    "INJECT_CHOICES",
    "build_general_unet",
]


class TrainOutput(NamedTuple):
    """What a training forward returns: the restored image and ConStyle's outputs."""

    image: Tensor
    constyle: ConStyleOutput | None


class ConStyleInjection(nn.Module):
    """Where ConStyle enters a U-Net: 1x1 affine transforms of its feature maps,
    concatenated after each downsampling, and the code, multiplied into the bottleneck
    and fused (``cat[x, x * mlp(code)]`` then a 1x1 conv)."""

    def __init__(self, *, width: int, bottom_channels: int, fused_channels: int,
                 feature_channels: Sequence[int] = (32, 64, 128), code_dim: int = 128,
                 act: Literal["lrelu", "prelu"] = "lrelu") -> None:
        super().__init__()
        self.affine = nn.ModuleList(
            [ConvAct(c, width, kernel_size=1, act=act) for c in feature_channels])
        self.mlp = nn.Sequential(nn.Linear(code_dim, bottom_channels))
        self.fusion = nn.Conv2d(2 * bottom_channels, fused_channels, 1, bias=False)

    def inject_feature(self, x: Tensor, feature: Tensor, level: int) -> Tensor:
        return torch.cat([x, self.affine[level](feature)], dim=1)

    def fuse_code(self, x: Tensor, code: Tensor) -> Tensor:
        q = self.mlp(code)[:, :, None, None]
        return self.fusion(torch.cat([x, x * q], dim=1))


class ConstantStyle(nn.Module):
    """What ConStyle hands the injection, with the image taken out: a learned code
    (``code_dim``) and one learned vector per feature map, broadcast over the map's
    space (H/2, H/4, H/8 of the padded input) and over the batch.  ``code_dim=None``
    (or ``feature_channels=None``) leaves that part to the live ConStyle encoder: the
    half-ablations of :func:`ablate_constyle`, where forward returns None for it.

    The control of :func:`ablate_constyle`.  Learned constants rather than zeros: a zero
    feature map makes the AT channels dead (LeakyReLU(W 0) = 0) and a zero code reduces
    the fusion to a fixed bias, so zeros would handicap the control; constants let the
    injected channels act as learned biases, which is all the injection can do without an
    image-dependent signal.  Initialisation follows a fresh ConStyle's scale: its feature
    maps are near zero at initialisation (std 0.03, 0.005, 0.001 measured on four 128x128
    photos), so the vectors start at zero; its code spreads with std ~0.3, so the code
    starts as N(0, 0.3^2).  352 parameters at the defaults instead of ConStyle's 1,190,832.
    """

    def __init__(self, *, code_dim: int | None = 128,
                 feature_channels: Sequence[int] | None = (32, 64, 128)) -> None:
        super().__init__()
        if code_dim is None and feature_channels is None:
            raise ValueError("ConstantStyle needs a code, feature maps or both to replace")
        self.code = nn.Parameter(torch.randn(code_dim) * 0.3) if code_dim is not None else None
        self.features = (nn.ParameterList([nn.Parameter(torch.zeros(c, 1, 1)) for c in feature_channels])
                         if feature_channels is not None else None)

    @property
    def replaces(self) -> Literal["both", "code", "features"]:
        """Which of ConStyle's outputs these constants stand for."""
        if self.code is not None and self.features is not None:
            return "both"
        return "code" if self.code is not None else "features"

    def forward(self, inp: Tensor) -> tuple[Tensor | None, list[Tensor] | None]:
        """(code (B, code_dim), feature maps (B, C_i, H / 2^(i+1), W / 2^(i+1))); None
        for a part left to ConStyle."""
        b, _, h, w = inp.shape
        code = self.code.expand(b, -1) if self.code is not None else None
        maps = ([f.expand(b, -1, h >> (i + 1), w >> (i + 1)) for i, f in enumerate(self.features)]
                if self.features is not None else None)
        return code, maps


class DownConcat(nn.Sequential):
    """The release's DC: Conv3x3 n -> n/4 then PixelUnshuffle(2), n channels at half
    resolution (the concatenation happens in the injection)."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.Conv2d(channels, channels // 4, 3, padding=1, bias=False),
                         nn.PixelUnshuffle(2))


class UpConcat(nn.Module):
    """The release's UC: Conv3x3 n -> 4n + PixelShuffle(2), concatenate the skip, then
    an optional 1x1 reduction (``out_channels=None`` keeps the concatenation, as MAXIM's
    variant does)."""

    def __init__(self, channels: int, skip_channels: int, out_channels: int | None) -> None:
        super().__init__()
        self.up = nn.Sequential(nn.Conv2d(channels, 4 * channels, 3, padding=1, bias=False),
                                nn.PixelShuffle(2))
        self.reduce = (nn.Conv2d(channels + skip_channels, out_channels, 1, bias=False)
                       if out_channels is not None else nn.Identity())

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.reduce(torch.cat([self.up(x), skip], dim=1))


class RestorationUNet(nn.Module):
    """The template: Preprocess, encoder levels, bottleneck, decoder levels, Finetune,
    a global residual, and optionally ConStyle.

    ``model(lq)`` restores an image of any size (padded to ``size_factor`` inside,
    cropped back).  ``model(lq, gt)`` in training mode is the training step's forward:
    it runs ConStyle's training forward (momentum update, queue) and returns a
    :class:`TrainOutput` with ConStyle's outputs for the losses.

    Variation points (all optional):
      * ``scale_inputs(inp) -> list[Tensor]``: extra inputs concatenated before each
        encoder level (MAXIM's multi-scale inputs); with ``preprocess=None`` the first
        scale input is also the preprocessed image (MAXIM's first level sees it twice);
      * ``skip_fusion(skips, x) -> (skips, x)``: rewrites the skips from all levels and
        the bottleneck output (MAXIM's cross-gating);
      * ``ups``: any module ``(x, skip) -> x``; :class:`UpConcat` covers both the 1x1
        reduction and its absence.
    """

    def __init__(self, *, preprocess: nn.Module | None, encoders: Sequence[nn.Module],
                 downs: Sequence[nn.Module], bottleneck: nn.Module, ups: Sequence[nn.Module],
                 decoders: Sequence[nn.Module], finetune: nn.Module,
                 constyle: ConStyle | None = None, injection: ConStyleInjection | None = None,
                 style: ConstantStyle | None = None,
                 scale_inputs: nn.Module | None = None, skip_fusion: nn.Module | None = None,
                 size_factor: int = 8, img_channel: int = 3) -> None:
        super().__init__()
        if constyle is not None and style is not None and style.replaces == "both":
            raise ValueError("give constyle or style (its ablated replacement), not both; with "
                             "constyle, style may replace only its code or only its features")
        if (constyle is None and style is None) != (injection is None):
            raise ValueError("an injection needs constyle or style, and they need an injection")
        if preprocess is None and scale_inputs is None:
            raise ValueError("preprocess=None needs scale_inputs (its first entry is the preprocessed image)")
        if not (len(encoders) == len(downs) == len(ups) == len(decoders)):
            raise ValueError("encoders, downs, ups and decoders must have one entry per level")
        self.constyle = constyle
        self.style = style  # the ablated control's constants, all or part (see ablate_constyle)
        self.injection = injection
        self.scale_inputs = scale_inputs
        self.preprocess = preprocess
        self.encoders = nn.ModuleList(encoders)
        self.downs = nn.ModuleList(downs)
        self.bottleneck = bottleneck
        self.skip_fusion = skip_fusion
        # Decoder modules are stored deepest first (ups[0] is the first upsampling).
        self.ups = nn.ModuleList(ups)
        self.decoders = nn.ModuleList(decoders)
        self.finetune = finetune
        self.size_factor = size_factor
        self.img_channel = img_channel

    # The network proper, on an input already padded to size_factor.
    def restore(self, inp: Tensor, code: Tensor | None = None,
                features: Sequence[Tensor] | None = None) -> Tensor:
        scales = self.scale_inputs(inp) if self.scale_inputs is not None else None
        x = self.preprocess(inp) if self.preprocess is not None else scales[0]
        skips = []
        for level, (enc, down) in enumerate(zip(self.encoders, self.downs)):
            if scales is not None:
                x = torch.cat([x, scales[level]], dim=1)
            x = enc(x)
            skips.append(x)
            x = down(x)
            if self.injection is not None:
                x = self.injection.inject_feature(x, features[level], level)
        x = self.bottleneck(x)
        if self.injection is not None:
            x = self.injection.fuse_code(x, code)
        if self.skip_fusion is not None:
            skips, x = self.skip_fusion(skips, x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = dec(up(x, skip))
        return self.finetune(x) + inp

    def forward(self, lq: Tensor, gt: Tensor | None = None) -> Tensor | TrainOutput:
        check_input(lq, self.img_channel, like=next(self.parameters(), None))
        if gt is not None and gt.shape != lq.shape:
            raise ValueError(f"lq and gt differ in shape: {tuple(lq.shape)} vs {tuple(gt.shape)}")
        h, w = lq.shape[-2:]
        inp = pad_to_multiple(lq, self.size_factor)
        cs = None
        if self.constyle is not None:
            train_forward = gt is not None and self.training
            gt_in = pad_to_multiple(gt, self.size_factor) if train_forward else None
            cs = self.constyle(inp, gt_in)
            code, features = cs.code, cs.features
            if self.style is not None:  # half-ablated: one part replaced by constants
                const_code, const_maps = self.style(inp)
                code = const_code if const_code is not None else code
                features = const_maps if const_maps is not None else features
            out = self.restore(inp, code, features)
        elif self.style is not None:
            out = self.restore(inp, *self.style(inp))
        else:
            out = self.restore(inp)
        out = crop_to(out, h, w)
        return TrainOutput(out, cs) if gt is not None else out


INJECT_CHOICES = ("none", "code", "features")


def ablate_constyle(model: RestorationUNet, *,
                    inject: Literal["none", "code", "features"] = "none") -> RestorationUNet:
    """``model`` with what ConStyle injects replaced, in part or in whole, by learned
    constants (:class:`ConstantStyle` of the shapes the injection reads); every backbone
    and injection module and every parameter name kept.

    ``inject`` names what stays live:

    * ``"none"``, the control: ConStyle's encoder (query and momentum encoders, queue)
      removed.  The model has no ``constyle`` any more, so a trainer treats it as a plain
      network (L1 only);
    * ``"code"``: ConStyle kept (it still trains with its losses), only its code reaches
      the bottleneck; the three feature maps are constants (guideline 2's "code only");
    * ``"features"``: ConStyle kept, only its feature maps reach the injection; the code
      is a constant.

    Built from a ConStyle network, so a seed gives the ablated network the same backbone
    and injection initialisation as the ConStyle network it is compared with.
    """
    if inject not in INJECT_CHOICES:
        raise ValueError(f"inject must be one of {INJECT_CHOICES}, got {inject!r}")
    if model.constyle is None or model.injection is None:
        raise ValueError(f"ablate_constyle needs a network with ConStyle, got {type(model).__name__} "
                         "without one")
    feature_channels = [at[0].in_channels for at in model.injection.affine]
    code_dim = model.injection.mlp[0].in_features
    model.style = ConstantStyle(code_dim=None if inject == "code" else code_dim,
                                feature_channels=None if inject == "features" else feature_channels)
    if inject == "none":
        model.constyle = None
    return model


def _stack(block: Callable[[int], nn.Module], n: int, channels: int) -> nn.Sequential:
    return nn.Sequential(*[block(channels) for _ in range(n)])


def build_general_unet(*, block: Callable[[int], nn.Module], width: int = 48,
                       left_blk_num: Sequence[int] = (7, 8, 9), bottom_blk_num: int = 9,
                       right_blk_num: Sequence[int] = (7, 8, 9), img_channel: int = 3,
                       use_constyle: bool = True, constyle_train: bool = True,
                       constyle_kwargs: dict | None = None,
                       affine_act: Literal["lrelu", "prelu"] = "lrelu",
                       preprocess: nn.Module | None = None,
                       finetune_blocks: Callable[[int], nn.Module] | None = None,
                       finetune_blk_num: int = 0,
                       decoder_block: Callable[[int, int], nn.Module] | None = None) -> RestorationUNet:
    """Build the three-level general restoration network with ``block(channels)``.

    With ConStyle the widths grow d, 2d, 3d, 4d (each level gains the d channels of an
    affine-transformed ConStyle feature map) and the decoder runs 4d, 3d, 2d.  Without
    ConStyle (``use_constyle=False``, the release's general network) each level keeps
    those widths through a 1x1 conv n -> n+d after the DC, and the bottleneck's 4d
    output feeds UC3 directly (no ``local_fusion``): same widths and blocks, but not
    the same network minus ConStyle (see the module docstring for every difference;
    :func:`ablate_constyle` gives that control).

    ``block`` builds one encoder/bottleneck block, ``decoder_block(channels, level)``
    one decoder block (defaults to ``block``; Restormer varies heads by level),
    ``finetune_blocks`` optional blocks before the last conv (Restormer's refinement).
    """
    d = width
    dec_block = decoder_block or (lambda c, level: block(c))
    enc_w = [d, 2 * d, 3 * d]  # widths of the three encoder levels
    bottom_w = 4 * d
    encoders = [_stack(block, n, c) for n, c in zip(left_blk_num, enc_w)]
    downs: list[nn.Module] = []
    for c in enc_w:
        if use_constyle:
            downs.append(DownConcat(c))
        else:
            downs.append(nn.Sequential(DownConcat(c), nn.Conv2d(c, c + d, 1, bias=False)))
    bottleneck = _stack(block, bottom_blk_num, bottom_w)
    # Decoder: (input channels, skip channels, output channels), deepest first.
    dec_specs = [(3 * d, enc_w[2], 4 * d), (4 * d, enc_w[1], 3 * d), (3 * d, enc_w[0], 2 * d)]
    if not use_constyle:
        dec_specs[0] = (bottom_w, enc_w[2], 4 * d)
    ups = [UpConcat(cin, cskip, cout) for cin, cskip, cout in dec_specs]
    decoders = [nn.Sequential(*[dec_block(cout, 2 - i) for _ in range(n)])
                for i, ((_, _, cout), n) in enumerate(zip(dec_specs, reversed(list(right_blk_num))))]
    head: list[nn.Module] = []
    if finetune_blocks is not None:
        head += [finetune_blocks(2 * d) for _ in range(finetune_blk_num)]
    head.append(nn.Conv2d(2 * d, img_channel, 3, padding=1, bias=False))
    constyle = injection = None
    if use_constyle:
        constyle = ConStyle(train=constyle_train, in_channels=img_channel, **(constyle_kwargs or {}))
        injection = ConStyleInjection(width=d, bottom_channels=bottom_w, fused_channels=3 * d,
                                      code_dim=constyle.dim, act=affine_act)
    return RestorationUNet(
        preprocess=preprocess or nn.Sequential(nn.Conv2d(img_channel, d, 3, padding=1, bias=False)),
        encoders=encoders, downs=downs, bottleneck=bottleneck, ups=ups, decoders=decoders,
        finetune=nn.Sequential(*head), constyle=constyle, injection=injection, size_factor=8, img_channel=img_channel)
