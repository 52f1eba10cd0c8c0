"""Untrusted files (issue 6.3).

* A malicious pickle checkpoint (its ``__reduce__`` creates a marker folder when
  unpickled) is refused by every loader of the package, in every container format, and
  the marker is never created; the same file *does* create it under a plain
  ``torch.load(weights_only=False)``, so the payload is live.
* A static audit parses every module of ``irconstyle/`` and ``data_scripts/`` and fails
  on unsafe deserialisation (``torch.load`` without ``weights_only=True``, ``pickle``,
  ``yaml.load``, ``numpy.load(allow_pickle=True)``), shell invocation (``shell=True``,
  ``os.system``, ``os.popen``), ``eval``/``exec`` and ``extractall``.
* safetensors export and import round-trip exactly, with the model named in the metadata.
* Archive members with absolute paths, ``..`` or drive letters, fuzzed: nothing is ever
  written outside the extraction folder (the fixed cases are in tests/test_download.py).
"""
from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import irconstyle
from irconstyle import build_model
from irconstyle.cli import main as cli_main
from irconstyle.data import UnsafeArchiveError, safe_extract
from irconstyle.data.download import DownloadError
from irconstyle.runtime.devices import fast_layout
from irconstyle.evaluation.evaluate import evaluate_checkpoint, load_model
from irconstyle.checkpoints.release import ReleaseCheckpointError, load_release_checkpoint, read_release_file
from irconstyle.train import load_checkpoint, load_weights, save_weights
from irconstyle.checkpoints.weights import WeightsError, load_into, read_weights

ROOT = Path(irconstyle.__file__).resolve().parents[1]
AUDITED = [ROOT / "irconstyle", ROOT / "data_scripts"]
TINY = dict(width=8, left_blk_num=(1, 1, 1), bottom_blk_num=1, right_blk_num=(1, 1, 1))


# ----------------------------------------------------------------------------- malicious pickles
class Payload:
    """Unpickling this object calls ``os.mkdir(marker)``: it creates the marker.  A
    stand-in for any code an attacker would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _containers(payload: Payload) -> dict[str, object]:
    """The payload where each loader would look for weights."""
    w = torch.zeros(2)
    return {"ours": {"model": {"w": w, "evil": payload}, "ema": None, "config": "model: {}"},
            "release": {"params_ema": {"w": w}, "params": {"w": payload}},
            "state_dict": {"w": w, "evil": payload},
            "bare": payload}


def _write(path: Path, obj: object, fmt: str) -> Path:
    if fmt == "zip":
        torch.save(obj, path)
    elif fmt == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:  # a plain pickle stream, not a torch file at all
        path.write_bytes(pickle.dumps(obj))
    return path


def _image(d: Path) -> Path:
    path = d / "input image.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path)
    return path


def _cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(argv)
    return code, err.getvalue()


def _loaders(path: Path, tmp: Path) -> dict[str, tuple]:
    """name -> (call, exception type it must raise)."""
    plain = lambda: build_model("plain", **TINY)  # noqa: E731
    pairs = [{"lq": torch.rand(3, 16, 16), "gt": torch.rand(3, 16, 16), "name": "x"}]
    return {
        "weights.read_weights": (lambda: read_weights(path), WeightsError),
        "evaluate.load_model": (lambda: load_model("plain", path, **TINY), WeightsError),
        "evaluate.evaluate_checkpoint": (lambda: evaluate_checkpoint(
            plain(), path, pairs, protocol="basicsr", benchmark="minibench_denoise"), WeightsError),
        "release.read_release_file": (lambda: read_release_file(path), ReleaseCheckpointError),
        "release.load_release_checkpoint": (lambda: load_release_checkpoint(
            build_model("constyle_nafnet", **TINY), "constyle_nafnet", path), ReleaseCheckpointError),
        "train.load_checkpoint": (lambda: load_checkpoint(path), Exception),
        "train.load_weights (safetensors)": (lambda: load_weights(plain(), path), Exception),
        "cli restore --weights": (lambda: _cli_refuses(path, tmp), None),
    }


def _cli_refuses(path: Path, tmp: Path) -> None:
    code, err = _cli(["restore", str(_image(tmp)), "--out", str(tmp / "out"), "--model", "plain",
                      "--weights", str(path),
                      *[a for k, v in TINY.items() for a in ("--model-arg", f"{k}={json.dumps(v)}")]])
    assert code == 1 and "Traceback" not in err and str(path) in err, err
    assert not (tmp / "out").exists()


@pytest.mark.parametrize("fmt", ["zip", "legacy", "pickle"])
@pytest.mark.parametrize("container", ["ours", "release", "state_dict", "bare"])
def test_malicious_pickle_is_refused_by_every_loader(tmp_path: Path, fmt: str,
                                                     container: str) -> None:
    marker = tmp_path / "PWNED"
    ckpt = _write(tmp_path / f"evil {container}.pth", _containers(Payload(marker))[container], fmt)
    # The payload is live: an unrestricted load runs it.
    if fmt == "pickle":
        pickle.loads(ckpt.read_bytes())
    else:
        torch.load(ckpt, weights_only=False)
    assert marker.is_dir()
    marker.rmdir()

    for suffix in (".pth", ".pt", ".safetensors"):  # the extension must not matter
        path = ckpt.with_suffix(suffix)
        if path != ckpt:
            path.write_bytes(ckpt.read_bytes())
        for name, (call, error) in _loaders(path, tmp_path).items():
            if error is None:
                call()
            else:
                with pytest.raises(error):
                    call()
            assert not marker.exists(), f"{name} ran the payload of {path.name}"


# ----------------------------------------------------------------------------- static audit
_DESERIALISERS = {f"{m}.{f}" for m in ("pickle", "_pickle", "cPickle", "dill", "cloudpickle",
                                       "marshal", "joblib", "jsonpickle")
                  for f in ("load", "loads", "Unpickler", "decode")} | {"shelve.open"}
_SHELL = {"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput",
          "commands.getoutput", "pty.spawn"}
_SUBPROCESS = {f"subprocess.{f}" for f in ("run", "call", "check_call", "check_output", "Popen")}
_YAML_UNSAFE = {"yaml.load", "yaml.load_all", "yaml.unsafe_load", "yaml.unsafe_load_all",
                "yaml.full_load", "yaml.full_load_all"}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted origin, from every import in the module."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(func: ast.AST, aliases: dict[str, str]) -> str | None:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return None
    return ".".join([aliases.get(func.id, func.id), *reversed(parts)])


def _kw(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def audit_source(source: str, filename: str = "<string>") -> list[str]:
    """Unsafe calls in ``source``, as ``file:line: what`` strings."""
    tree = ast.parse(source, filename)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        attr = node.func.attr if isinstance(node.func, ast.Attribute) else None
        problem = None
        if name in ("torch.load", "torch.serialization.load"):
            if not _is_const(_kw(node, "weights_only"), True):
                problem = "torch.load without weights_only=True"
        elif name in _DESERIALISERS:
            problem = f"{name}: unpickling runs arbitrary code"
        elif name in _SHELL:
            problem = f"{name}: runs a shell"
        elif name in _SUBPROCESS and not (_kw(node, "shell") is None or _is_const(_kw(node, "shell"), False)):
            problem = f"{name} with shell=True"
        elif name in ("eval", "exec", "builtins.eval", "builtins.exec"):
            problem = f"{name}() of a string"
        elif name in _YAML_UNSAFE:
            loader = _dotted(_kw(node, "Loader"), aliases) if _kw(node, "Loader") is not None else ""
            if not (loader or "").endswith(("SafeLoader", "CSafeLoader")):
                problem = f"{name} without SafeLoader (use yaml.safe_load)"
        elif name in ("numpy.load", "np.load") and not (
                _kw(node, "allow_pickle") is None or _is_const(_kw(node, "allow_pickle"), False)):
            problem = "numpy.load with allow_pickle"
        elif attr == "extractall":
            problem = "extractall: unpacks without checking member paths (use safe_extract)"
        if problem:
            found.append(f"{filename}:{node.lineno}: {problem}")
    return found


def _audited_files() -> list[Path]:
    return sorted(p for root in AUDITED for p in root.rglob("*.py"))


def test_static_audit_finds_no_unsafe_call() -> None:
    files = _audited_files()
    assert len(files) > 30 and any(p.parent.name == "data_scripts" for p in files)
    problems = [hit for p in files for hit in audit_source(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]
    assert not problems, "\n".join(problems)
    # Not vacuous: the package's own checkpoint readers are among the audited calls.
    safe_loads = [p for p in files if "weights_only=True" in p.read_text(encoding="utf-8")
                  and "torch.load(" in p.read_text(encoding="utf-8")]
    assert {p.name for p in safe_loads} >= {"weights.py", "release.py", "checkpoint.py"}


@pytest.mark.parametrize("source, what", [
    ("import torch\ntorch.load(p)", "weights_only"),
    ("import torch\ntorch.load(p, weights_only=False)", "weights_only"),
    ("from torch import load as l\nl(p)", "weights_only"),
    ("import pickle\npickle.loads(b)", "pickle.loads"),
    ("from pickle import load\nload(f)", "pickle.load"),
    ("import pickle as pk\npk.Unpickler(f).load()", "pickle.Unpickler"),
    ("import subprocess\nsubprocess.run(cmd, shell=True)", "shell=True"),
    ("import subprocess as sp\nsp.Popen(cmd, shell=flag)", "shell=True"),
    ("import os\nos.system('ls ' + path)", "os.system"),
    ("from os import popen\npopen(cmd)", "os.popen"),
    ("eval(text)", "eval"),
    ("exec(code)", "exec"),
    ("import yaml\nyaml.load(text)", "SafeLoader"),
    ("import yaml\nyaml.load(text, Loader=yaml.FullLoader)", "SafeLoader"),
    ("import numpy as np\nnp.load(p, allow_pickle=True)", "allow_pickle"),
    ("import tarfile\ntarfile.open(p).extractall(d)", "extractall"),
])
def test_the_audit_catches_each_unsafe_call(source: str, what: str) -> None:
    hits = audit_source(source)
    assert len(hits) == 1 and what in hits[0], hits


@pytest.mark.parametrize("source", [
    "import torch\ntorch.load(p, map_location='cpu', weights_only=True)",
    "import subprocess\nsubprocess.run([sys.executable, '-m', 'x', path])",
    "import subprocess\nsubprocess.run(cmd, shell=False)",
    "import yaml\nyaml.safe_load(text)\nyaml.load(text, Loader=yaml.SafeLoader)",
    "import numpy as np\nnp.load(p)\nnp.load(p, allow_pickle=False)",
    "model.eval()\nzf.extract(member, dest)",
])
def test_the_audit_passes_safe_calls(source: str) -> None:
    assert audit_source(source) == []


# ----------------------------------------------------------------------------- safetensors
@pytest.mark.parametrize("name, kwargs", [
    ("constyle_nafnet", dict(TINY, constyle_kwargs=dict(queue_size=16))),  # training build: queue too
    ("constyle_restormer", dict(TINY, num_refinement_blocks=1, constyle_train=False)),
    ("nafnet", dict(width=8, enc_blk_nums=(1, 1), middle_blk_num=1, dec_blk_nums=(1, 1))),
])
def test_safetensors_export_and_import_round_trip(tmp_path: Path, name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = build_model(name, **kwargs).eval()
    path = tmp_path / f"{name} ü.safetensors"
    save_weights(model, path, metadata={"model": name, "weights": "ema",
                                        "model_kwargs": json.dumps(kwargs)})
    assert path.read_bytes()[8:9] == b"{"  # a JSON header, no pickle anywhere
    w = read_weights(path)
    assert (w.format, w.model_name, list(w.variants)) == ("safetensors", name, ["ema"])
    sd = model.state_dict()
    assert w.variants["ema"].keys() == sd.keys()
    assert all(torch.equal(w.variants["ema"][k], v) for k, v in sd.items())

    restored, label = load_model(None, path)  # the file names its model and arguments
    fast_layout(model)  # load_model returns the device's fast layout: compare like with like
    x = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(restored(x), model(x)), label
    again = build_model(name, **kwargs)
    load_weights(again, path)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in sd.items())
    load_into(build_model(name, **kwargs), w)  # the evaluate path


# ----------------------------------------------------------------------------- zip slip, fuzzed
_PARTS = ["a", "b c", "ü", "..", ".", "", "C:", "c:..", "\\", "..\\..", "~", "/"]


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(_PARTS), min_size=1, max_size=5),
       kind=st.sampled_from(["zip", "tar"]))
def test_no_archive_member_escapes_the_folder(tmp_path_factory, parts: list[str], kind: str) -> None:
    base = tmp_path_factory.mktemp("slip")
    name = "/".join(parts) + "/evil.txt"
    archive = base / f"a.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("ok.txt", b"ok")
            zf.writestr(name, b"evil")
    else:
        import tarfile

        with tarfile.open(archive, "w") as tf:
            for member, data in (("ok.txt", b"ok"), (name, b"evil")):
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    dest = base / "deep" / "out"
    before = set(base.rglob("*"))
    try:
        safe_extract(archive, dest, progress=False)
    except DownloadError as exc:  # UnsafeArchiveError, or a name the format cannot hold
        assert isinstance(exc, UnsafeArchiveError) or "corrupt" in str(exc), exc
        # nothing written anywhere (dest's parent may have been created, empty)
        assert set(base.rglob("*")) - before <= {base / "deep"}
        return
    written = set(base.rglob("*")) - before
    assert (dest / "ok.txt").read_bytes() == b"ok"
    assert all(p == base / "deep" or p.resolve().is_relative_to(dest.resolve()) for p in written), written
    assert ".." not in parts and not name.startswith("/")
