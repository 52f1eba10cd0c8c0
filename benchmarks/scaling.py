"""How the package's cost scales (issue 18.5): training throughput against batch size,
inference time and peak memory against image size, each at 1 and 2 CPU threads.

    python benchmarks/scaling.py --model constyle_nafnet --out scaling_cpu.json

The model is built at the release's defaults (ConStyle-NAFNet: width 48 and the release's
block counts) or with ``--model-kwargs`` (JSON, e.g. the CPU campaign's width-16 network), in
fp32, on the CPU (or ``--device``), in the layout and with the AdamW kernel the package
uses by default there (``channels_last`` and the fused kernel on a CPU or CUDA).  A
training step is what ``Trainer.train_step`` does without EMA, grad scaler and scheduler:
forward with the momentum encoder and queue, L1 + InfoNCE + content + style, backward, AdamW.  Inference is
``model(lq)`` in eval mode under ``no_grad``.  Every point is the median of ``--reps``
timed repetitions after ``--warmup`` untimed ones (on CUDA synchronised around each); the
thread count is set with ``torch.set_num_threads`` before each group.  Peak memory of an
inference is the peak resident set (VmHWM) of a child process that builds the model
and restores one image of that size, minus the same child's peak before the forward.
Random images: time and memory do not depend on content.
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time

import torch

from irconstyle import build_model
from irconstyle.method.losses import restoration_loss
from irconstyle.results import results_dir
from irconstyle.runtime.devices import fast_layout, fused_optimizer_supported, synchronize
from irconstyle.runtime.environment import provenance
from irconstyle.runtime.memory import peak_rss_bytes


def _median_time(fn, device: torch.device, reps: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
            "max_s": round(max(times), 4), "n": reps}


def _build(name: str, kwargs: dict, *, train: bool) -> torch.nn.Module:
    if "constyle" in name and not train:
        kwargs = {**kwargs, "constyle_train": False}
    return build_model(name, **kwargs)


def _fast(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """On ``device``, in the package's default layout there (as the trainer and
    ``load_model`` put it)."""
    return fast_layout(model.to(device))


def train_points(name: str, kwargs: dict, device: torch.device, batches: list[int], patch: int,
                 reps: int, warmup: int) -> list[dict]:
    torch.manual_seed(0)
    model = _fast(_build(name, kwargs, train=True), device).train()
    fused = {"fused": True} if fused_optimizer_supported(device) else {}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4,
                            weight_decay=1e-4, **fused)
    rows = []
    for batch in batches:
        gt = torch.rand(batch, 3, patch, patch, device=device)
        lq = (gt + 0.1 * torch.randn_like(gt)).clamp_(0, 1)

        def step() -> None:
            out = model(lq, gt)
            terms = restoration_loss(out.image, gt, out.constyle)
            opt.zero_grad(set_to_none=True)
            terms.total.backward()
            opt.step()

        t = _median_time(step, device, reps, warmup)
        rows.append({"batch": batch, "patch": patch, **t,
                     "images_per_s": round(batch / t["median_s"], 3)})
    return rows


def infer_points(name: str, kwargs: dict, device: torch.device, sizes: list[int], reps: int,
                 warmup: int) -> list[dict]:
    torch.manual_seed(0)
    model = _fast(_build(name, kwargs, train=False), device).eval()
    rows = []
    for size in sizes:
        lq = torch.rand(1, 3, size, size, device=device)
        with torch.no_grad():
            t = _median_time(lambda: model(lq), device, reps, warmup)
        rows.append({"size": size, "megapixels": round(size * size / 1e6, 4), **t})
    return rows


def peak_child(name: str, kwargs: dict, size: int, threads: int) -> dict:
    """Run in a fresh process: the growth of the peak resident set over one forward."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = _fast(_build(name, kwargs, train=False), torch.device("cpu")).eval()
    lq = torch.rand(1, 3, size, size)
    before = peak_rss_bytes()
    with torch.no_grad():
        model(lq)
    after = peak_rss_bytes()
    return {"size": size, "peak_growth_bytes": after - before, "image_bytes": lq.numel() * 4}


def memory_points(args: argparse.Namespace, threads: int) -> list[dict]:
    rows = []
    for size in args.sizes:
        run = subprocess.run([sys.executable, __file__, "--model", args.model,
                              "--model-kwargs", json.dumps(args.model_kwargs),
                              "--child", str(size), str(threads)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
    return rows


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="constyle_nafnet")
    p.add_argument("--model-kwargs", type=json.loads, default={},
                   help="JSON keyword arguments of build_model (default: the release's size)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batches", type=int, nargs="+", default=[2, 4, 8, 16])
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default="scaling_cpu.json")
    p.add_argument("--memory-only", action="store_true",
                   help="re-measure only the memory of the existing --out file (keeps its timings)")
    p.add_argument("--child", type=int, nargs=2, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        print(json.dumps(peak_child(args.model, args.model_kwargs, *args.child)))
        return {}
    pkg = results_dir()
    command = shlex.join(["python", "benchmarks/scaling.py",
                          *(argv if argv is not None else sys.argv[1:])])
    if args.memory_only:  # re-measure the memory of an existing result, keep its timings
        result = json.loads((pkg / args.out).read_text())
        for g in result["groups"]:
            g["memory"] = memory_points(args, g["threads"])
        result["memory_provenance"] = provenance(command)
        (pkg / args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps([g["memory"] for g in result["groups"]]))
        return result
    device = torch.device(args.device)
    groups = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        train = train_points(args.model, args.model_kwargs, device, args.batches, args.patch,
                             args.reps, args.warmup)
        infer = infer_points(args.model, args.model_kwargs, device, args.sizes, args.reps, args.warmup)
        memory = memory_points(args, threads) if device.type == "cpu" else []
        groups.append({"threads": threads, "train": train, "inference": infer, "memory": memory})
        print(json.dumps(groups[-1]), flush=True)
    result = {"provenance": provenance(command), "model": args.model,
              "model_kwargs": args.model_kwargs, "device": str(device),
              "dtype": "float32", "groups": groups}
    (pkg / args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {pkg / args.out}")
    return result


if __name__ == "__main__":
    main()
