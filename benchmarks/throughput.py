"""Training throughput: does data loading keep the accelerator busy?

    python benchmarks/throughput.py --model constyle_nafnet --device auto --batch-size 16 \
        --patch 128 --steps 50 --workers 0 2 --out irconstyle/results/throughput_cuda.json

Writes ``--images`` 1280x720 PNG mosaics of scikit-image photos (GoPro's size; real content,
as PNG decode time depends on it) to a temporary folder, cuts them into 512x512 sub-images
(``make_subimages``), and trains through the trainer itself (``Trainer``: its dataset kinds,
sampler, DataLoader and ``train_step``). Per source (``full``: each item decodes a full image
and crops it; ``sub``: a sub-image) and ``--workers`` count (Colab has 2 CPU cores) it times
``loader`` (the DataLoader alone) and ``end_to_end`` (the loader feeding the training step);
once, ``model_only`` (forward, losses, backward, AdamW, EMA on a synthetic batch already on
the device). ``bottleneck``: the slower of loader and model. Warm-up steps (DataLoader start
included, reported as ``first_batch_s``) are untimed; CUDA is synchronised around the timed
span; AMP and channels_last on CUDA as the trainer. The files sit in the page cache: this
measures decoding, not the disk.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from irconstyle.data import load_photo, make_subimages, motion_blur, motion_kernel, photo_names, \
    write_image
from irconstyle.results import results_dir
from irconstyle.runtime.devices import synchronize
from irconstyle.runtime.environment import environment, provenance
from irconstyle.train import Trainer
from irconstyle.train.config import DataConfig, DataSplits, LogConfig, ModelConfig, TrainConfig
from irconstyle.train.distributed import pick_device

RESULTS = results_dir()


# ------------------------------------------------------------------ a realistic image folder
def _tile(photo: torch.Tensor, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """An h x w view of ``photo``: a random window with the tile's aspect ratio (50-100%
    of the largest, never upscaled more than needed), resized, randomly mirrored."""
    H, W = photo.shape[-2:]
    s_max = min(H / h, W / w)
    s = max(min(1.0, s_max), s_max * (0.5 + 0.5 * float(torch.rand((), generator=g))))
    wh, ww = min(H, round(h * s)), min(W, round(w * s))
    top = int(torch.randint(0, H - wh + 1, (1,), generator=g))
    left = int(torch.randint(0, W - ww + 1, (1,), generator=g))
    x = photo[:, top:top + wh, left:left + ww]
    x = F.interpolate(x[None], size=(h, w), mode="bicubic", antialias=True, align_corners=False)[0]
    return x.flip(-1) if torch.rand((), generator=g) < 0.5 else x


def photo_mosaic(index: int, height: int, width: int) -> torch.Tensor:
    """Image ``index``: a 2x2 mosaic of views of the bundled photos, (3, height, width)."""
    g = torch.Generator().manual_seed(index)
    names = photo_names()
    h2, w2 = height // 2, width // 2
    tiles = [_tile(load_photo(names[(4 * index + k) % len(names)]), hh, ww, g)
             for k, (hh, ww) in enumerate([(h2, w2), (h2, width - w2), (height - h2, w2),
                                          (height - h2, width - w2)])]
    img = torch.cat([torch.cat(tiles[:2], -1), torch.cat(tiles[2:], -1)], -2)
    return img.clamp(0, 1)


def prepare_sources(root: Path, *, count: int, size: tuple[int, int], kind: str, crop: int,
                    step: int) -> dict[str, dict]:
    """Full-size training images (``kind`` paired: blurred lq + sharp gt, as GoPro;
    denoise: clean gt only, noise added on the fly) and their sub-images; per source the
    dataset kwargs and what the folder holds."""
    sides = ["lq", "gt"] if kind == "paired" else ["gt"]
    full = {s: root / "full" / s for s in sides}
    for i in range(count):
        gt = photo_mosaic(i, *size)
        write_image(full["gt"] / f"{i:04d}.png", gt)
        if kind == "paired":
            blur = motion_blur(gt, motion_kernel(10 + 10 * (i % 3), seed=i))
            write_image(full["lq"] / f"{i:04d}.png", blur)
    sub = {s: root / "sub" / s for s in sides}
    t0 = time.perf_counter()
    tiles = make_subimages([full[s] for s in sides], [sub[s] for s in sides], crop=crop,
                           step=step, workers=1, progress=False)
    prep_s, out = time.perf_counter() - t0, {}
    for name, dirs in (("full", full), ("sub", sub)):
        files = sorted(dirs["gt"].glob("*.png"))
        kwargs = ({"lq_dir": str(dirs["lq"]), "gt_dir": str(dirs["gt"])} if kind == "paired"
                  else {"gt_dir": str(dirs["gt"]), "sigma": "random", "sigma_range": [0, 50]})
        out[name] = {"kwargs": kwargs, "images": len(files),
                     "mean_gt_png_bytes": round(sum(f.stat().st_size for f in files) / len(files))}
    out["sub"].update(tiles=tiles, make_subimages_s=round(prep_s, 3))
    return out


# ------------------------------------------------------------------ the trainer's pipeline
def build_trainer(args: argparse.Namespace, data_kwargs: dict, num_images: int, workers: int,
                  out_dir: Path) -> Trainer:
    """A Trainer (release recipe: queue, momentum, EMA 0.999) on one source; ``repeats``
    makes an epoch long enough that the timed steps never restart the DataLoader."""
    need = (args.warmup + args.steps) * args.batch_size
    repeats = max(1, math.ceil(need / num_images))
    train = DataConfig(kind=args.kind, split="train",
                       kwargs={**data_kwargs, "patch_size": args.patch, "repeats": repeats})
    cfg = TrainConfig(recipe="release", model=ModelConfig(name=args.model, kwargs=args.model_kwargs),
                      data=DataSplits(train=train, val=None), batch_size=args.batch_size,
                      num_workers=workers, amp=not args.no_amp, device=args.device,
                      out_dir=str(out_dir), resume="never",
                      log=LogConfig(csv=False, progress=False))
    return Trainer(cfg)


def _timed(fn: Callable[[], object], trainer: Trainer, steps: int, warmup: int) -> dict:
    """Seconds of the first call, then steps/s and images/s over ``steps`` calls after
    ``warmup`` untimed ones (CUDA synchronised at both ends of the timed span)."""
    sync = functools.partial(synchronize, trainer.device)
    t0, first = time.perf_counter(), None
    for i in range(warmup):
        fn()
        if i == 0:
            sync()
            first = round(time.perf_counter() - t0, 4)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    seconds = time.perf_counter() - t0
    return {"first_batch_s": first, "seconds": round(seconds, 4),
            "steps_per_s": round(steps / seconds, 4),
            "images_per_s": round(steps * trainer.cfg.batch_size / seconds, 3)}


def time_loader(trainer: Trainer, steps: int, warmup: int) -> dict:
    """The trainer's own loader (its sampler, workers, pinning) with no model."""
    batches = trainer._batches()
    try:
        r = _timed(lambda: next(batches), trainer, steps, warmup)
    finally:
        batches.close()
    return {"batches_per_s" if k == "steps_per_s" else k: v for k, v in r.items()}


def time_end_to_end(trainer: Trainer, steps: int, warmup: int) -> dict:
    trainer.model.train()
    batches = trainer._batches()
    try:
        return _timed(lambda: trainer.train_step(next(batches)), trainer, steps, warmup)
    finally:
        batches.close()


def time_model(trainer: Trainer, steps: int, warmup: int) -> dict:
    """The training step on one synthetic batch kept on the device (no data loading)."""
    b, p = trainer.cfg.batch_size, trainer.cfg.data.train.kwargs["patch_size"]
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(b, 3, p, p, generator=g)
    batch = {"lq": (gt + 0.1 * torch.randn(b, 3, p, p, generator=g)).to(trainer.device),
             "gt": gt.to(trainer.device)}
    trainer.model.train()
    return _timed(lambda: trainer.train_step(batch), trainer, steps, warmup)


# ------------------------------------------------------------------ the whole benchmark
def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in
             (cpuinfo.read_text().splitlines() if cpuinfo.is_file() else [])
             if line.startswith("model name")]
    return names[0] if names else environment()["processor"]


def run_benchmark(args: argparse.Namespace, work: Path, command: str) -> dict:
    device = pick_device(args.device)
    env = provenance(command)
    sources = prepare_sources(work / "data", count=args.images, size=tuple(args.image_size),
                              kind=args.kind, crop=args.sub_crop, step=args.sub_step)
    runs, trainer = [], None
    for source, info in sources.items():
        for workers in args.workers:
            trainer = build_trainer(args, info["kwargs"], info["images"], workers, work / "run")
            loader = time_loader(trainer, args.steps, args.warmup)
            e2e = time_end_to_end(trainer, args.steps, args.warmup)
            runs.append({"source": source, "workers": workers, "loader": loader, "end_to_end": e2e})
    model_only = time_model(trainer, args.steps, args.warmup)
    for r in runs:
        r["bottleneck"] = "data" if r["loader"]["images_per_s"] < model_only["images_per_s"] else "model"
        r["model_busy_fraction"] = round(r["end_to_end"]["images_per_s"] / model_only["images_per_s"], 3)
    cfg = trainer.cfg
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "note")}
    settings.update(amp_dtype=str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else None,
                    channels_last=trainer.channels_last, recipe=cfg.recipe,
                    queue_size=cfg.constyle.queue_size, ema_decay=cfg.ema.decay,
                    pin_memory=device.type == "cuda")
    env["load_average_1m_after"] = environment()["load_average_1m"]
    sources = {k: {n: v for n, v in info.items() if n != "kwargs"} for k, info in sources.items()}
    return {"note": args.note, "command": command,
            "git_commit": env["git_commit"], "device": str(device), "device_name": _device_name(device),
            "environment": env, "settings": settings, "sources": sources,
            "model_only": model_only, "runs": runs}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="constyle_nafnet", help="zoo name")
    p.add_argument("--model-kwargs", type=json.loads, default={}, help="builder kwargs as JSON")
    p.add_argument("--device", default="auto", help="auto = cuda > mps > cpu")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--steps", type=int, default=50, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before each measurement")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers")
    p.add_argument("--kind", choices=["paired", "denoise"], default="paired",
                   help="paired: GoPro-like lq+gt PNGs; denoise: clean PNGs + AWGN (DFWB-like)")
    p.add_argument("--images", type=int, default=24, help="full-size training images to write")
    p.add_argument("--image-size", type=int, nargs=2, default=[720, 1280], metavar=("H", "W"))
    p.add_argument("--sub-crop", type=int, default=512)
    p.add_argument("--sub-step", type=int, default=384)
    p.add_argument("--threads", type=int, help="torch threads of the main process")
    p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA (the release trained so)")
    p.add_argument("--note", default="", help="free text stored in the JSON")
    p.add_argument("--out", type=Path, help="default: results/throughput_<device>.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.patch > min(args.sub_crop, *args.image_size):
        raise SystemExit(f"--patch {args.patch} is larger than the sub-images or images")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="irconstyle_throughput_") as tmp:
        command = shlex.join(["python", "benchmarks/throughput.py",
                              *(sys.argv[1:] if argv is None else argv)])
        result = run_benchmark(args, Path(tmp), command)
    out = args.out or RESULTS / f"throughput_{pick_device(args.device).type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    m = result["model_only"]["images_per_s"]
    print(f"model only: {m:.1f} images/s on {result['device_name']}")
    for r in result["runs"]:
        print(f"{r['source']:4s} workers {r['workers']}: loader {r['loader']['images_per_s']:8.1f}  "
              f"end-to-end {r['end_to_end']['images_per_s']:8.1f} images/s  "
              f"bottleneck {r['bottleneck']}  busy {r['model_busy_fraction']:.2f}")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
