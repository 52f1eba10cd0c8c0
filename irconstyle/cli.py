"""The command line: ``irconstyle train | evaluate | restore | models | experiment`` (also
``python -m irconstyle``).

Only argument parsing and printing live here; every action is a package function
(``irconstyle.train.run``, ``irconstyle.evaluation.evaluate.evaluate``, ``restore_files``,
``irconstyle.nets.model_table.model_table``), so a notebook never needs this module.

Expected failures (a missing or broken file, an unknown model, a bad override) end
with exit status 1 and one line ``irconstyle: error: <file or name>: <problem>`` on
stderr, never a traceback; ``--debug`` re-raises instead.  Usage errors exit with 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "build_parser"]

PROG = "irconstyle"


class CLIError(Exception):
    """A problem with the command line's own input (bad KEY=VALUE, missing module...)."""


# ----------------------------------------------------------------------------- parser
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _add_model_args(p: argparse.ArgumentParser, *, weights_required: bool = False,
                    several_weights: bool = False) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="NAME",
                   help="zoo model name (see `irconstyle models`); optional when the weights "
                        "file records its model (our checkpoints and .safetensors exports)")
    g.add_argument("--weights", metavar="PATH", required=weights_required,
                   nargs="+" if several_weights else None,
                   help="weights file: our training checkpoint (.pt, holding 'model' and 'ema'), "
                        "a .safetensors export, a plain state dict, or the authors' BasicSR .pth "
                        "(keys 'params'/'params_ema'; needs --model). Without it the model keeps "
                        "its random initialisation"
                        + ("; several files are scored in turn and compared in one table"
                           if several_weights else ""))
    g.add_argument("--model-arg", metavar="KEY=VALUE", action="append", default=[],
                   help="builder keyword argument, VALUE parsed as YAML (e.g. width=32, "
                        "left_blk_num=[1,1,1]); repeatable; overrides what the weights file records")
    g.add_argument("--device", metavar="DEV", default=None,
                   help="torch device (default: cuda if available, else cpu)")


def _add_inference_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("inference")
    g.add_argument("--tile", metavar="N", type=_positive_int, default=None,
                   help="restore in N x N tiles (rounded to the model's size factor) to bound "
                        "memory; ConStyle's code is computed once on the whole image")
    g.add_argument("--tile-overlap", metavar="N", type=_nonneg_int, default=None,
                   help="overlap between neighbouring tiles, blended with a smooth window "
                        "(default: min(32, tile/4))")
    g.add_argument("--self-ensemble", action="store_true",
                   help="average the 8 flips/rotations of the input (x8 slower)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="IRConStyle: ConStyle-based image restoration (train, evaluate, "
                               "restore images, list models).")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks instead of one-line error messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # --debug is accepted after the command too (SUPPRESS keeps the top-level value).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show Python tracebacks instead of one-line error messages")

    p = sub.add_parser("train", parents=[common], help="train a model from a YAML config",
                       description="Train from a YAML file or a shipped preset "
                                   "(e.g. smoke/constyle_nafnet), with optional overrides.")
    p.add_argument("config", metavar="CONFIG", help="YAML file or preset name")
    p.add_argument("overrides", metavar="KEY=VALUE", nargs="*",
                   help="config overrides with dotted keys, e.g. total_iters=100 model.kwargs.width=16")

    p = sub.add_parser("evaluate", parents=[common], help="score a model on a benchmark",
                       description="Restore a benchmark's images and report PSNR/SSIM on RGB and "
                                   "Y under a named protocol; EMA and raw weights are both "
                                   "scored when the checkpoint has both; several --weights files "
                                   "are compared in one table.")
    _add_model_args(p, several_weights=True)
    g = p.add_argument_group("data")
    g.add_argument("--benchmark", metavar="NAME", required=True,
                   help="benchmark name (CBSD68, Kodak24, McMaster, Urban100, GoPro, HIDE, "
                        "RealBlur_J, RealBlur_R, Rain100H, Rain100L, Test100, Test1200, "
                        "Test2800, SOTS) or minibench_<task> (denoise, deblur, derain, dehaze: "
                        "the offline mini-benchmark, no folders needed)")
    g.add_argument("--data-root", metavar="DIR",
                   help="a data root prepared by data_scripts/ (the canonical layout); "
                        "replaces --lq/--gt/--root")
    g.add_argument("--lq", metavar="DIR", help="folder of degraded images (deblur, derain, dehaze)")
    g.add_argument("--gt", metavar="DIR",
                   help="folder of clean images (all tasks; denoising adds noise to these)")
    g.add_argument("--root", metavar="DIR",
                   help="deraining: a set's root folder in any published layout")
    g.add_argument("--name-seeded-noise", action="store_true",
                   help="denoising: seed the noise by image name instead of the release's and "
                        "Restormer's np.random.seed(0) per image (the default, which reproduces "
                        "the published noisy inputs under every protocol)")
    g.add_argument("--sigma", metavar="S", type=float, default=25.0,
                   help="denoising noise level on the 0-255 scale (default: 25)")
    g = p.add_argument_group("scoring")
    g.add_argument("--protocol", choices=("release", "basicsr", "canonical"), default="basicsr",
                   help="release: the authors' code (gt padded like lq, metrics on padded "
                        "images); basicsr: same metrics on the true size (default); canonical: "
                        "each benchmark's community script (MATLAB SSIM, RealBlur ECC alignment, "
                        "rounded Y for deraining)")
    g.add_argument("--variant", choices=("all", "ema", "raw", "weights"), default="all",
                   help="which weights of the file to score (default: all it holds)")
    g.add_argument("--out", metavar="DIR", help="write results.json and results.csv here "
                                                "(one sub-folder per weight variant)")
    g.add_argument("--save-images", action="store_true", help="also save restored PNGs under --out")
    _add_inference_args(p)

    p = sub.add_parser("restore", parents=[common], help="restore an image or a folder of images",
                       description="Restore image files (PNG, JPEG, BMP, TIFF, WebP, or .npy "
                                   "arrays in [0, 1]) or every image of a folder; writes "
                                   "<name>.png into --out.")
    p.add_argument("inputs", metavar="INPUT", nargs="+", help="image file(s) and/or folder(s)")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder")
    p.add_argument("--variant", choices=("ema", "raw", "weights"), default=None,
                   help="which weights of the file to use (default: ema when present)")
    p.add_argument("--low-memory", action="store_true",
                   help="with --tile: give freed tile buffers back to the system at once, so "
                        "memory does not grow with the number of tiles (glibc only; measured "
                        "about 2x slower on a tiny model, irconstyle/results/tiling_memory.json)")
    _add_model_args(p)
    _add_inference_args(p)

    p = sub.add_parser("experiment", parents=[common],
                       help="run an experiment file (arms x seeds), one JSON record per run",
                       description="Train and score every (task, arm, seed) of an experiment "
                                   "file (irconstyle.experiments.run_experiment); finished runs "
                                   "(their record exists) are skipped, an interrupted one resumes "
                                   "from its checkpoint.")
    p.add_argument("file", metavar="FILE", help="experiment YAML file")
    p.add_argument("--dry-run", action="store_true",
                   help="validate every run's config and print the plan; train nothing")
    p.add_argument("--only", metavar="ARM", action="append", default=None,
                   help="run only this arm (repeatable)")
    p.add_argument("--jobs", metavar="N", type=_positive_int, default=1,
                   help="train N runs at once in worker processes, each with cpu_count/N "
                        "torch threads (default: 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--out-dir", metavar="DIR", default=None,
                   help="write records and training folders here instead of the file's "
                        "out_dir (a campaign run from a clean worktree keeps that tree clean; "
                        "copy the records back afterwards)")
    p.add_argument("--summary", action="store_true",
                   help="train nothing: write summary.md and summary.json (each arm against the "
                        "reference, two-way random-effects 95%% intervals over seeds and images) "
                        "into the experiment's out_dir from the records it has")
    p.add_argument("--reference", metavar="ARM", default=None,
                   help="with --summary: the reference arm (default: the file's first arm)")
    p.add_argument("--reference-results", metavar="DIR", default=None,
                   help="with --summary: the folder of the reference arm's records when they "
                        "are another experiment's (e.g. results/cpu_campaign)")

    p = sub.add_parser("latent", parents=[common],
                       help="ConStyle codes of the medium test photos, clean and degraded",
                       description="Encode the medium set's test photos clean and under each "
                                   "degradation at several strengths "
                                   "(irconstyle.evaluation.degraded_codes) with each encoder given; "
                                   "write the codes (.npz) and the latent measures on raw and "
                                   "normalised codes with provenance (.json beside it).")
    p.add_argument("--weights", metavar="FILE", nargs="*", default=[],
                   help="weights files holding a ConStyle encoder (a run's last.pt, best.pt or "
                        ".safetensors export)")
    p.add_argument("--variant", choices=("ema", "raw"), default=None,
                   help="which weights of each file (default: ema when present)")
    p.add_argument("--untrained-seed", metavar="SEED", type=_nonneg_int, action="append",
                   default=[], help="also encode with an untrained encoder from this seed "
                                    "(repeatable)")
    p.add_argument("--out", metavar="FILE.npz", required=True, help="codes file to write")
    p.add_argument("--device", metavar="DEVICE", default="cpu", help="device (default: cpu)")

    p = sub.add_parser("models", parents=[common],
                       help="list the models with parameter counts and MACs",
                       description="The model table (irconstyle.nets.model_table.model_table): "
                                   "parameters of the inference build, multiply-accumulates of "
                                   "one eval forward (convolutions and matrix products) and CPU "
                                   "time. The constyle_*_ablated controls have no ConStyle: its "
                                   "code and three feature maps are learned constants (a code "
                                   "of 128 values and per-channel vectors of 32, 64 and 128 "
                                   "channels broadcast over each map's space; 352 parameters "
                                   "in place of the encoder's 1,190,832).")
    p.add_argument("names", metavar="NAME", nargs="*", help="models to list (default: all)")
    p.add_argument("--model-arg", metavar="KEY=VALUE", action="append", default=[],
                   help="builder keyword argument for every NAME given, VALUE parsed as YAML "
                        "(e.g. width=16); repeatable; needs NAMEs (the arguments differ "
                        "between families)")
    p.add_argument("--input-size", metavar="N", type=_positive_int, default=256,
                   help="square input side for MACs and timing (default: 256)")
    p.add_argument("--no-time", action="store_true", help="skip the CPU timing")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


# ----------------------------------------------------------------------------- helpers
def _parse_pairs(items: Sequence[str], what: str) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not key.strip().isidentifier():
            raise CLIError(f"bad {what} {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(text) if text.strip() else text
        except yaml.YAMLError:
            raise CLIError(f"bad {what} {item!r}: VALUE is not valid YAML") from None
    return out


def _device(name: str | None, label: str = "--device") -> str:
    from .runtime.devices import resolve_device

    try:  # a bad --device is a usage error, not an internal one deep inside torch
        return str(resolve_device(name))
    except ValueError as exc:
        raise CLIError(f"{label}: {exc}") from None


def _load_model(args: argparse.Namespace, variant: str | None):
    from .evaluation.evaluate import load_model

    kwargs = _parse_pairs(args.model_arg, "--model-arg")
    return load_model(args.model, args.weights, variant=variant, device=_device(args.device),
                      **kwargs)


def _num(v: Any, digits: int) -> str:
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.{digits}f}"
    return str(v)


# ----------------------------------------------------------------------------- commands
def _cmd_train(args: argparse.Namespace) -> int:
    try:
        from .runtime.profiles import cap_batch, cap_steps
        from .train import load_config, run
    except ImportError as exc:
        raise CLIError(f"training is not available: {exc}") from None
    cfg = load_config(args.config, list(args.overrides))
    if cfg.device != "auto":
        _device(cfg.device, "device")  # a bad device fails here, in one line, before any work
    # $IRCONSTYLE_MAX_STEPS / $IRCONSTYLE_MAX_BATCH cap a run as they cap the notebooks (a
    # smoke test of a command, e.g. the README's); the scaled recipe then fits the capped run.
    capped = dataclasses.replace(cfg, total_iters=cap_steps(cfg.total_iters),
                                 batch_size=cap_batch(cfg.batch_size))
    if capped != cfg:
        print(f"{PROG}: capped by the environment to {capped.total_iters} steps of batch "
              f"{capped.batch_size}", file=sys.stderr)
    result = run(capped)
    print(json.dumps(result, indent=2, default=str))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.evaluate import evaluate, evaluation_dataset, load_model
    from .evaluation.protocols import convention
    from .checkpoints.weights import read_weights

    convention(args.benchmark, args.protocol)  # an unknown benchmark fails before any work
    data = evaluation_dataset(args.benchmark, data_root=args.data_root, lq_dir=args.lq,
                              gt_dir=args.gt, root=args.root, sigma=args.sigma,
                              reference_noise=not args.name_seeded_noise)
    kwargs = _parse_pairs(args.model_arg, "--model-arg")
    device = _device(args.device)
    files = args.weights or [None]
    weights = [read_weights(f) if f else None for f in files]  # every file checked before any work
    rows = []
    for i, (path, w) in enumerate(zip(files, weights)):
        if w is None:
            variants: list[str | None] = [None]
        elif args.variant == "all":
            variants = list(w.variants)
        else:
            variants = [args.variant]
        for variant in variants:
            model, label = load_model(args.model, w, variant=variant, device=device, **kwargs)
            out = None
            if args.out:
                out = Path(args.out)
                if len(files) > 1:
                    out = out / f"{i}_{Path(path).parent.name}_{Path(path).stem}"
                if len(variants) > 1:
                    out = out / (variant or "untrained")
            result = evaluate(model, data, protocol=args.protocol, benchmark=args.benchmark,
                              tile=args.tile, overlap=args.tile_overlap,
                              self_ensemble=args.self_ensemble, save_dir=out,
                              save_images=args.save_images, weights=label,
                              progress=lambda name, row: print(
                                  f"  {name}: PSNR {_num(row['psnr_rgb'], 2)} / Y {_num(row['psnr_y'], 2)}",
                                  file=sys.stderr))
            m = result["mean"]
            rows.append((label, m))
            print(f"{args.benchmark} [{args.protocol}, primary {result['primary'].upper()}] {label}: "
                  f"PSNR {_num(m['psnr_rgb'], 3)} SSIM {_num(m['ssim_rgb'], 4)} (RGB) | "
                  f"PSNR {_num(m['psnr_y'], 3)} SSIM {_num(m['ssim_y'], 4)} (Y) "
                  f"over {result['n_images']} images")
            if out is not None:
                print(f"  results: {out / 'results.json'}, {out / 'results.csv'}")
    if len(rows) > 1:
        width = max(len(label) for label, _ in rows)
        print(f"\n{'weights':<{width}}  PSNR-RGB  SSIM-RGB  PSNR-Y  SSIM-Y")
        for label, m in rows:
            print(f"{label:<{width}}  {_num(m['psnr_rgb'], 3):>8}  {_num(m['ssim_rgb'], 4):>8}  "
                  f"{_num(m['psnr_y'], 3):>6}  {_num(m['ssim_y'], 4):>6}")
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    from .evaluation.evaluate import check_inputs, restore_files

    check_inputs(args.inputs)  # a bad input fails (naming itself) before the model is built
    model, label = _load_model(args, args.variant)
    if args.low_memory:  # many tiles: keep glibc's heap from growing with their number
        from .evaluation.tiling import return_freed_memory

        if not args.tile:
            raise ValueError("--low-memory applies to tiled restoration: add --tile N")
        if not return_freed_memory():
            print("irconstyle: --low-memory has no effect here (not glibc)", file=sys.stderr)
    written = restore_files(model, args.inputs, args.out, tile=args.tile,
                            overlap=args.tile_overlap, self_ensemble=args.self_ensemble,
                            check=False, progress=lambda src, dst: print(f"{src} -> {dst}"))
    print(f"restored {len(written)} image(s) into {args.out} with "
          f"{args.model or 'the model the weights name'}, weights: {label}", file=sys.stderr)
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    import shlex

    from .experiments import run_experiment

    if args.summary:
        from .experiments import load_spec
        from .experiments.summary import experiment_summary, write_summary

        summary = experiment_summary(args.file, reference=args.reference,
                                     reference_results=args.reference_results)
        md, js = write_summary(summary, load_spec(args.file).out_path)
        print(md.read_text())
        print(f"wrote {md} and {js}", file=sys.stderr)
        return 0
    if args.reference or args.reference_results:
        raise CLIError("--reference and --reference-results go with --summary")
    words = [PROG, "experiment", args.file, *(w for a in args.only or () for w in ("--only", a)),
             *(["--jobs", str(args.jobs)] if args.jobs > 1 else [])]
    result = run_experiment(args.file, only=args.only, progress=not args.no_progress,
                            dry_run=args.dry_run, command=shlex.join(words), jobs=args.jobs,
                            out_dir=args.out_dir)
    if not args.dry_run:
        print(json.dumps(dataclasses.asdict(result), indent=2))
    return 0


def _cmd_latent(args: argparse.Namespace) -> int:
    import shlex

    from .evaluation.degraded_codes import (encode_degraded, encoder_from_weights, save_codes,
                                          untrained_encoder)
    from .experiments.provenance import run_provenance

    if not args.weights and not args.untrained_seed:
        raise CLIError("give --weights FILE ... and/or --untrained-seed SEED")
    device = _device(args.device)
    sources = {f"untrained_seed{s}": (untrained_encoder(s), {"source": "untrained", "seed": s})
               for s in args.untrained_seed}
    for path in args.weights:
        label = str(path)
        if label in sources:
            raise CLIError(f"--weights: {path} given twice")
        sources[label] = (encoder_from_weights(path, args.variant),
                          {"source": str(path), "variant": args.variant or "default (ema if present)"})
    encoders = {}
    for label, (encoder, meta) in sources.items():
        codes = encode_degraded(encoder.to(device), device=device)
        codes.meta = meta
        encoders[label] = codes
        print(f"{label}: {codes.codes.shape[0]} codes", file=sys.stderr)
    words = [PROG, "latent", *(["--weights", *args.weights] if args.weights else []),
             *(w for s in args.untrained_seed for w in ("--untrained-seed", str(s))),
             *(["--variant", args.variant] if args.variant else []), "--out", args.out]
    out = save_codes(args.out, encoders, provenance=run_provenance(shlex.join(words), device=device))
    print(f"wrote {out} and {out.with_suffix('.json')}", file=sys.stderr)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    try:
        from .nets.model_table import model_table
        from .nets.zoo import model_names
    except ImportError as exc:
        raise CLIError(f"the model table is not available (irconstyle.nets.model_table: {exc})") from None
    kwargs = _parse_pairs(args.model_arg, "--model-arg")
    if kwargs and not args.names:
        raise CLIError("--model-arg needs model names (the builders' arguments differ between "
                       "families)")
    rows = []
    for name in args.names or model_names():  # one at a time: an error names its model
        try:
            rows += model_table([name], input_size=(1, 3, args.input_size, args.input_size),
                                time_cpu=not args.no_time, overrides={name: kwargs})
        except TypeError as exc:  # a builder refused a --model-arg
            raise ValueError(f"model {name!r}: bad builder arguments {kwargs}: {exc}") from None
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    cols = [("name", "model"), ("constyle", "ConStyle"), ("size_factor", "pad"),
            ("params", "params"), ("macs", "GMACs"), ("cpu_ms", "CPU ms")]
    cols = [c for c in cols if any(c[0] in r for r in rows)]

    def cell(row: dict, key: str) -> str:
        v = row.get(key, "")
        if key == "params":
            return f"{v:,}"
        if key == "macs":
            return f"{v / 1e9:.2f}"
        if key == "constyle":
            return "yes" if v else "no"
        return str(v)

    table = [[head for _, head in cols]] + [[cell(r, k) for k, _ in cols] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(cols))]
    for r in table:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    print(f"(MACs and times at 1x3x{args.input_size}x{args.input_size})", file=sys.stderr)
    if any(r["name"].endswith("_ablated") for r in rows):
        print("(*_ablated: ConStyle's code and three feature maps replaced by learned constants, "
              "a (128,) code and (32|64|128, 1, 1) vectors broadcast over the maps; no encoder)",
              file=sys.stderr)
    return 0


_COMMANDS = {"train": _cmd_train, "evaluate": _cmd_evaluate, "restore": _cmd_restore,
             "models": _cmd_models, "experiment": _cmd_experiment, "latent": _cmd_latent}


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input, not a bug (all carry a message naming the culprit)."""
    return (CLIError, ValueError, TypeError, KeyError, OSError, ImportError)


def _message(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    text = " ".join(str(text).split()) or type(exc).__name__
    if isinstance(exc, OSError) and getattr(exc, "filename", None) and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except _expected_errors() as exc:
        if args.debug:
            raise
        print(f"{PROG}: error: {_message(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug; still no traceback without --debug
        if args.debug:
            raise
        print(f"{PROG}: internal error: {type(exc).__name__}: {_message(exc)} "
              f"(run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
