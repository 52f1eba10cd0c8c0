"""The README's first picture: a degraded test photo, its restoration by a network this
package trained, and the clean photo, with PSNR.

    python docs/make_readme_figure.py --weights PATH/last.pt   # a checkpoint of the package
    python docs/make_readme_figure.py --steps 300              # or train one first (CPU, minutes)

The photos are the medium set's 12 test photos (never trained on), degraded by the
package's own models (``--task derain`` or ``denoise``). Every test photo is restored;
the figure shows the one with the median PSNR gain (the 7th of 12 by gain), a rule fixed
before looking, so the picture is typical, not the best case. PSNR is BasicSR's RGB PSNR
(``irconstyle.evaluation.metrics.psnr``) on the 256 px photos.

Writes ``docs/readme_figure.png`` (kept under 300 KB) and ``docs/readme_figure.json``: the
PSNR of every test photo, which is shown and why, the weights (path, SHA-256, training
step, model and its size, training data) and the command, commit and environment.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

from irconstyle.data.medium import medium_dataset  # noqa: E402
from irconstyle.evaluation.evaluate import load_model, restore  # noqa: E402
from irconstyle.evaluation.metrics import psnr  # noqa: E402
from irconstyle.runtime.environment import provenance  # noqa: E402
from irconstyle.train.checkpoint import load_checkpoint  # noqa: E402

HERE = Path(__file__).resolve().parent
MAX_BYTES = 300_000
TASK_WORDS = {"derain": ("rainy", "derained"), "denoise": ("noisy (sigma 25)", "denoised")}


def train_weights(task: str, steps: int, out_dir: Path) -> Path:
    """A short run of the smoke preset on the medium set, through the package's CLI."""
    cmd = [sys.executable, "-m", "irconstyle", "train", "smoke/constyle_nafnet",
           "data.train.kind=medium", f"data.train.kwargs={{task: {task}, patch_size: 64, repeats: 64}}",
           "data.val.kind=medium", f"data.val.kwargs={{task: {task}}}",
           f"total_iters={steps}", f"val_every={steps}", f"ckpt_every={steps}",
           f"out_dir={out_dir}", "log.progress=false"]
    print("training:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return out_dir / "last.pt"


def describe_weights(path: Path) -> dict:
    """What the checkpoint says about itself: step, model, its size, training data."""
    info: dict = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    try:
        ckpt = load_checkpoint(path)
    except Exception:  # a safetensors export or a plain state dict: no training record
        return info
    cfg = yaml.safe_load(ckpt.get("config") or "") or {}
    info.update(step=int(ckpt["step"]), model=cfg.get("model"),
                train_data=(cfg.get("data") or {}).get("train"),
                batch_size=cfg.get("batch_size"), recipe=cfg.get("recipe"))
    return info


def restore_test_set(model: torch.nn.Module, task: str) -> list[dict]:
    rows = []
    data = medium_dataset(split="test", task=task)
    with torch.inference_mode():
        for i in range(len(data)):
            item = data[i]
            out = restore(model, item["lq"][None]).clamp(0, 1)[0]
            rows.append({"name": item["name"], "lq": item["lq"], "gt": item["gt"], "out": out,
                         "psnr_input": psnr(item["lq"], item["gt"]),
                         "psnr_restored": psnr(out, item["gt"])})
    return rows


def median_gain(rows: list[dict]) -> dict:
    ranked = sorted(rows, key=lambda r: (r["psnr_restored"] - r["psnr_input"], r["name"]))
    return ranked[len(ranked) // 2]


def figure_png(row: dict, task: str, caption: str) -> bytes:
    """Three panels at the photos' own resolution; palette PNG if full colour is too big."""
    words = TASK_WORDS[task]
    panels = [(row["lq"], f"{words[0]}: {row['psnr_input']:.2f} dB"),
              (row["out"], f"{words[1]}: {row['psnr_restored']:.2f} dB"),
              (row["gt"], "clean (reference)")]
    h, w = row["gt"].shape[-2:]
    dpi = 100
    lines = textwrap.wrap(caption, width=int(3 * w / 5.2))
    fig_h = h / dpi + 0.45 + 0.16 * len(lines)
    fig, axes = plt.subplots(1, 3, figsize=(3 * w / dpi + 0.3, fig_h), dpi=dpi)
    for ax, (img, title) in zip(axes, panels):
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.text(0.5, 0.04 / fig_h, "\n".join(lines), ha="center", va="bottom", fontsize=7.5)
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.3 / fig_h,
                        bottom=(0.1 + 0.16 * len(lines)) / fig_h, wspace=0.03)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    data = buf.getvalue()
    if len(data) <= MAX_BYTES:
        return data
    rgb = Image.open(io.BytesIO(data)).convert("RGB")
    out = io.BytesIO()
    rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, help="a checkpoint of this package (last.pt)")
    parser.add_argument("--steps", type=int, default=300,
                        help="without --weights: train the smoke preset this many steps")
    parser.add_argument("--task", choices=sorted(TASK_WORDS), default="derain")
    parser.add_argument("--out", type=Path, default=HERE / "readme_figure.png")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or train_weights(args.task, args.steps, Path(tmp) / "run")
        if not weights.is_file():
            parser.error(f"--weights {weights}: no such file")
        info = describe_weights(weights)
        if args.weights is None:
            info["path"] = f"trained by this script: {args.steps} steps (temporary folder)"
        model, label = load_model(weights=weights, device="cpu")
        trained_on = (info.get("train_data") or {}).get("kwargs", {}).get("task")
        if trained_on not in (None, args.task):
            parser.error(f"{weights} was trained for {trained_on!r}, not --task {args.task}")
        rows = restore_test_set(model, args.task)

    shown = median_gain(rows)
    n_params = sum(p.numel() for p in model.parameters())
    width = ((info.get("model") or {}).get("kwargs") or {}).get("width")
    step = info.get("step")
    caption = (f"ConStyle-NAFNet (width {width}, {n_params / 1e6:.2f} M parameters) trained by "
               f"this package for {step} steps on a CPU, on the medium set's 27 training photos; "
               f"'{shown['name']}' is a test photo (median gain of {len(rows)}). "
               f"A small-scale run, not the paper's model.")
    png = figure_png(shown, args.task, caption)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(png)

    gains = [r["psnr_restored"] - r["psnr_input"] for r in rows]
    record = {
        "figure": args.out.name, "bytes": len(png), "task": args.task,
        "shown": {"photo": shown["name"], "psnr_input_db": shown["psnr_input"],
                  "psnr_restored_db": shown["psnr_restored"],
                  "rule": "test photo with the median PSNR gain (index n//2 of the gains sorted "
                          "ascending, ties by name)"},
        "metric": "irconstyle.evaluation.metrics.psnr: BasicSR PSNR on RGB, uint8-rounded, crop 0, 256 px photos",
        "weights": {**info, "variant": label.rsplit("[", 1)[-1].rstrip("]"),
                    "parameters_inference": n_params},
        "test_set": [{"photo": r["name"], "psnr_input_db": r["psnr_input"],
                      "psnr_restored_db": r["psnr_restored"]} for r in rows],
        "mean_psnr_input_db": float(np.mean([r["psnr_input"] for r in rows])),
        "mean_psnr_restored_db": float(np.mean([r["psnr_restored"] for r in rows])),
        "photos_improved": sum(g > 0 for g in gains),
        "caption": caption,
        "provenance": provenance(" ".join(["python", "docs/make_readme_figure.py", *(argv or sys.argv[1:])])),
    }
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{args.out} ({len(png)} bytes): {shown['name']} {shown['psnr_input']:.2f} -> "
          f"{shown['psnr_restored']:.2f} dB; mean over {len(rows)} test photos "
          f"{record['mean_psnr_input_db']:.2f} -> {record['mean_psnr_restored_db']:.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
