"""Turn downloaded benchmark archives into the canonical layout of :mod:`.benchmarks`.

``prepare_benchmark(name, root)``: pick an :class:`Option` (already downloaded first,
then fetchable), download and verify its files, unpack them safely, find the data
folders inside, link (or copy) the files into ``{root}/{task}/{role}/{folder}``, check
the count against the table, and write a done-marker ``.prepared.json``. Running it again
does nothing once the marker is valid; a failed run leaves only a ``.partial`` folder,
which the next run replaces. The command-line scripts in ``data_scripts/`` call
:func:`task_main`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from collections import deque
from pathlib import Path
from typing import Callable, Iterable, Sequence

from tqdm.auto import tqdm

from .benchmarks import Benchmark, Option, Source, benchmark_names, get_benchmark
from .download import (DownloadError, ManualDownloadRequired, UnsafeArchiveError, download,
                       download_gdrive, gdown_available, safe_extract, sha256_file)
from .io import ImageError, list_images
from .pairs import Pair, dehaze_key, derain_key, derain_pairs, pair_by_key, pair_identical

__all__ = ["PrepareError", "prepare_benchmark", "prepare_task", "find_dir", "folder_md5",
           "task_main", "MARKER"]

MARKER = ".prepared.json"
_LQ_DIRS = ("hazy", "haze")
_GT_DIRS = ("clear", "gt", "GT", "clean")


class PrepareError(RuntimeError):
    """The downloaded files do not hold what the benchmark table says."""


# --------------------------------------------------------------------------- helpers
def folder_md5(folder: str | os.PathLike) -> str:
    """deepinv's folder checksum: md5 over the hex md5 of each file, in sorted name order
    (only for a folder that holds files and no sub-folders)."""
    folder = Path(folder)
    h = hashlib.md5()
    entries = sorted(os.listdir(folder))
    if all((folder / e).is_file() for e in entries):
        for e in entries:
            h.update(hashlib.md5((folder / e).read_bytes()).hexdigest().encode())
    return h.hexdigest()


def _dirs_bfs(roots: Iterable[Path]) -> Iterable[Path]:
    queue = deque(sorted(roots))
    while queue:
        d = queue.popleft()
        yield d
        queue.extend(sorted(c for c in d.iterdir() if c.is_dir() and c.name != "__MACOSX"))


def _child(d: Path, names: Sequence[str]) -> Path | None:
    for n in names:
        if (d / n).is_dir():
            return d / n
    return None


def find_dir(roots: Sequence[Path], name: str | None = None,
             require: Sequence[Sequence[str]] = ()) -> Path:
    """The shallowest folder under ``roots`` whose path ends with ``name`` (components,
    case-insensitive; None: any) and that has one sub-folder from each ``require`` group."""
    want = [p.lower() for p in Path(name).parts] if name else []
    for d in _dirs_bfs(roots):
        tail = [p.lower() for p in d.parts[-len(want):]] if want else []
        if tail == want and all(_child(d, group) for group in require):
            return d
    what = f"a folder named {name!r}" if name else "a folder"
    if require:
        what += " with sub-folders " + " and ".join("|".join(g) for g in require)
    raise PrepareError(f"{what} not found under {', '.join(map(str, roots))}; the archive "
                       f"layout differs from the one expected")


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _extract_dir(downloads: Path, src: Source) -> Path:
    name = src.filename
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".zip", ".tar"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return downloads / "extracted" / name


def _user_extracted(xdir: Path) -> bool:
    return xdir.is_dir() and any(xdir.iterdir())


def _available(downloads: Path, src: Source) -> bool:
    return (downloads / src.filename).is_file() or _user_extracted(_extract_dir(downloads, src))


def _fetchable(src: Source) -> bool:
    return src.url is not None or (src.gdrive_id is not None and gdown_available())


def _instructions(downloads: Path, src: Source) -> str:
    dest = downloads / src.filename
    if src.gdrive_id:
        text = (f"{src.filename}: Google Drive file {src.gdrive_id}; `pip install gdown` and "
                f"rerun, or `gdown {src.gdrive_id} -O {dest}`, or save "
                f"https://drive.google.com/file/d/{src.gdrive_id}/view as {dest}")
        return text + (f" ({src.manual})" if src.manual else "")
    if src.url:
        return f"{src.filename}: {src.url} -> {dest}"
    return f"{src.filename}: {src.manual or 'manual download'}"


def _choose(b: Benchmark, downloads: Path) -> Option:
    for opt in b.options:
        if all(_available(downloads, s) for s in opt.sources):
            return opt
    for opt in b.options:
        if all(_available(downloads, s) or _fetchable(s) for s in opt.sources):
            return opt
    lines = [f"{b.name}: no source can be fetched automatically; get one of these, then "
             f"run again:"]
    for i, opt in enumerate(b.options, 1):
        lines += [f"  option {i}:"] + [f"    {_instructions(downloads, s)}" for s in opt.sources]
    raise ManualDownloadRequired("\n".join(lines))


def _fetch(downloads: Path, src: Source, opener: Callable | None, progress: bool) -> Path:
    dest = downloads / src.filename
    if src.url is not None:
        return download(src.url, dest, sha256=src.sha256, size=src.size, opener=opener,
                        progress=progress)
    if src.gdrive_id is not None:
        return download_gdrive(src.gdrive_id, dest, sha256=src.sha256, size=src.size,
                               progress=progress)
    # A manual source: accept a file the user placed (verified when a checksum is known).
    if not dest.is_file():
        raise ManualDownloadRequired(_instructions(downloads, src))
    if src.sha256 is not None and sha256_file(dest, progress) != src.sha256:
        raise DownloadError(f"{dest}: sha256 does not match {src.sha256}; replace the file")
    return dest


def _obtain(downloads: Path, src: Source, opener: Callable | None, progress: bool
            ) -> tuple[Path, str]:
    """Unpacked folder of one source, and the archive's sha256 ('' if user-unpacked)."""
    xdir = _extract_dir(downloads, src)
    archive = downloads / src.filename
    if not archive.is_file() and not _fetchable(src) and _user_extracted(xdir):
        return xdir, ""  # unpacked by hand (e.g. OTS from Baidu)
    for attempt in range(2):
        archive = _fetch(downloads, src, opener, progress)
        digest = _archive_sha(archive, progress)
        try:  # keeps an earlier complete extraction of the same archive
            safe_extract(archive, xdir, progress=progress, tag={"sha256": digest})
            return xdir, digest
        except DownloadError as err:
            if attempt or not _fetchable(src) or isinstance(err, UnsafeArchiveError):
                raise
            print(f"{archive}: {err}; deleting it and fetching again")
            archive.unlink()
            archive.with_name(archive.name + ".done.json").unlink(missing_ok=True)
    raise AssertionError("unreachable")


def _archive_sha(archive: Path, progress: bool) -> str:
    marker = archive.with_name(archive.name + ".done.json")
    try:
        m = json.loads(marker.read_text())
        if m.get("size") == archive.stat().st_size and m.get("sha256"):
            return m["sha256"]
    except (OSError, ValueError):
        pass
    return sha256_file(archive, progress)


# --------------------------------------------------------------------------- writers
def _write_pairs(pairs: Sequence[Pair], out: Path, lq_name: Callable[[Pair], str],
                 gt_name: Callable[[Pair], str], lq_sub: str, gt_sub: str,
                 progress: bool, desc: str) -> int:
    seen_gt: set[str] = set()
    for p in tqdm(pairs, desc=desc, unit="pair", disable=not progress):
        _link(p.lq, out / lq_sub / lq_name(p))
        g = gt_name(p)
        if g not in seen_gt:
            seen_gt.add(g)
            _link(p.gt, out / gt_sub / g)
    return len(pairs)


def _write_images(opt: Option, roots: list[Path], out: Path, progress: bool) -> int:
    if not opt.find:
        raise PrepareError("an 'images' option needs the folder name(s) to look for")
    n = 0
    for name in opt.find:
        d = find_dir(roots, name)
        if opt.folder_md5 is not None:
            got = folder_md5(d)
            if got != opt.folder_md5:
                raise PrepareError(f"{d}: folder checksum {got} differs from the published "
                                   f"{opt.folder_md5}; the download is incomplete or changed")
        files = list_images(d, recursive=True)
        prefix = f"{name}-" if len(opt.find) > 1 else ""
        names = [prefix + f.name for f in files]
        if len(set(names)) != len(names):
            raise PrepareError(f"{d}: duplicate image names in sub-folders")
        for f, nm in tqdm(list(zip(files, names)), desc=name, unit="img", disable=not progress):
            _link(f, out / nm)
        n += len(files)
    return n


def _write_identical(opt: Option, roots: list[Path], out: Path, progress: bool) -> int:
    d = find_dir(roots, opt.find[0] if opt.find else None, (("input",), ("target",)))
    pairs = pair_identical(d / "input", d / "target")
    return _write_pairs(pairs, out, lambda p: p.lq.name, lambda p: p.gt.name,
                        "input", "target", progress, d.name)


def _write_sequences(opt: Option, roots: list[Path], out: Path, progress: bool) -> int:
    d = find_dir(roots, opt.find[0] if opt.find else None)
    seqs = sorted(s for s in d.iterdir() if (s / "blur").is_dir() and (s / "sharp").is_dir())
    if not seqs:
        raise PrepareError(f"{d}: no sequence folder with blur/ and sharp/ inside")
    pairs = [Pair(p.lq, p.gt, f"{s.name}_{p.name}")
             for s in seqs for p in pair_identical(s / "blur", s / "sharp")]
    return _write_pairs(pairs, out, lambda p: p.name + p.lq.suffix,
                        lambda p: p.name + p.gt.suffix, "input", "target", progress, d.name)


def _write_derain(opt: Option, roots: list[Path], out: Path, progress: bool) -> int:
    want = opt.find[0] if opt.find else None
    last: Exception | None = None
    for d in _dirs_bfs(roots):
        if want and d.name.lower() != want.lower():
            continue
        try:
            pairs = derain_pairs(d)
        except ImageError as err:
            last = err
            continue
        return _write_pairs(pairs, out, lambda p: derain_key(p.name) + p.lq.suffix,
                            lambda p: derain_key(p.name) + p.gt.suffix, "input", "target",
                            progress, d.name)
    raise PrepareError(f"no deraining folder{' named ' + repr(want) if want else ''} found "
                       f"under {', '.join(map(str, roots))} (last problem: {last})")


def _write_dehaze(opt: Option, roots: list[Path], out: Path, progress: bool) -> int:
    d = find_dir(roots, opt.find[0] if opt.find else None, (_LQ_DIRS, _GT_DIRS))
    hazy_dir, clear_dir = _child(d, _LQ_DIRS), _child(d, _GT_DIRS)
    assert hazy_dir is not None and clear_dir is not None
    pairs = pair_by_key(list_images(hazy_dir, recursive=True),
                        list_images(clear_dir, recursive=True), dehaze_key)
    return _write_pairs(pairs, out, lambda p: p.lq.name, lambda p: p.gt.name,
                        "hazy", "clear", progress, d.name)


_WRITERS: dict[str, Callable[[Option, list[Path], Path, bool], int]] = {
    "images": _write_images, "identical": _write_identical, "sequences": _write_sequences,
    "derain": _write_derain, "dehaze": _write_dehaze,
}


def _count(dest: Path, kind: str) -> int:
    if kind == "clean":
        return len(list_images(dest))
    return len(list_images(dest / ("hazy" if kind == "dehaze" else "input")))


def _prepared(dest: Path, b: Benchmark) -> bool:
    try:
        m = json.loads((dest / MARKER).read_text())
        return m.get("benchmark") == b.name and _count(dest, b.kind) == m.get("count")
    except (OSError, ValueError, ImageError):
        return False


# --------------------------------------------------------------------------- entry points
def prepare_benchmark(benchmark: Benchmark | str, root: str | os.PathLike, *,
                      check_count: bool = True, opener: Callable | None = None,
                      progress: bool = True) -> Path:
    """Download (if needed) and lay out one benchmark; returns its folder."""
    b = get_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
    root = Path(root)
    dest, downloads = b.path(root), root / "downloads"
    if _prepared(dest, b):
        return dest
    if dest.exists() and not (dest / MARKER).exists():
        # A folder made by hand: adopt it if it holds the documented count, never delete it.
        try:
            n = _count(dest, b.kind)
        except ImageError:
            n = -1
        if b.count is not None and n == b.count:
            (dest / MARKER).write_text(json.dumps(
                {"benchmark": b.name, "count": n, "layout": b.kind, "sources": "adopted"}))
            return dest
        raise PrepareError(f"{dest} exists but was not made by this script (and does not hold "
                           f"the {b.count} {'images' if b.kind == 'clean' else 'pairs'} "
                           f"expected); move it away and run again")
    opt = _choose(b, downloads)
    got = [_obtain(downloads, s, opener, progress) for s in opt.sources]
    roots = [x for x, _ in got]
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        n = _WRITERS[opt.layout](opt, roots, tmp, progress)
        if b.count is not None and n != b.count:
            msg = (f"{b.name}: prepared {n} {'images' if b.kind == 'clean' else 'pairs'}, "
                   f"the table expects {b.count}")
            if check_count:
                raise PrepareError(msg + " (pass --allow-count-mismatch to keep them anyway)")
            print("warning: " + msg)
        (tmp / MARKER).write_text(json.dumps(
            {"benchmark": b.name, "count": n, "layout": b.kind,
             "sources": {s.filename: sha for s, (_, sha) in zip(opt.sources, got)}}, indent=1))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def prepare_task(task: str | None, root: str | os.PathLike, *, only: Sequence[str] = (),
                 check_count: bool = True, progress: bool = True,
                 opener: Callable | None = None) -> dict[str, Path | Exception]:
    """Prepare every benchmark of ``task`` (all tasks for None); a benchmark that needs
    a manual step is reported and skipped, the others still run."""
    names = list(only) or benchmark_names(task)
    results: dict[str, Path | Exception] = {}
    for name in names:
        try:
            results[name] = prepare_benchmark(name, root, check_count=check_count,
                                              opener=opener, progress=progress)
        except (DownloadError, PrepareError, ImageError) as err:
            results[name] = err
    return results


def task_main(task: str | None, argv: Sequence[str] | None = None) -> int:
    """Command line shared by ``data_scripts/prepare_*.py``; exit status 0 when every
    requested benchmark is ready, 2 when some need a manual download, 1 on errors."""
    what = f"the {task} benchmarks" if task else "all benchmarks"
    parser = argparse.ArgumentParser(description=f"Download, verify and lay out {what} "
                                                 f"under ROOT (see irconstyle/data/benchmarks.py).")
    parser.add_argument("--root", default="data", help="data root (default: data)")
    parser.add_argument("--only", nargs="+", default=(), metavar="NAME",
                        choices=benchmark_names(task), help="prepare only these benchmarks")
    parser.add_argument("--allow-count-mismatch", action="store_true",
                        help="keep a set whose size differs from the table (warn only)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name in benchmark_names(task):
            b = get_benchmark(name)
            print(f"{b.name:14s} {b.task:8s} {b.role:5s} count={b.count}  -> "
                  f"{b.path(args.root)}")
        return 0
    results = prepare_task(task, args.root, only=args.only,
                           check_count=not args.allow_count_mismatch,
                           progress=not args.no_progress)
    errors = manual = False
    for name, res in results.items():
        if isinstance(res, Path):
            print(f"[ready]  {name}: {res}")
        elif isinstance(res, ManualDownloadRequired):
            print(f"[manual] {res}")
            manual = True
        else:
            print(f"[error]  {name}: {res}")
            errors = True
    return 1 if errors else 2 if manual else 0
