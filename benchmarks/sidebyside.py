"""Ours against the authors' release, side by side in one process (issue 18.1).

The release is never part of this repository: ``--release PATH`` points at a checkout
(for example ``git archive`` of github:Dongqi-Fan/IRConStyle into /tmp), whose
``archs/*.py`` are loaded here by file path, with a stub for BasicSR's registry.  Its
``.cuda()`` calls (bug B1, the InfoNCE labels) are made a no-op while the release runs
on a CPU.

Both networks hold the same weights: the release's model is built with a fixed seed and
its state dict goes through :func:`irconstyle.checkpoints.release.load_release_checkpoint` into ours;
the maximum difference of their eval outputs is recorded.  Then, for every model and
comparison, the two are timed in alternation (ours, release, release, ours, ...), after
``--warmup`` steps each, synchronised on CUDA; the JSON holds the median and quartiles of
``--steps`` steps each, the ratio of the medians, the warm-up (compile) time separately,
and peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, on a CPU the peak resident
set (VmHWM, reset after the build) of a child process that builds one model and runs two
steps, beside its resident set before the first step.

What a step is:
  * training: the release's ``optimize_parameters`` without EMA (ConStyle forward with
    momentum update and enqueue, the network, L1 + InfoNCE + content + style for ConStyle
    models, L1 otherwise, backward, AdamW lr 3e-4 wd 1e-4), against ours: ``model(lq, gt)``,
    :func:`irconstyle.method.losses.restoration_loss`, backward, AdamW, as ``Trainer.train_step``
    does it (EMA, grad scaler and scheduler left out on both sides);
  * inference: eval mode, ``no_grad``; the release's test call (``encoder_q`` then the
    network) against ``model(lq)``.

"Ours" is what the package runs by default on the device: the model in the layout
:func:`irconstyle.runtime.devices.fast_layout` gives it (``channels_last`` on CPU and CUDA), and
AdamW's fused kernel where :func:`irconstyle.runtime.devices.fused_optimizer_supported` says the
device has one, as ``Trainer`` builds it.  Comparisons: ``fp32`` (both fp32, the same TF32
setting), ``bf16`` (both under bf16 autocast), ``best`` (ours with what pays on the device:
on CUDA also bf16 autocast and optionally ``torch.compile``, against the release as shipped:
fp32), and ``plain`` (ours without channels_last or the fused optimizer, fp32: the same
code path as the release, to show what the layout and the kernel contribute).

``--profile N`` runs ``torch.profiler`` over N fp32 steps of each side and stores the
operators with the most self time: where the time goes, measured rather than guessed.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from irconstyle import build_model
from irconstyle.checkpoints.release import load_release_checkpoint
from irconstyle.method.losses import restoration_loss
from irconstyle.results import results_dir
from irconstyle.runtime.devices import channels_last_pays, fused_optimizer_supported, synchronize
from irconstyle.runtime.environment import provenance
from irconstyle.runtime.memory import maxrss_bytes, reset_peak, status_bytes

MODELS = ["constyle_nafnet", "nafnet", "constyle_restormer", "restormer", "constyle_maxim", "maxim"]
# Our zoo name -> (release arch file, class name).
RELEASE_CLASSES = {
    "constyle_nafnet": ("ConStyle_NAFNet_arch", "ConStyleNAFNet"),
    "nafnet": ("NAFNet_arch", "NAFNet"),
    "constyle_restormer": ("ConStyle_Restormer_arch", "ConStyleRestormer"),
    "restormer": ("Restormer_arch", "Restormer"),
    "constyle_maxim": ("ConStyle_Maxim_arch", "ConStyleMaxim"),
    "maxim": ("Maxim_arch", "Maxim"),
}
LR, WEIGHT_DECAY = 3e-4, 1e-4


# ---------------------------------------------------------------- the release, by path
def load_release(root: Path) -> dict[str, type]:
    """The release's network classes, loaded from ``root/archs`` by file path.

    BasicSR's registry is stubbed (its decorator returns the class unchanged); the
    stub modules are removed from ``sys.modules`` afterwards."""
    archs = root / "archs"
    if not (archs / "ConStyle_arch.py").is_file():
        raise FileNotFoundError(f"{root}: not a checkout of the release (no archs/ConStyle_arch.py)")

    class _Registry:
        def register(self, obj=None):
            return obj if obj is not None else (lambda o: o)

    registry = types.ModuleType("utils.registry")
    registry.ARCH_REGISTRY = registry.LOSS_REGISTRY = _Registry()
    utils = types.ModuleType("utils")
    utils.registry = registry
    package = types.ModuleType("archs")
    package.__path__ = []  # a package whose submodules are registered below, by file
    stubs = {"utils": utils, "utils.registry": registry, "archs": package}
    saved = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    loaded: list[str] = []
    try:
        classes = {}
        for stem in ["ConStyle_arch"] + sorted({f for f, _ in RELEASE_CLASSES.values()}):
            name = f"archs.{stem}"
            if name not in sys.modules:
                spec = importlib.util.spec_from_file_location(name, archs / f"{stem}.py")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                loaded.append(name)
                spec.loader.exec_module(module)
        for ours, (stem, cls) in RELEASE_CLASSES.items():
            classes[ours] = getattr(sys.modules[f"archs.{stem}"], cls)
        return classes
    finally:
        for name in loaded:
            sys.modules.pop(name, None)
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


@contextlib.contextmanager
def cuda_calls_are_noops(device: torch.device):
    """On a CPU, the release's ``tensor.cuda()`` (B1) returns the tensor itself."""
    if device.type == "cuda":
        yield
        return
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.cuda = original  # type: ignore[method-assign]


def build_pair(name: str, release_classes: dict[str, type], device: torch.device,
               seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(ours, release) with the same weights (the release's, seeded)."""
    torch.manual_seed(seed)
    release = release_classes[name]()
    with torch.no_grad():  # zero-initialised scales (NAFNet's beta/gamma) would hide the blocks
        for p in release.parameters():
            if p.is_floating_point() and not p.any():
                p.normal_(0.0, 0.1)
    ours = build_model(name)
    load_release_checkpoint(ours, name, {"params": release.state_dict()})
    return ours.to(device), release.to(device)


def has_constyle(name: str) -> bool:
    return name.startswith("constyle_")


# ---------------------------------------------------------------- the steps
def release_style_loss(q0, q1, neg) -> torch.Tensor:
    """The release's style term (models/ConStyle_model.py), written out."""
    n = q0.shape[-1] * q0.shape[-2]
    s1 = torch.square(q0 @ q0.T / n - neg[0] @ neg[0].T / n).mean() * -1
    s2 = torch.square(q1 @ q1.T / n - neg[1] @ neg[1].T / n).mean() * -1
    return s1 + s2


def release_train_step(net, opt, lq, gt, constyle: bool, autocast) -> None:
    opt.zero_grad()
    with autocast():
        if constyle:
            query, pos, neg, logits, labels, feas = net.ConStyle(lq, gt)
            out = net(lq, query[1], feas)
            loss = F.l1_loss(out, gt, reduction="none").mean()
            loss = loss + F.cross_entropy(logits, labels)
            loss = loss + torch.square(query[1] - pos).mean()
            loss = loss + release_style_loss(query[0], query[1], neg)
        else:
            loss = F.l1_loss(net(lq), gt, reduction="none").mean()
    loss.backward()
    opt.step()


def ours_train_step(model, opt, lq, gt, autocast) -> None:
    with autocast():
        out = model(lq, gt)
        terms = restoration_loss(out.image, gt, out.constyle)
    opt.zero_grad(set_to_none=True)
    terms.total.backward()
    opt.step()


@torch.no_grad()
def release_infer(net, lq, constyle: bool, autocast) -> torch.Tensor:
    with autocast():
        if constyle:
            q, feas = net.ConStyle.encoder_q(lq)
            return net(lq, q[1], feas)
        return net(lq)


@torch.no_grad()
def ours_infer(model, lq, autocast) -> torch.Tensor:
    with autocast():
        return model(lq)


def make_autocast(device: torch.device, bf16: bool) -> Callable[[], contextlib.AbstractContextManager]:
    if not bf16:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def adamw(model: nn.Module, fused: bool) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    kwargs = {"fused": True} if fused else {}
    return torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY, **kwargs)


# ---------------------------------------------------------------- one comparison
def _timed(fn: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


def _stats(times: list[float]) -> dict:
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {"median_s": statistics.median(times), "q1_s": q[0], "q3_s": q[2], "n": len(times)}


COMPARISONS = ["fp32", "bf16", "best", "plain"]


def setting(comparison: str, device: torch.device, compile_ours: bool) -> dict:
    """What each side runs with in a comparison (ours: the package's defaults on the
    device, except in ``plain``)."""
    cuda = device.type == "cuda"
    defaults = {"channels_last": channels_last_pays(device), "fused": fused_optimizer_supported(device)}
    shipped = {"bf16": False, "channels_last": False, "fused": False}
    if comparison == "fp32":
        return {"ours": {"bf16": False, **defaults, "compile": False}, "release": shipped}
    if comparison == "bf16":
        return {"ours": {"bf16": True, **defaults, "compile": False}, "release": {**shipped, "bf16": True}}
    if comparison == "best":
        return {"ours": {"bf16": cuda, **defaults, "compile": compile_ours and cuda}, "release": shipped}
    if comparison == "plain":
        return {"ours": {**shipped, "compile": False}, "release": shipped}
    raise ValueError(f"unknown comparison {comparison!r}; known: {', '.join(COMPARISONS)}")


def side_step(who: str, name: str, mode: str, model: nn.Module, cfg: dict, lq: torch.Tensor,
              gt: torch.Tensor, device: torch.device) -> Callable[[], object]:
    """One side's step as a callable, set up as ``cfg`` (one side of :func:`setting`)
    says: the model in its layout and mode, the inputs in that layout, its own AdamW
    for training, autocast for bf16, and ``torch.compile`` for ours when asked."""
    fmt = torch.channels_last if cfg["channels_last"] else torch.contiguous_format
    model.to(memory_format=fmt)
    lq, gt = lq.contiguous(memory_format=fmt), gt.contiguous(memory_format=fmt)
    autocast = make_autocast(device, cfg["bf16"])
    runner = torch.compile(model) if cfg.get("compile") else model
    if mode == "train":
        model.train()
        opt = adamw(model, cfg["fused"])
        if who == "ours":
            return lambda: ours_train_step(runner, opt, lq, gt, autocast)
        return lambda: release_train_step(model, opt, lq, gt, has_constyle(name), autocast)
    model.eval()
    if who == "ours":
        return lambda: ours_infer(runner, lq, autocast)
    return lambda: release_infer(model, lq, has_constyle(name), autocast)


class SideFailed(RuntimeError):
    """One side cannot run a comparison (for example an operator without a kernel for
    the dtype on this device); the message names the side."""


def run_pair(name: str, mode: str, comparison: str, ours: nn.Module, release: nn.Module,
             args: argparse.Namespace, device: torch.device, size: int, batch: int) -> dict:
    """Time ours and the release in alternation for one (model, mode, size, comparison)."""
    cfg = setting(comparison, device, args.compile)
    g = torch.Generator().manual_seed(1)
    lq = torch.rand(batch, 3, size, size, generator=g).to(device)
    gt = (lq + 0.05 * torch.randn(lq.shape, generator=g).to(device)).clamp(0, 1)
    step_o = side_step("ours", name, mode, ours, cfg["ours"], lq, gt, device)
    step_r = side_step("release", name, mode, release, cfg["release"], lq, gt, device)
    with cuda_calls_are_noops(device):
        warm = {}
        for who, fn in (("ours", step_o), ("release", step_r)):
            try:
                warm[who] = [_timed(fn, device) for _ in range(max(args.warmup, 1))]
            except (RuntimeError, NotImplementedError) as exc:
                raise SideFailed(f"{who}: {type(exc).__name__}: {exc}") from exc
        times: dict[str, list[float]] = {"ours": [], "release": []}
        for i in range(args.steps):  # alternate who goes first, so drift hits both alike
            order = (("ours", step_o), ("release", step_r))
            for who, fn in (order if i % 2 == 0 else order[::-1]):
                times[who].append(_timed(fn, device))
        memory = {}
        if device.type == "cuda":
            for who, fn in (("ours", step_o), ("release", step_r)):
                torch.cuda.reset_peak_memory_stats(device)
                fn()
                synchronize(device)
                memory[who] = torch.cuda.max_memory_allocated(device)
    ours.to(memory_format=torch.contiguous_format)
    row = {"model": name, "mode": mode, "comparison": comparison, "size": size, "batch": batch,
           "settings": cfg,
           "ours": {**_stats(times["ours"]), "warmup_s": warm["ours"]},
           "release": {**_stats(times["release"]), "warmup_s": warm["release"]}}
    row["speedup"] = row["release"]["median_s"] / row["ours"]["median_s"]
    if memory:
        row["ours"]["peak_bytes"], row["release"]["peak_bytes"] = memory["ours"], memory["release"]
    return row


def profile_pair(name: str, mode: str, ours: nn.Module, release: nn.Module, args: argparse.Namespace,
                 device: torch.device, size: int, batch: int, top: int = 15) -> dict:
    """``torch.profiler`` over ``args.profile`` fp32 steps of each side (after one
    untimed step): total self time and the operators with the most of it."""
    from torch.profiler import ProfilerActivity, profile

    cfg = setting("fp32", device, False)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    out = {}
    for who in ("ours", "release"):
        model = ours if who == "ours" else release
        g = torch.Generator().manual_seed(1)
        lq = torch.rand(batch, 3, size, size, generator=g).to(device)
        step = side_step(who, name, mode, model, cfg[who], lq, lq.clone(), device)
        with cuda_calls_are_noops(device):
            step()
            with profile(activities=activities) as prof:
                for _ in range(args.profile):
                    step()
                synchronize(device)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        out[who] = {"steps": args.profile, "self_cpu_total_ms": total / 1e3,
                    "top": [{"op": e.key, "self_cpu_ms": e.self_cpu_time_total / 1e3,
                             "calls": e.count} for e in events[:top]]}
        model.to(memory_format=torch.contiguous_format)
    return out


def output_difference(name: str, ours: nn.Module, release: nn.Module, device: torch.device) -> float:
    """Max |ours - release| of eval outputs on one 128x128 image (fp32), ours in the
    layout it is timed in."""
    ours.eval()
    release.eval()
    if setting("fp32", device, False)["ours"]["channels_last"]:
        ours.to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(2)).to(device)
    with cuda_calls_are_noops(device):
        a = ours_infer(ours, x, contextlib.nullcontext)
        b = release_infer(release, x, has_constyle(name), contextlib.nullcontext)
    ours.to(memory_format=torch.contiguous_format)
    return float((a - b).abs().max())


# ---------------------------------------------------------------- CPU peak memory
def child_peak(args: argparse.Namespace, name: str, who: str, mode: str, size: int, batch: int) -> dict:
    """Peak resident set of a fresh process that builds ``who``'s model and runs two
    steps; ``baseline_bytes`` is its peak before the first step."""
    cmd = [sys.executable, __file__, "--release", str(args.release), "--child",
           json.dumps({"name": name, "who": who, "mode": mode, "size": size, "batch": batch}),
           "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_child(args: argparse.Namespace) -> None:
    spec = json.loads(args.child)
    device = torch.device("cpu")
    ours, release = build_pair(spec["name"], load_release(args.release), device)
    model = ours if spec["who"] == "ours" else release
    (release if spec["who"] == "ours" else ours).to("meta")  # drop the other one's weights
    g = torch.Generator().manual_seed(1)
    lq = torch.rand(spec["batch"], 3, spec["size"], spec["size"], generator=g)
    fn = side_step(spec["who"], spec["name"], spec["mode"], model,
                   setting("fp32", device, False)[spec["who"]], lq, lq.clone(), device)
    import gc

    gc.collect()
    if reset_peak() and status_bytes("VmHWM") is not None:
        base = status_bytes("VmRSS")
        peak = lambda: status_bytes("VmHWM")  # noqa: E731
    else:  # no /proc: ru_maxrss, which may still hold the build's peak
        base, peak = maxrss_bytes(), maxrss_bytes
    with cuda_calls_are_noops(device):
        fn()
        fn()
    print(json.dumps({"peak_bytes": peak(), "baseline_bytes": base}))


# ---------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--release", type=Path, required=True, help="checkout of github:Dongqi-Fan/IRConStyle")
    p.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    p.add_argument("--modes", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    p.add_argument("--comparisons", nargs="+", default=["fp32", "bf16", "best"], choices=COMPARISONS)
    p.add_argument("--steps", type=int, default=50, help="timed steps per side (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed-for-the-median steps per side (at least 1 is run)")
    p.add_argument("--batch", type=int, default=16, help="training batch (the paper's)")
    p.add_argument("--batch-restormer", type=int, default=8, help="training batch of the Restormers")
    p.add_argument("--patch", type=int, default=128, help="training patch size")
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="inference image sizes")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls/convs (both sides)")
    p.add_argument("--compile", action="store_true", help="torch.compile ours in the 'best' comparison (CUDA)")
    p.add_argument("--memory", action="store_true", help="CPU: peak RSS of child processes (slow)")
    p.add_argument("--profile", type=int, default=0,
                   help="profile this many fp32 steps per side and model/mode (0: off)")
    p.add_argument("--out", default=None, help="result file name (default sidebyside_<device>.json)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child is not None:
        run_child(args)
        return {}
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    release_classes = load_release(args.release)
    command = shlex.join(["python", "benchmarks/sidebyside.py", *(argv if argv is not None else sys.argv[1:])])
    out = results_dir() / (args.out or f"sidebyside_{device.type}.json")
    result = {"provenance": provenance(command), "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "tf32": args.tf32, "steps": args.steps, "warmup": args.warmup,
              "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "release_checkout": str(args.release), "complete": False,
              "max_abs_output_difference": {}, "rows": [], "profiles": {}}
    for name in args.models:
        ours, release = build_pair(name, release_classes, device)
        diff = output_difference(name, ours, release, device)
        result["max_abs_output_difference"][name] = diff
        print(f"{name}: max |ours - release| = {diff:.2e}", flush=True)
        for mode in args.modes:
            batch = args.batch_restormer if "restormer" in name else args.batch
            cases = [(args.patch, batch)] if mode == "train" else [(s, 1) for s in args.sizes]
            if args.profile:
                size, b = cases[0]
                result["profiles"][f"{name}/{mode}/{size}/b{b}"] = profile_pair(
                    name, mode, ours, release, args, device, size, b)
            for size, b in cases:
                for comparison in args.comparisons:
                    try:
                        row = run_pair(name, mode, comparison, ours, release, args, device, size, b)
                    except SideFailed as exc:  # one side cannot run it: say which, go on
                        row = {"model": name, "mode": mode, "comparison": comparison, "size": size,
                               "batch": b, "error": str(exc)}
                        result["rows"].append(row)
                        print(f"  {mode} {size} b{b} {comparison}: {row['error']}", flush=True)
                        _write(out, result)
                        continue
                    if args.memory and device.type == "cpu" and comparison == "fp32":
                        for who in ("ours", "release"):
                            row[who]["child_memory"] = child_peak(args, name, who, mode, size, b)
                    result["rows"].append(row)
                    print(f"  {mode} {size} b{b} {comparison}: ours {row['ours']['median_s']:.3f} s, "
                          f"release {row['release']['median_s']:.3f} s, "
                          f"speedup {row['speedup']:.3f}", flush=True)
                    _write(out, result)  # after every row: a run cut short keeps what it measured
        del ours, release
    result["complete"] = True
    _write(out, result)
    print(f"wrote {out}")
    return result


def _write(path: Path, result: dict) -> None:
    """Atomic JSON write (a temporary file renamed over the target)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
