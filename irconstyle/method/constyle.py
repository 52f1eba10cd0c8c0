"""ConStyle: a MoCo-style query encoder, momentum encoder and queue that produce a
latent code and feature maps for a restoration U-Net.

Faithful to the authors' release (``archs/ConStyle_arch.py``) by default: the queue
holds past *query* embeddings (``enqueue="query"``), nothing is L2-normalised, the
queue starts as ``randn``.  Fixed by default: labels are created on the logits'
device (B1), any batch size works through a wrap-around pointer (B2), freezing is
real (B5, B6).  ``enqueue="key"`` and ``normalize=True`` give standard MoCo as an
ablation; with ``normalize=True`` every loss (InfoNCE, content, style) sees the same
unit vectors the queue holds, while the network keeps consuming the raw code (as at
test time).

``negatives="batch"`` tests the paper's first guideline (an additional data structure:
the queue) by removing it: in-batch negatives as in SimCLR / MoCo v3, no queue
allocated.  Query i's logits are its positive key k_i then the other keys k_j of the
batch (j != i, in batch order): B - 1 negatives.  The style loss's two "slots" (the
queue's entries of other images in queue mode) become the batch's keys rolled by one
along the batch (row i holds k_{i-1}, a key of another image, a negative of query i);
both slots are that same tensor.  Under DDP the in-batch negatives are the local batch's.

Under autocast the style encoder runs in fp32: BatchNorm1d divides the codes by their
spread over the batch, which is small beside their mean, so the rounding of bf16/fp16
pre-activations is amplified; with unnormalised codes and T = 0.07 the InfoNCE under
bf16 was off by 66-203% (tests/test_constyle.py).  Both encoders together are 2.9% of
ConStyle-NAFNet's training forward FLOPs (128x128, torch's FlopCounterMode).
"""
from __future__ import annotations

import contextlib
import copy
import re
from typing import Literal, NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ConvAct",
    "StyleEncoder",
    "Encoding",
    "ConStyleOutput",
    "ConStyle",
    "full_precision",
    "MEMORY_KEYS",
]

# State-dict keys of a model's ConStyle training memory (momentum encoder and queue), which
# an inference build does not have: loaders skip them, weight exports leave them out.
MEMORY_KEYS = re.compile(r"^constyle\.(encoder_k\.|queue$|queue_ptr$)")


class ConvAct(nn.Sequential):
    """Conv (no bias, 'same' padding) followed by an activation.

    ``act="lrelu"`` is LeakyReLU(0.1) as everywhere in the release; ``act="prelu"``
    is a per-channel PReLU, used by ConStyle-Restormer's affine transforms.
    """

    def __init__(self, in_ch: int, out_ch: int, *, kernel_size: int = 3, stride: int = 1,
                 act: Literal["lrelu", "prelu"] = "lrelu") -> None:
        conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride,
                         padding=(kernel_size - 1) // 2, bias=False)
        activation = nn.PReLU(out_ch) if act == "prelu" else nn.LeakyReLU(0.1, inplace=True)
        super().__init__(conv, activation)


class Encoding(NamedTuple):
    """What the query encoder gives the restoration network."""

    out1: Tensor  # (B, dim) first projection; used only by the style loss
    code: Tensor  # (B, dim) second projection ("out2"): the latent code the U-Net consumes
    features: tuple[Tensor, Tensor, Tensor]  # (32, H/2), (64, H/4), (128, H/8)


class ConStyleOutput(NamedTuple):
    """Training-forward outputs, named instead of the release's 6-tuple.

    ``code`` is what the restoration network consumes (raw, as at test time); ``out1``,
    ``query`` and ``key`` are what the losses see: the same codes, L2-normalised when
    ``normalize=True``, so they live where the queue's entries do.
    """

    out1: Tensor  # (B, dim) query out1 as the style loss sees it
    code: Tensor  # (B, dim) query out2, raw: the network's input
    features: tuple[Tensor, Tensor, Tensor]
    key: Tensor | None  # (B, dim) momentum-encoder out2 of the clean image, as the losses see it
    negatives: tuple[Tensor, Tensor] | None  # (next slot, current slot) of the queue, each (B, dim)
    logits: Tensor | None  # (B, 1 + K), positive first, already divided by T
    labels: Tensor | None  # (B,) zeros
    query: Tensor | None = None  # (B, dim) query out2 as the losses see it (training forward)


class StyleEncoder(nn.Module):
    """The release's ``MyBaseEncoder``: four strided conv stages and two Linear+BN+GELU
    heads; 1,190,832 parameters at the defaults."""

    def __init__(self, *, in_channels: int = 3, dim: int = 128) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(ConvAct(in_channels, 16), ConvAct(16, 16), ConvAct(16, 32, stride=2))
        self.stage2 = nn.Sequential(ConvAct(32, 32), ConvAct(32, 64, stride=2))
        self.stage3 = nn.Sequential(ConvAct(64, 128), ConvAct(128, 128, stride=2))
        self.stage4 = nn.Sequential(ConvAct(128, 256), ConvAct(256, 256, stride=2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.mlp1 = nn.Sequential(nn.Linear(256, dim), nn.BatchNorm1d(dim), nn.GELU())
        self.mlp2 = nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.GELU())

    def forward(self, x: Tensor) -> Encoding:
        """Codes and feature maps, in the weights' dtype even under autocast (see the
        module's docstring: BatchNorm1d amplifies the rounding of half precision)."""
        if self.training and x.shape[0] < 2:
            raise ValueError(
                "ConStyle's BatchNorm1d heads need at least 2 samples per batch in train mode "
                f"(got batch size {x.shape[0]}); drop the last partial batch or use a larger batch")
        with full_precision(x.device):
            x = x.to(self.mlp1[0].weight.dtype)
            fea1 = self.stage1(x)
            fea2 = self.stage2(fea1)
            fea3 = self.stage3(fea2)
            pooled = self.pool(self.stage4(fea3)).flatten(1)
            out1 = self.mlp1(pooled)
            out2 = self.mlp2(out1)
        return Encoding(out1, out2, (fea1, fea2, fea3))


def full_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """A region where autocast is off (CUDA/CPU); a no-op elsewhere, where older torch
    refuses even a disabled autocast (MPS before 2.5)."""
    if device.type in ("cuda", "cpu"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


@torch.no_grad()
def _gather_all(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every rank (MoCo's ``concat_all_gather``); identity
    when not running distributed."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


class ConStyle(nn.Module):
    """Query encoder, momentum encoder and queue.

    ``train=False`` builds only the query encoder (what inference needs); the
    momentum encoder and the (dim x K) queue are then never allocated.
    """

    def __init__(self, *, dim: int = 128, queue_size: int = 65760, momentum: float = 0.999,
                 temperature: float = 0.07, train: bool = True,
                 enqueue: Literal["query", "key"] = "query", normalize: bool = False,
                 negatives: Literal["queue", "batch"] = "queue", in_channels: int = 3) -> None:
        super().__init__()
        if enqueue not in ("query", "key"):
            raise ValueError(f"enqueue must be 'query' or 'key', got {enqueue!r}")
        if negatives not in ("queue", "batch"):
            raise ValueError(f"negatives must be 'queue' or 'batch', got {negatives!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be positive, got {queue_size}")
        self.dim, self.queue_size = dim, queue_size
        self.momentum, self.temperature = momentum, temperature
        self.enqueue, self.normalize, self.negatives = enqueue, normalize, negatives
        self.frozen = False
        self.encoder_q = StyleEncoder(in_channels=in_channels, dim=dim)
        self.has_memory = train
        if train:
            self.encoder_k = copy.deepcopy(self.encoder_q)
            for p in self.encoder_k.parameters():
                p.requires_grad_(False)
        if train and negatives == "queue":  # in-batch negatives need no queue
            queue = torch.randn(dim, queue_size)
            if normalize:
                queue = F.normalize(queue, dim=0)
            self.register_buffer("queue", queue)
            self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    # ------------------------------------------------------------------ helpers
    def encode(self, x: Tensor) -> Encoding:
        """Query encoder only: what the restoration network consumes at test time."""
        return self.encoder_q(x)

    @torch.no_grad()
    def momentum_update(self) -> None:
        """theta_k <- m * theta_k + (1 - m) * theta_q, parameters only (as the release)."""
        for pk, pq in zip(self.encoder_k.parameters(), self.encoder_q.parameters()):
            pk.mul_(self.momentum).add_(pq.detach(), alpha=1.0 - self.momentum)

    def _slot(self, start: Tensor, length: int) -> Tensor:
        """Queue columns start..start+length, wrapping around K (a modular gather);
        ``start`` is a one-element tensor on the queue's device, so no host read."""
        idx = (torch.arange(length, device=self.queue.device) + start) % self.queue_size
        return self.queue.index_select(1, idx)

    @torch.no_grad()
    def dequeue_and_enqueue(self, emb: Tensor) -> tuple[Tensor, Tensor]:
        """Write ``emb`` (B, dim) at the pointer and return the slots the style loss
        compares against, read *before* the write: (next slot, current slot).

        Under DDP the embeddings of all ranks are written, rank r's batch at
        ``ptr + r * B``; each rank's slots are those its own batch overwrites and the
        one after, as in a single process."""
        local = emb.shape[0]
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        emb = _gather_all(emb.detach()).to(self.queue.dtype)
        n = emb.shape[0]
        # The pointer stays a device tensor: every index below is computed on the queue's
        # device, so the step never waits for the GPU to read it back (no .item()).
        ptr = self.queue_ptr.clone()
        mine = ptr + rank * local
        old_cur = self._slot(mine, local).t().clone()
        old_next = self._slot(mine + local, local).t().clone()
        if n >= self.queue_size:  # a batch larger than the queue keeps its last K rows
            emb = emb[-self.queue_size:]
            n = self.queue_size
        idx = (torch.arange(n, device=self.queue.device) + ptr) % self.queue_size
        self.queue.index_copy_(1, idx, emb.t())
        self.queue_ptr.copy_((ptr + n) % self.queue_size)
        return old_next, old_cur

    def freeze(self) -> None:
        """The switch after ``constyle_iters``: eval mode, no gradients, no momentum
        update, no enqueue (fixes B5).  The trainer also removes these parameters
        from the optimizer."""
        self.frozen = True
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "ConStyle":
        # A frozen ConStyle stays in eval mode whatever the parent network does.
        return super().train(mode and not self.frozen)

    # ------------------------------------------------------------------ forward
    def forward(self, lq: Tensor, gt: Tensor | None = None) -> ConStyleOutput:
        """Training forward when ``gt`` is given, the module is training, has its
        memory and is not frozen; otherwise query-encoder only."""
        if gt is None or not self.training or not self.has_memory or self.frozen:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
                enc = self.encoder_q(lq)
            return ConStyleOutput(enc.out1, enc.code, enc.features, None, None, None, None)

        enc = self.encoder_q(lq)
        q = enc.code
        with torch.no_grad():
            self.momentum_update()
            k = self.encoder_k(gt).code
        # What the losses see: the queue's space (unit vectors when normalize=True).
        qn, kn, out1 = q, k, enc.out1
        if self.normalize:
            qn, kn, out1 = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(out1, dim=1)
        # Logits in fp32 even under autocast: unnormalised codes / T = 0.07 overflow fp16.
        with full_precision(q.device):
            qf, kf = qn.float(), kn.float()
            l_pos = (qf * kf).sum(dim=1, keepdim=True)
            if self.negatives == "batch":
                b = qf.shape[0]
                off_diagonal = ~torch.eye(b, dtype=torch.bool, device=qf.device)
                l_neg = (qf @ kf.t())[off_diagonal].view(b, b - 1)
            else:
                l_neg = qf @ self.queue.clone().detach().float()
            logits = torch.cat([l_pos, l_neg], dim=1) / self.temperature
        labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        if self.negatives == "batch":
            rolled = kn.detach().roll(1, dims=0)
            negatives = (rolled, rolled)
        else:
            negatives = self.dequeue_and_enqueue(qn if self.enqueue == "query" else kn)
        return ConStyleOutput(out1, q, enc.features, kn, negatives, logits, labels, query=qn)
