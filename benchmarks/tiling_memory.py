"""Peak memory of tiled restoration against image size (issue 18.4), and how well the
code of a bounded-size resample agrees with the whole-image code.

Each size runs in a fresh child process (a tiny ConStyle-NAFNet, width 8, one block per
level, random weights): it builds a random image of the requested megapixels, records
its peak resident set (``ru_maxrss``) as the baseline, runs
:func:`irconstyle.evaluation.tiling.tiled_forward`, and reports the new peak.  ``growth_bytes`` is
what the restoration added on top of the image; ``image_bytes`` is one fp32 image, for
scale (the output is one image).  Each size runs twice: with glibc's default allocator
settings ("default") and with the fixed mmap threshold that ``irconstyle restore --tile N --low-memory``
sets (:func:`irconstyle.evaluation.tiling.return_freed_memory`, "fixed"): by default glibc's heap
fragments and grows with the number of tiles.

Agreement: for each photo given with ``--photos``, the whole-image code against the
code of the photo downscaled to ``--encode-max-pixels`` (cosine similarity and
relative L2 error).
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

TINY = dict(width=8, left_blk_num=(1, 1, 1), bottom_blk_num=1, right_blk_num=(1, 1, 1),
            constyle_train=False)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def child(megapixels: float, tile: int, encode_max_pixels: int | None, allocator: str) -> dict:
    import irconstyle
    from irconstyle.evaluation.tiling import return_freed_memory, tiled_forward
    from irconstyle.runtime.memory import maxrss_bytes

    if allocator == "fixed" and not return_freed_memory():
        raise RuntimeError("glibc's mallopt is not available here")

    torch.manual_seed(0)
    model = irconstyle.build_model("constyle_nafnet", **TINY).eval()
    side = int(round((megapixels * 1e6) ** 0.5))
    h, w = side, int(side * 4 / 3) // 8 * 8  # a landscape photo's aspect, like the issue's
    h = int(megapixels * 1e6 / w)
    lq = torch.rand(1, 3, h, w)
    base = maxrss_bytes()
    t0 = time.perf_counter()
    out = tiled_forward(model, lq, tile=tile, **({"encode_max_pixels": encode_max_pixels}
                                                 if encode_max_pixels else {}))
    seconds = time.perf_counter() - t0
    assert out.shape == lq.shape
    return {"megapixels": h * w / 1e6, "height": h, "width": w, "tile": tile,
            "baseline_bytes": base, "peak_bytes": maxrss_bytes(),
            "growth_bytes": maxrss_bytes() - base,
            "image_bytes": lq.numel() * 4, "seconds": round(seconds, 1), "allocator": allocator}


def agreement(photos: list[Path], max_pixels: int, weights: Path | None) -> list[dict]:
    """With ``weights`` (a trained ConStyle model's checkpoint): an untrained encoder's
    code hardly depends on the image, so only a trained one tests the approximation."""
    import irconstyle
    from irconstyle.evaluation.evaluate import load_model, read_input
    from irconstyle.nets.padding import pad_to_multiple
    from irconstyle.evaluation.tiling import bounded_code

    torch.manual_seed(0)
    model = (load_model(weights=weights)[0] if weights is not None
             else irconstyle.build_model("constyle_nafnet", constyle_train=False)).eval()
    rows = []
    for p in photos:
        x = read_input(p)[None]
        h, w = x.shape[-2:]
        seen = []
        encode = model.constyle.encode
        with torch.no_grad():
            a = encode(pad_to_multiple(x, 8)).code  # what the untiled forward computes
            model.constyle.encode = lambda t: (seen.append(list(t.shape[-2:])), encode(t))[1]
            b = bounded_code(model.constyle, x, max_pixels)  # what tiled_forward uses
            model.constyle.encode = encode
        rows.append({"photo": p.name, "size": [h, w], "resampled": seen[0],
                     "cosine": float(F.cosine_similarity(a, b).item()),
                     "rel_l2": float((a - b).norm() / a.norm())})
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--megapixels", type=float, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--default-megapixels", type=float, nargs="+", default=None,
                   help="sizes run with glibc's default allocator settings (default: --megapixels)")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--photos", type=Path, nargs="*", default=[])
    p.add_argument("--encode-max-pixels", type=int, default=None)
    p.add_argument("--weights", type=Path, default=None,
                   help="a trained ConStyle model (checkpoint) for the code agreement")
    p.add_argument("--out", default="tiling_memory.json")
    p.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--allocator", choices=["default", "fixed"], default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.tile, args.encode_max_pixels, args.allocator)))
        return
    from irconstyle.results import results_dir
    from irconstyle.runtime.environment import provenance
    from irconstyle.evaluation.tiling import ENCODE_MAX_PIXELS

    rows = []
    runs = [("fixed", mp) for mp in args.megapixels]
    runs += [("default", mp) for mp in (args.default_megapixels or args.megapixels)]
    for allocator, mp in runs:
        extra = ["--encode-max-pixels", str(args.encode_max_pixels)] if args.encode_max_pixels else []
        run = subprocess.run([sys.executable, __file__, "--child", str(mp), "--tile", str(args.tile),
                              "--allocator", allocator, *extra],
                             capture_output=True, text=True, check=False)
        row = (json.loads(run.stdout.strip().splitlines()[-1]) if run.returncode == 0
               else {"megapixels": mp, "allocator": allocator,
                     "error": (run.stderr.strip().splitlines() or ["?"])[-1]})
        print(row, flush=True)
        rows.append(row)
    max_pixels = args.encode_max_pixels or ENCODE_MAX_PIXELS
    agree = agreement(list(args.photos), max_pixels, args.weights) if args.photos else []
    for r in agree:
        print(r, flush=True)
    command = shlex.join(["python", "benchmarks/tiling_memory.py", *(argv if argv is not None else sys.argv[1:])])
    folder = results_dir()
    result = {"provenance": provenance(command), "model": {"name": "constyle_nafnet", **TINY},
              "encode_max_pixels": max_pixels, "sizes": rows, "code_agreement": agree,
              "agreement_weights": None if args.weights is None else {
                  "path": str(args.weights), "sha256": _sha256(args.weights)}}
    (folder / args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {folder / args.out}")


if __name__ == "__main__":
    main()
