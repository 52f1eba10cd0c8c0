"""MAXIM (Tu et al., CVPR 2022): its blocks, the single-stage MAXIM baseline and
ConStyle-MAXIM, both built on the general template :class:`RestorationUNet`.

Layout conventions (as in the authors' PyTorch port of the JAX original):
* the gMLP parts (``MultiAxisGmlp``, ``RCAB``, ``RDCAB``, the gating units) work on
  channels-last tensors (N, H, W, C); the U-Net blocks take and return NCHW;
* "LN" is a LayerNorm over channels with eps 1e-6;
* the two MAXIM axes: a **block** axis mixes the pixels of each fixed fh x fw block
  (local); a **grid** axis lays a fixed gh x gw grid of (H/gh x W/gw) patches over the
  map and mixes the pixels at the same position of every patch (global, strided).
  Both use a Dense layer over a fixed number of tokens, so every level's map must be a
  multiple of its block and grid sizes: :func:`maxim_size_factor` (64 at the defaults);
  models pad to it inside and crop back (A3).

Dead modules of the release (A2): every encoder/decoder block of the release builds a
``cross_gating_block`` that it never calls, and the original MAXIM's decoder blocks
build an unused downsampling ``Conv_1``.  ``release_dead_modules=False`` (default)
omits them; the release loader then drops exactly those keys.  ``True`` builds them
(as ``unused_cross_gating`` / ``unused_down``) for parameter-count parity; they never
get a gradient, so DistributedDataParallel then needs ``find_unused_parameters=True``.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..method.constyle import ConStyle
from .unet import ConStyleInjection, DownConcat, RestorationUNet, UpConcat

__all__ = [
    "nearest_downsample", "resize_bilinear", "maxim_size_factor",
    "AxisDense", "GatingUnit", "AxisGmlp", "MultiAxisGmlp", "ChannelAttention", "RCAB", "RDCAB",
    "SpatialGatingWeights", "CrossGatingBlock", "MaximBlock", "BottleneckBlock",
    "MultiScaleInputs", "CrossGatingSkips", "TransposeUpConcat", "MAXIM", "constyle_maxim",
]

Size = tuple[int, int]


def _ln(channels: int) -> nn.LayerNorm:
    return nn.LayerNorm(channels, eps=1e-6)


# --------------------------------------------------------------------------- resampling
def nearest_downsample(x: Tensor, factor: int) -> Tensor:
    """The release's nearest downsampling by ``factor``: output pixel i reads input
    floor((i + 0.5) * factor), i.e. rows/columns factor//2, factor//2 + factor, ...
    (1::2 for 1/2, 2::4 for 1/4).  Integer slicing instead of the release's float
    index arrays (A1); same values."""
    h, w = x.shape[-2:]
    s = factor // 2
    return x[..., s:(h // factor) * factor:factor, s:(w // factor) * factor:factor]


def resize_bilinear(x: Tensor, size: Sequence[int]) -> Tensor:
    """The release's feature resampling between U-Net levels: bilinear with
    antialiasing (torch's, half-pixel centres); identity when the size already fits.

    torch has no CPU kernel of the antialiased resize for half-precision tensors (what
    bf16 autocast hands it), so on a CPU those are resampled in float32 and cast back."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.device.type == "cpu" and x.dtype in (torch.bfloat16, torch.float16):
        return resize_bilinear(x.float(), size).to(x.dtype)
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def _partition(x: Tensor, patch: Size) -> Tensor:
    """(N, H, W, C) -> (N, patches, pixels per patch, C), non-overlapping patches in
    row-major order (einops ``n (gh fh) (gw fw) c -> n (gh gw) (fh fw) c``)."""
    n, h, w, c = x.shape
    fh, fw = patch
    x = x.reshape(n, h // fh, fh, w // fw, fw, c).transpose(2, 3)
    return x.reshape(n, (h // fh) * (w // fw), fh * fw, c)


def _unpartition(x: Tensor, height: int, width: int, patch: Size) -> Tensor:
    n, _, _, c = x.shape
    fh, fw = patch
    x = x.reshape(n, height // fh, width // fw, fh, fw, c).transpose(2, 3)
    return x.reshape(n, height, width, c)


def maxim_size_factor(level_sizes: Sequence[Sequence[Size]]) -> int:
    """The multiple H and W must have: level l (at 1/2**l resolution) needs its map
    divisible by each of its block/grid sizes ``level_sizes[l]``."""
    factor = 1
    for level, sizes in enumerate(level_sizes):
        factor = math.lcm(factor, 2 ** level * math.lcm(*[s for size in sizes for s in size]))
    return factor


# --------------------------------------------------------------------------- gMLP parts
class AxisDense(nn.Linear):
    """A Dense layer over the tokens of one MAXIM axis of an NHWC map: ``axis="block"``
    mixes the fh*fw pixels of each block, ``axis="grid"`` the gh*gw patches of a fixed
    grid (``size`` is (fh, fw) or (gh, gw))."""

    def __init__(self, axis: Literal["grid", "block"], size: Size, *, bias: bool = True) -> None:
        if axis not in ("grid", "block"):
            raise ValueError(f"maxim.py: axis must be 'grid' or 'block', got {axis!r}")
        super().__init__(size[0] * size[1], size[0] * size[1], bias=bias)
        self.axis, self.size = axis, (int(size[0]), int(size[1]))

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[1:3]
        a, b = self.size
        if h % a or w % b:
            raise ValueError(f"maxim.py: a {h}x{w} feature map is not a multiple of the {self.axis} "
                             f"size {self.size}; pad the input to the model's size_factor")
        patch, dim = ((h // a, w // b), 1) if self.axis == "grid" else ((a, b), 2)
        t = _partition(x, patch).transpose(dim, -1)
        t = super().forward(t).transpose(dim, -1)
        return _unpartition(t, h, w, patch)


class GatingUnit(nn.Module):
    """gMLP's spatial gating unit on one axis (the release's Grid/BlockGatingUnit): split
    channels into u, v; ``u * (Dense(LN(v)) + 1)``.  The Dense always has a bias, even
    in ``bias=False`` models (as in the release)."""

    def __init__(self, channels: int, axis: Literal["grid", "block"], size: Size) -> None:
        super().__init__()
        self.norm = _ln(channels)
        self.dense = AxisDense(axis, size, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        u, v = x.chunk(2, dim=-1)
        return u * (self.dense(self.norm(v)) + 1.0)


class AxisGmlp(nn.Module):
    """A residual gMLP layer on one axis (the release's GridGmlpLayer / BlockGmlpLayer):
    LN, Linear c -> factor*c, GELU, gating unit, Linear back to c."""

    def __init__(self, channels: int, axis: Literal["grid", "block"], size: Size, *,
                 factor: int = 2, bias: bool = True) -> None:
        super().__init__()
        hidden = channels * factor
        self.norm = _ln(channels)
        self.in_proj = nn.Linear(channels, hidden, bias=bias)
        self.act = nn.GELU()
        self.gate = GatingUnit(hidden // 2, axis, size)
        self.out_proj = nn.Linear(hidden // 2, channels, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.out_proj(self.gate(self.act(self.in_proj(self.norm(x)))))


class MultiAxisGmlp(nn.Module):
    """MAXIM's multi-axis gated MLP block (MAB, the release's
    ResidualSplitHeadMultiAxisGmlpLayer): LN, Linear c -> 2c, GELU, split: the first half
    goes through a grid gMLP, the second through a block gMLP; concatenate, Linear back,
    residual."""

    def __init__(self, channels: int, *, block_size: Size, grid_size: Size, input_proj_factor: int = 2,
                 block_gmlp_factor: int = 2, grid_gmlp_factor: int = 2, bias: bool = True) -> None:
        super().__init__()
        hidden = channels * input_proj_factor
        self.norm = _ln(channels)
        self.in_proj = nn.Linear(channels, hidden, bias=bias)
        self.act = nn.GELU()
        self.grid = AxisGmlp(hidden // 2, "grid", grid_size, factor=grid_gmlp_factor, bias=bias)
        self.block = AxisGmlp(hidden // 2, "block", block_size, factor=block_gmlp_factor, bias=bias)
        self.out_proj = nn.Linear(hidden, channels, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        u, v = self.act(self.in_proj(self.norm(x))).chunk(2, dim=-1)
        return x + self.out_proj(torch.cat([self.grid(u), self.block(v)], dim=-1))


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation (the release's CALayer) on an NHWC map: global mean,
    1x1 c -> c/r, ReLU, 1x1 back, sigmoid, multiply."""

    def __init__(self, channels: int, *, reduction: int = 4, bias: bool = True) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels // reduction, 1, bias=bias)
        self.expand = nn.Conv2d(channels // reduction, channels, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        y = x.mean(dim=(1, 2))[:, :, None, None]
        y = torch.sigmoid(self.expand(F.relu(self.reduce(y))))
        return x * y.flatten(1)[:, None, None, :]


class RCAB(nn.Module):
    """Residual channel-attention block (NHWC): LN, Conv3x3, LeakyReLU, Conv3x3,
    channel attention, + input.  Its channel attention always has biases (the release
    does not pass ``bias`` on)."""

    def __init__(self, channels: int, *, reduction: int = 4, lrelu_slope: float = 0.2,
                 bias: bool = True) -> None:
        super().__init__()
        self.norm = _ln(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.act = nn.LeakyReLU(lrelu_slope)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.ca = ChannelAttention(channels, reduction=reduction, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(x).permute(0, 3, 1, 2)
        y = self.conv2(self.act(self.conv1(y))).permute(0, 2, 3, 1)
        return x + self.ca(y)


class RDCAB(nn.Module):
    """Residual dense channel-attention block of the bottleneck (NHWC): LN, MLP
    (Linear, GELU, Linear at constant width), channel attention, + input."""

    def __init__(self, channels: int, *, reduction: int = 4, bias: bool = True) -> None:
        super().__init__()
        self.norm = _ln(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, channels, bias=bias), nn.GELU(),
                                 nn.Linear(channels, channels, bias=bias))
        self.ca = ChannelAttention(channels, reduction=reduction, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.ca(self.mlp(self.norm(x)))


# --------------------------------------------------------------------------- cross-gating
class SpatialGatingWeights(nn.Module):
    """Gating weights of a cross-gating block (the release's GetSpatialGatingWeights,
    NHWC): LN, Linear c -> 2c, GELU, split: first half mixed over the grid axis, second
    over the block axis; concatenate, Linear back to c."""

    def __init__(self, channels: int, *, block_size: Size, grid_size: Size, input_proj_factor: int = 2,
                 bias: bool = True) -> None:
        super().__init__()
        hidden = channels * input_proj_factor
        self.norm = _ln(channels)
        self.in_proj = nn.Linear(channels, hidden, bias=bias)
        self.act = nn.GELU()
        self.grid_dense = AxisDense("grid", grid_size, bias=bias)
        self.block_dense = AxisDense("block", block_size, bias=bias)
        self.out_proj = nn.Linear(hidden, channels, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        u, v = self.act(self.in_proj(self.norm(x))).chunk(2, dim=-1)
        return self.out_proj(torch.cat([self.grid_dense(u), self.block_dense(v)], dim=-1))


class CrossGatingBlock(nn.Module):
    """MAXIM's cross-gating block (CGB, NCHW in and out): two signals gate each other.

    ``y`` (the coarser gating signal, ``y_channels``) is upsampled 2x by a transposed
    conv when ``upsample_y``; both are projected to ``channels`` by 1x1 convs; each is
    LN -> Linear -> GELU and yields spatial gating weights; ``y' = Linear(y * g(x)) + y``
    and ``x' = Linear(x * g(y)) + y' + x``.  Returns ``(x', y')``.
    """

    def __init__(self, x_channels: int, channels: int, *, y_channels: int | None = None,
                 upsample_y: bool = True, block_size: Size, grid_size: Size, input_proj_factor: int = 2,
                 bias: bool = True) -> None:
        super().__init__()
        if upsample_y and y_channels is None:
            raise ValueError("maxim.py: CrossGatingBlock with upsample_y needs y_channels")
        self.up_y = (nn.ConvTranspose2d(y_channels, channels, 2, stride=2, bias=bias)
                     if upsample_y else nn.Identity())
        self.proj_x = nn.Conv2d(x_channels, channels, 1, bias=bias)
        self.proj_y = nn.Conv2d(channels, channels, 1, bias=bias)
        gating = dict(block_size=block_size, grid_size=grid_size, input_proj_factor=input_proj_factor,
                      bias=bias)
        self.norm_x = _ln(channels)
        self.in_proj_x = nn.Linear(channels, channels, bias=bias)
        self.gate_x = SpatialGatingWeights(channels, **gating)
        self.norm_y = _ln(channels)
        self.in_proj_y = nn.Linear(channels, channels, bias=bias)
        self.gate_y = SpatialGatingWeights(channels, **gating)
        self.out_proj_y = nn.Linear(channels, channels, bias=bias)
        self.out_proj_x = nn.Linear(channels, channels, bias=bias)
        self.act = nn.GELU()

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        x = self.proj_x(x).permute(0, 2, 3, 1)
        y = self.proj_y(self.up_y(y)).permute(0, 2, 3, 1)
        if x.shape != y.shape:
            raise ValueError(f"maxim.py: cross-gating signals differ in shape: x {tuple(x.shape)}, "
                             f"y {tuple(y.shape)} (NHWC)")
        sx, sy = x, y
        x = self.act(self.in_proj_x(self.norm_x(x)))
        y = self.act(self.in_proj_y(self.norm_y(y)))
        gx, gy = self.gate_x(x), self.gate_y(y)
        y = self.out_proj_y(y * gx) + sy
        x = self.out_proj_x(x * gy) + y + sx
        return x.permute(0, 3, 1, 2), y.permute(0, 3, 1, 2)


# --------------------------------------------------------------------------- U-Net blocks
class MaximBlock(nn.Module):
    """MAXIM's U-Net block (the release's UNetEncoderBlock, used for encoder and decoder
    levels; NCHW): 1x1 conv ``in_channels -> channels``, then ``num_groups`` x (MAB,
    RCAB), + the projected input.  The template concatenates skips/scales before it.

    ``unused_cross_gating`` / ``unused_down`` build the release's dead modules (never
    called; see the module docstring)."""

    def __init__(self, in_channels: int, channels: int, *, block_size: Size, grid_size: Size,
                 num_groups: int = 2, bias: bool = True, lrelu_slope: float = 0.2, reduction: int = 4,
                 input_proj_factor: int = 2, block_gmlp_factor: int = 2, grid_gmlp_factor: int = 2,
                 unused_cross_gating: bool = False, unused_down: bool = False) -> None:
        super().__init__()
        self.proj_in = nn.Conv2d(in_channels, channels, 1, bias=bias)
        mab = dict(block_size=block_size, grid_size=grid_size, input_proj_factor=input_proj_factor,
                   block_gmlp_factor=block_gmlp_factor, grid_gmlp_factor=grid_gmlp_factor, bias=bias)
        self.gmlps = nn.ModuleList([MultiAxisGmlp(channels, **mab) for _ in range(num_groups)])
        self.rcabs = nn.ModuleList([RCAB(channels, reduction=reduction, lrelu_slope=lrelu_slope, bias=bias)
                                    for _ in range(num_groups)])
        if unused_cross_gating:
            self.unused_cross_gating = CrossGatingBlock(
                channels, channels, upsample_y=False, block_size=block_size, grid_size=grid_size,
                input_proj_factor=input_proj_factor, bias=bias)
        if unused_down:
            self.unused_down = nn.Conv2d(channels, channels, 4, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj_in(x)
        y = x.permute(0, 2, 3, 1)
        for mab, rcab in zip(self.gmlps, self.rcabs):
            y = rcab(mab(y))
        return x + y.permute(0, 3, 1, 2)


class BottleneckBlock(nn.Module):
    """MAXIM's bottleneck block (NCHW): 1x1 conv (always with bias, as in the release),
    then ``num_groups`` x (MAB, RDCAB), + the projected input.  (The release's RDCABs
    ignore ``channels_reduction`` and always use 4; here it is honoured, equal at the
    default.)"""

    def __init__(self, channels: int, *, block_size: Size, grid_size: Size, num_groups: int = 2,
                 bias: bool = True, reduction: int = 4, input_proj_factor: int = 2,
                 block_gmlp_factor: int = 2, grid_gmlp_factor: int = 2) -> None:
        super().__init__()
        self.proj_in = nn.Conv2d(channels, channels, 1, bias=True)
        mab = dict(block_size=block_size, grid_size=grid_size, input_proj_factor=input_proj_factor,
                   block_gmlp_factor=block_gmlp_factor, grid_gmlp_factor=grid_gmlp_factor, bias=bias)
        self.gmlps = nn.ModuleList([MultiAxisGmlp(channels, **mab) for _ in range(num_groups)])
        self.rdcabs = nn.ModuleList([RDCAB(channels, reduction=reduction, bias=bias)
                                     for _ in range(num_groups)])

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj_in(x)
        y = x.permute(0, 2, 3, 1)
        for mab, rdcab in zip(self.gmlps, self.rdcabs):
            y = rdcab(mab(y))
        return x + y.permute(0, 3, 1, 2)


# --------------------------------------------------------------------------- template parts
class MultiScaleInputs(nn.Module):
    """The template's ``scale_inputs``: Conv3x3 of the image nearest-downsampled by
    1, 2, 4, ... for each encoder level.  Level 0's output doubles as the preprocessed
    image (the template is built with ``preprocess=None``), so the first encoder sees
    ``cat[scale0, scale0]`` as in MAXIM."""

    def __init__(self, widths: Sequence[int], *, in_channels: int = 3, bias: bool = True) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(in_channels, c, 3, padding=1, bias=bias) for c in widths])

    def forward(self, x: Tensor) -> list[Tensor]:
        return [conv(nearest_downsample(x, 2 ** i) if i else x) for i, conv in enumerate(self.convs)]


class CrossGatingSkips(nn.Module):
    """The template's ``skip_fusion`` for MAXIM: multi-level features fused by
    cross-gating, then multi-level bridges for the decoder.

    For each level i, deepest first: ``signal_i = cat_j[proj_ij(resize(skip_j))]`` over
    all encoder levels j (shallowest first), then ``s_i, y = CGB_i(signal_i, y)`` with
    ``y`` starting as the bottleneck output.  The bridge for decoder level i is
    ``cat_j[bproj_ij(resize(s_j))]`` over j deepest first.  The decoder itself starts
    from the unchanged bottleneck output.

    ``project_all_signals=False`` (ConStyle-MAXIM) skips the 1x1 of a signal that already
    has the gate width; ``bridge_channels=None`` (ConStyle-MAXIM) concatenates the
    resized gated skips without 1x1 convs.
    """

    def __init__(self, *, skip_channels: Sequence[int], gate_channels: Sequence[int], bottom_channels: int,
                 block_sizes: Sequence[Size], grid_sizes: Sequence[Size],
                 bridge_channels: Sequence[int] | None = None, project_all_signals: bool = True,
                 bias: bool = True, input_proj_factor: int = 2) -> None:
        super().__init__()
        levels = len(skip_channels)
        self.signal_proj = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.bridge_proj = nn.ModuleList()
        for i in range(levels):
            nc = gate_channels[i]
            self.signal_proj.append(nn.ModuleList([
                nn.Conv2d(c, nc, 1, bias=bias) if (project_all_signals or c != nc) else nn.Identity()
                for c in skip_channels]))
            self.gates.append(CrossGatingBlock(
                levels * nc, nc, y_channels=bottom_channels if i == levels - 1 else gate_channels[i + 1],
                upsample_y=True, block_size=block_sizes[i], grid_size=grid_sizes[i],
                input_proj_factor=input_proj_factor, bias=bias))
            self.bridge_proj.append(nn.ModuleList([
                nn.Conv2d(gate_channels[j], bridge_channels[i], 1, bias=bias) if bridge_channels is not None
                else nn.Identity() for j in reversed(range(levels))]))
        self.bridge_widths = [levels * bridge_channels[i] if bridge_channels is not None
                              else sum(gate_channels) for i in range(levels)]

    def forward(self, skips: Sequence[Tensor], x: Tensor) -> tuple[list[Tensor], Tensor]:
        levels = len(skips)
        gated: dict[int, Tensor] = {}
        y = x
        for i in reversed(range(levels)):
            size = skips[i].shape[-2:]
            signal = torch.cat([proj(resize_bilinear(s, size))
                                for proj, s in zip(self.signal_proj[i], skips)], dim=1)
            gated[i], y = self.gates[i](signal, y)
        bridges = []
        for i in range(levels):
            size = gated[i].shape[-2:]
            bridges.append(torch.cat([proj(resize_bilinear(gated[j], size))
                                      for proj, j in zip(self.bridge_proj[i], reversed(range(levels)))], 1))
        return bridges, x


class TransposeUpConcat(nn.Module):
    """The original MAXIM's decoder upsampling, as a template ``ups`` entry: ConvTranspose
    2x2 stride 2, then concatenate the bridge."""

    def __init__(self, in_channels: int, out_channels: int, *, bias: bool = True) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=bias)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return torch.cat([self.up(x), skip], dim=1)


def _level_sizes(levels: int, high_res_stages: int, block_size_hr: Size, block_size_lr: Size,
                 grid_size_hr: Size, grid_size_lr: Size) -> tuple[list[Size], list[Size]]:
    """Block and grid sizes per U-Net level: the high-resolution sizes for the first
    ``high_res_stages`` levels.  (The release passes ``block_size_lr`` as the grid size of
    low-resolution U-Net levels and ignores ``grid_size_lr`` there; equal at the defaults.)"""
    blocks = [tuple(block_size_hr) if i < high_res_stages else tuple(block_size_lr) for i in range(levels)]
    grids = [tuple(grid_size_hr) if i < high_res_stages else tuple(grid_size_lr) for i in range(levels)]
    return blocks, grids


# --------------------------------------------------------------------------- networks
class MAXIM(RestorationUNet):
    """The release's MAXIM baseline: single-stage MAXIM-1S (features 32, depth 3,
    use_bias True): 8,175,683 parameters with the release's dead modules, 6,134,371
    without (the default).

    On the template: multi-scale inputs of widths F, 2F, 4F (nearest downsampling)
    concatenated before each encoder level, Conv4x4 stride-2 downsampling, two bottleneck
    blocks, cross-gated skips with 1x1 projections, ConvTranspose upsampling, decoder
    blocks on ``cat[x, bridge]``, Conv3x3(F -> 3) + input.  Inputs of any size are
    padded to ``size_factor`` (64 at the defaults) and cropped back.
    """

    def __init__(self, *, features: int = 32, depth: int = 3, use_bias: bool = True,
                 num_bottleneck_blocks: int = 2, num_groups: int = 2, lrelu_slope: float = 0.2,
                 high_res_stages: int = 2, block_size_hr: Size = (16, 16), block_size_lr: Size = (8, 8),
                 grid_size_hr: Size = (16, 16), grid_size_lr: Size = (8, 8), block_gmlp_factor: int = 2,
                 grid_gmlp_factor: int = 2, input_proj_factor: int = 2, channels_reduction: int = 4,
                 img_channel: int = 3, release_dead_modules: bool = False) -> None:
        blocks, grids = _level_sizes(depth, high_res_stages, block_size_hr, block_size_lr,
                                     grid_size_hr, grid_size_lr)
        widths = [features * 2 ** i for i in range(depth)]
        common = dict(bias=use_bias, input_proj_factor=input_proj_factor,
                      block_gmlp_factor=block_gmlp_factor, grid_gmlp_factor=grid_gmlp_factor)
        block = dict(common, num_groups=num_groups, lrelu_slope=lrelu_slope, reduction=channels_reduction,
                     unused_cross_gating=release_dead_modules)
        encoders = [MaximBlock((widths[i - 1] if i else widths[0]) + widths[i], widths[i],
                               block_size=blocks[i], grid_size=grids[i], **block) for i in range(depth)]
        downs = [nn.Conv2d(c, c, 4, stride=2, padding=1) for c in widths]  # bias even if not use_bias
        bottom = widths[-1]
        bottleneck = nn.Sequential(*[
            BottleneckBlock(bottom, block_size=tuple(block_size_lr), grid_size=tuple(grid_size_lr),
                            num_groups=num_groups, reduction=channels_reduction, **common)
            for _ in range(num_bottleneck_blocks)])
        fusion = CrossGatingSkips(skip_channels=widths, gate_channels=widths, bottom_channels=bottom,
                                  block_sizes=blocks, grid_sizes=grids, bridge_channels=widths,
                                  project_all_signals=True, bias=use_bias,
                                  input_proj_factor=input_proj_factor)
        ups, decoders = [], []
        for i in reversed(range(depth)):  # deepest first
            c_in = bottom if i == depth - 1 else widths[i + 1]
            ups.append(TransposeUpConcat(c_in, widths[i], bias=use_bias))
            decoders.append(MaximBlock(widths[i] + fusion.bridge_widths[i], widths[i], block_size=blocks[i],
                                       grid_size=grids[i], unused_down=release_dead_modules, **block))
        super().__init__(
            preprocess=None, scale_inputs=MultiScaleInputs(widths, in_channels=img_channel, bias=use_bias),
            encoders=encoders, downs=downs, bottleneck=bottleneck, skip_fusion=fusion, ups=ups,
            decoders=decoders,
            finetune=nn.Sequential(nn.Conv2d(features, img_channel, 3, padding=1, bias=use_bias)),
            size_factor=maxim_size_factor([*zip(blocks, grids), (tuple(block_size_lr), tuple(grid_size_lr))]))


def constyle_maxim(*, features: int = 32, bias: bool = False, bottom_blk_num: int = 2, num_groups: int = 2,
                   lrelu_slope: float = 0.2, high_res_stages: int = 2, block_size_hr: Size = (16, 16),
                   block_size_lr: Size = (8, 8), grid_size_hr: Size = (16, 16), grid_size_lr: Size = (8, 8),
                   block_gmlp_factor: int = 2, grid_gmlp_factor: int = 2, input_proj_factor: int = 2,
                   channels_reduction: int = 4, img_channel: int = 3, use_constyle: bool = True,
                   constyle_train: bool = True, constyle_kwargs: dict | None = None,
                   release_dead_modules: bool = False) -> RestorationUNet:
    """ConStyle-MAXIM on the template (the release's defaults).

    Parameters at the defaults: 8,101,664 (inference build, with the release's dead
    cross-gating blocks), 9,292,496 (training build, adding the momentum encoder),
    6,572,576 without the dead modules (``release_dead_modules=False``, the default).

    Widths F, 2F, 3F, 4F as in the general template (each level gains F channels of a
    ConStyle feature map), multi-scale inputs of width F, cross-gated skips of width F
    per level concatenated into 3F-wide bridges, DC/UC without the 1x1 reduction, MAXIM
    blocks on ``cat[x, bridge]``, Conv3x3(2F -> 3) + input.

    ``use_constyle=False`` gives the same network without ConStyle: the affine-transform
    concatenation after each DC is replaced by a 1x1 conv to the same width and the
    bottleneck's 4F output goes straight to the decoder and the cross-gating.
    """
    d = features
    depth = 3
    blocks, grids = _level_sizes(depth, high_res_stages, block_size_hr, block_size_lr,
                                 grid_size_hr, grid_size_lr)
    common = dict(bias=bias, input_proj_factor=input_proj_factor,
                  block_gmlp_factor=block_gmlp_factor, grid_gmlp_factor=grid_gmlp_factor)
    block = dict(common, num_groups=num_groups, lrelu_slope=lrelu_slope, reduction=channels_reduction,
                 unused_cross_gating=release_dead_modules)
    enc_w = [d, 2 * d, 3 * d]
    # level input: previous level's DC (n) + ConStyle feature (d) + scale input (d)
    encoders = [MaximBlock(2 * d if i == 0 else enc_w[i - 1] + 2 * d, enc_w[i], block_size=blocks[i],
                           grid_size=grids[i], **block) for i in range(depth)]
    downs: list[nn.Module] = [DownConcat(c) if use_constyle else
                              nn.Sequential(DownConcat(c), nn.Conv2d(c, c + d, 1, bias=False)) for c in enc_w]
    bottleneck = nn.Sequential(*[
        BottleneckBlock(4 * d, block_size=tuple(block_size_lr), grid_size=tuple(grid_size_lr),
                        num_groups=num_groups, reduction=channels_reduction, **common)
        for _ in range(bottom_blk_num)])
    fused = 3 * d if use_constyle else 4 * d  # what the decoder and the gating start from
    fusion = CrossGatingSkips(skip_channels=enc_w, gate_channels=[d] * depth, bottom_channels=fused,
                              block_sizes=blocks, grid_sizes=grids, bridge_channels=None,
                              project_all_signals=False, bias=bias, input_proj_factor=input_proj_factor)
    # (upsampled width, decoder output width) per decoder level, deepest first
    dec_specs = [(fused, 3 * d), (3 * d, 2 * d), (2 * d, 2 * d)]
    ups = [UpConcat(c_in, fusion.bridge_widths[2 - k], None) for k, (c_in, _) in enumerate(dec_specs)]
    decoders = [MaximBlock(c_in + fusion.bridge_widths[2 - k], c_out, block_size=blocks[2 - k],
                           grid_size=grids[2 - k], **block) for k, (c_in, c_out) in enumerate(dec_specs)]
    constyle = injection = None
    if use_constyle:
        constyle = ConStyle(train=constyle_train, in_channels=img_channel, **(constyle_kwargs or {}))
        injection = ConStyleInjection(width=d, bottom_channels=4 * d, fused_channels=3 * d,
                                      code_dim=constyle.dim, act="lrelu")
    return RestorationUNet(
        preprocess=None, scale_inputs=MultiScaleInputs([d] * depth, in_channels=img_channel, bias=bias),
        encoders=encoders, downs=downs, bottleneck=bottleneck, skip_fusion=fusion, ups=ups, decoders=decoders,
        finetune=nn.Sequential(nn.Conv2d(2 * d, img_channel, 3, padding=1, bias=bias)),
        constyle=constyle, injection=injection,
        size_factor=math.lcm(8, maxim_size_factor([*zip(blocks, grids),
                                                   (tuple(block_size_lr), tuple(grid_size_lr))])))
