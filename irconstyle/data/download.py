"""Fetch, verify and unpack benchmark archives: resumable, idempotent, and safe.

* :func:`download` streams a URL into ``<file>.part``, resuming with an HTTP ``Range``
  request after an interruption, checks size and SHA-256 when known, then renames the
  file into place and writes a done-marker ``<file>.done.json`` holding its SHA-256. A
  later call with a valid marker does nothing; a file whose checksum is wrong is
  deleted and fetched again.
* Google Drive files need ``gdown`` (used when installed); other hosts that need a login
  or a password raise :class:`ManualDownloadRequired` with the exact steps.
* :func:`safe_extract` refuses archive members with absolute paths, ``..`` components
  ("zip slip"), links, or device files, for zip and tar alike, and unpacks into a
  temporary folder that is renamed only once complete.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable
from urllib.parse import urlparse
from urllib.request import url2pathname

from tqdm.auto import tqdm

__all__ = ["DownloadError", "ManualDownloadRequired", "UnsafeArchiveError", "sha256_file",
           "download", "download_gdrive", "safe_extract", "is_archive", "gdown_available"]

CHUNK = 1 << 20
USER_AGENT = "irconstyle-data/0.1 (+https://arxiv.org/abs/2402.15784)"


class DownloadError(RuntimeError):
    """A file could not be fetched or failed verification."""


class ManualDownloadRequired(DownloadError):
    """The source needs a browser, a login, a password or an extra tool."""


class UnsafeArchiveError(DownloadError):
    """An archive member would land outside the extraction folder, or is a link/device."""


def sha256_file(path: str | os.PathLike, progress: bool = False) -> str:
    path = Path(path)
    h = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                     desc=f"sha256 {path.name}", disable=not progress,
                                     leave=False) as bar:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def _marker(dest: Path) -> Path:
    return dest.with_name(dest.name + ".done.json")


def _write_marker(dest: Path, digest: str, url: str | None) -> None:
    _marker(dest).write_text(json.dumps(
        {"file": dest.name, "size": dest.stat().st_size, "sha256": digest, "url": url},
        indent=1))


def _marker_ok(dest: Path, sha256: str | None) -> bool:
    try:
        m = json.loads(_marker(dest).read_text())
    except (OSError, ValueError):
        return False
    return (dest.is_file() and m.get("size") == dest.stat().st_size
            and (sha256 is None or m.get("sha256") == sha256))


def _check_existing(dest: Path, sha256: str | None, size: int | None, url: str | None,
                    progress: bool) -> bool:
    """True if ``dest`` is already good (marking it so); deletes it if it is corrupt."""
    if not dest.is_file():
        return False
    if _marker_ok(dest, sha256):
        return True
    digest = sha256_file(dest, progress)
    if (sha256 is None or digest == sha256) and (size is None or dest.stat().st_size == size):
        _write_marker(dest, digest, url)
        return True
    print(f"{dest}: checksum or size mismatch (sha256 {digest}, expected {sha256}); "
          f"deleting it and fetching again")
    dest.unlink()
    _marker(dest).unlink(missing_ok=True)
    return False


class _Interrupted(DownloadError):
    pass


def _fetch(url: str, part: Path, opener: Callable | None, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (resuming from its current size)."""
    offset = part.stat().st_size if part.exists() else 0
    parsed = urlparse(url)
    if parsed.scheme == "file":  # urllib ignores Range for file://; seek instead
        src_path = Path(url2pathname(parsed.path))
        total = src_path.stat().st_size
        if offset > total:
            offset = 0
        with open(src_path, "rb") as src, open(part, "ab" if offset else "wb") as out, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                     desc=part.name[:-5], disable=not progress) as bar:
            src.seek(offset)
            for block in iter(lambda: src.read(CHUNK), b""):
                out.write(block)
                bar.update(len(block))
        return
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    open_ = opener or urllib.request.urlopen
    try:
        resp = open_(request, timeout=60)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to send: the part is complete
            return
        raise
    with resp:
        status = getattr(resp, "status", None) or resp.getcode()
        length = resp.headers.get("Content-Length")
        if offset and status == 206:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                raise DownloadError(f"{url}: server resumed at the wrong offset "
                                    f"({resp.headers.get('Content-Range')!r}, wanted {offset})")
        else:
            offset = 0  # server ignored Range: start over
        total = offset + int(length) if length is not None else None
        received = offset
        with open(part, "ab" if offset else "wb") as out, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                     desc=part.name[:-5], disable=not progress) as bar:
            while True:
                try:
                    block = resp.read(CHUNK)
                except http.client.IncompleteRead as err:
                    out.write(err.partial)
                    received += len(err.partial)
                    raise _Interrupted(f"{url}: connection dropped after {received} bytes") from err
                if not block:
                    break
                out.write(block)
                received += len(block)
                bar.update(len(block))
        if total is not None and received < total:
            raise _Interrupted(f"{url}: connection dropped after {received} of {total} bytes")


def _finish(part: Path, dest: Path, sha256: str | None, size: int | None, url: str | None,
            progress: bool) -> Path:
    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink()
        raise DownloadError(f"{url}: got {got} bytes, expected {size}; deleted the download")
    digest = sha256_file(part, progress)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise DownloadError(f"{url}: sha256 {digest} does not match the expected {sha256}; "
                            f"deleted the download (run again to retry)")
    os.replace(part, dest)
    _write_marker(dest, digest, url)
    return dest


def download(url: str, dest: str | os.PathLike, *, sha256: str | None = None,
             size: int | None = None, retries: int = 3, opener: Callable | None = None,
             progress: bool = True) -> Path:
    """Fetch ``url`` to ``dest`` (see the module docstring); returns ``dest``.

    ``opener(request, timeout=...)`` replaces ``urllib.request.urlopen`` (tests, proxies).
    After ``retries`` failed resumptions the ``.part`` file is kept, so the next call
    continues where this one stopped.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if _check_existing(dest, sha256, size, url, progress):
        return dest
    part = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    for _ in range(retries + 1):
        try:
            _fetch(url, part, opener, progress)
            break
        except urllib.error.HTTPError as err:
            if 400 <= err.code < 500 and err.code not in (408, 429):
                raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from err
            last = err
        except (urllib.error.URLError, OSError, http.client.HTTPException, _Interrupted) as err:
            last = err
    else:
        raise DownloadError(f"{url}: download failed ({last}); the partial file {part} is "
                            f"kept, run again to resume") from last
    return _finish(part, dest, sha256, size, url, progress)


def gdown_available() -> bool:
    try:
        import gdown  # noqa: F401
    except ImportError:
        return False
    return True


def download_gdrive(file_id: str, dest: str | os.PathLike, *, sha256: str | None = None,
                    size: int | None = None, progress: bool = True) -> Path:
    """A Google Drive file via ``gdown`` (large Drive files need its confirmation
    handling, which plain urllib lacks); raises :class:`ManualDownloadRequired` without it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    url = f"https://drive.google.com/uc?id={file_id}"
    if _check_existing(dest, sha256, size, url, progress):
        return dest
    if not gdown_available():
        raise ManualDownloadRequired(
            f"{dest.name} is on Google Drive (file id {file_id}). Either `pip install gdown` "
            f"and run this command again, or run `gdown {file_id} -O {dest}`, or open "
            f"https://drive.google.com/file/d/{file_id}/view in a browser and save the file "
            f"as {dest}; then run this command again.")
    import gdown
    part = dest.with_name(dest.name + ".part")
    out = gdown.download(id=file_id, output=str(part), quiet=not progress, resume=True)
    if not out or not part.is_file():
        raise DownloadError(f"gdown could not fetch Drive file {file_id} (quota or "
                            f"permissions?); download it by hand to {dest}")
    return _finish(part, dest, sha256, size, url, progress)


# --------------------------------------------------------------------------- extraction
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def is_archive(path: str | os.PathLike) -> bool:
    p = Path(path)
    return zipfile.is_zipfile(p) or (p.is_file() and tarfile.is_tarfile(p))


def _check_member(archive: Path, name: str) -> None:
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing "
                                 f"to extract")
    if ".." in PurePosixPath(norm).parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} climbs out with '..' (zip "
                                 f"slip); refusing to extract")


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, *,
                 progress: bool = True, tag: dict | None = None) -> Path:
    """Unpack a zip or tar archive into ``dest``; returns ``dest``.

    A complete earlier extraction (its marker ``.extracted.json`` holds the same ``tag``,
    e.g. the archive's checksum) is kept; anything else in ``dest`` is replaced.
    """
    archive, dest = Path(archive), Path(dest)
    record = {"archive": archive.name, **(tag or {})}
    try:
        if json.loads((dest / ".extracted.json").read_text()) == record:
            return dest
    except (OSError, ValueError):
        pass
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp, progress)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, tmp, progress)
        else:
            raise DownloadError(f"{archive}: not a zip or tar archive (corrupt or "
                                f"incomplete download?)")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DownloadError(f"{archive}: archive is corrupt ({type(err).__name__}: {err})") from err
    except DownloadError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / ".extracted.json").write_text(json.dumps(record))
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def _extract_zip(archive: Path, dest: Path, progress: bool) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:  # check everything before writing anything
            _check_member(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic "
                                         f"link; refusing to extract")
        for info in tqdm(members, desc=f"unzip {archive.name}", unit="file",
                         disable=not progress):
            zf.extract(info, dest)


def _extract_tar(archive: Path, dest: Path, progress: bool) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in members:
            _check_member(archive, m.name)
            if not (m.isfile() or m.isdir()):
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a link or special "
                                         f"file; refusing to extract")
        kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        for m in tqdm(members, desc=f"untar {archive.name}", unit="file",
                      disable=not progress):
            tf.extract(m, dest, **kw)
