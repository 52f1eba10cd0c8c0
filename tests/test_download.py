"""Downloads, safe extraction and benchmark preparation, all offline.

Archives are built in tmp_path in the benchmarks' real layouts and file names, and served
from a local HTTP server, a file:// URL, or a stand-in for urlopen.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from irconstyle.data import (BENCHMARKS, DownloadError, ManualDownloadRequired, PrepareError,
                             UnsafeArchiveError, benchmark_dataset, download, prepare_benchmark,
                             safe_extract)
from irconstyle.data.prepare import folder_md5, task_main

from fixtures.builders import (BytesOpener, RangeServer, gopro_files, make_tar, make_zip,
                               rain100_files, sots_files, tiny_png)

PAYLOAD = os.urandom(300_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


# ----------------------------------------------------------------------------- download
def test_interrupted_download_resumes_with_range(tmp_path):
    dest = tmp_path / "a.zip"
    with RangeServer(PAYLOAD, drop_after=100_000) as server:
        with pytest.raises(DownloadError, match="run again to resume"):
            download(server.url, dest, sha256=PAYLOAD_SHA, retries=0, progress=False)
        part = tmp_path / "a.zip.part"
        assert part.stat().st_size == 100_000 and not dest.exists()
        download(server.url, dest, sha256=PAYLOAD_SHA, retries=0, progress=False)
        assert server.ranges == [None, "bytes=100000-"]
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    marker = json.loads((tmp_path / "a.zip.done.json").read_text())
    assert marker["sha256"] == PAYLOAD_SHA


def test_retries_resume_within_one_call_and_done_marker_skips(tmp_path):
    dest = tmp_path / "b.zip"
    with RangeServer(PAYLOAD, drop_after=50_000, drops=2) as server:
        download(server.url, dest, sha256=PAYLOAD_SHA, retries=3, progress=False)
        assert server.ranges == [None, "bytes=50000-", "bytes=100000-"]
        download(server.url, dest, sha256=PAYLOAD_SHA, progress=False)  # done: no request
        assert len(server.ranges) == 3
    assert dest.read_bytes() == PAYLOAD


def test_corrupt_archive_is_detected_by_checksum_and_fetched_again(tmp_path):
    src = tmp_path / "src" / "c.zip"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    dest = tmp_path / "dl" / "c.zip"
    dest.parent.mkdir()
    dest.write_bytes(PAYLOAD[:-10] + b"0123456789")  # same size, wrong bytes
    download(src.as_uri(), dest, sha256=PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_file_url_resumes_from_a_part_file(tmp_path):
    src = tmp_path / "d.bin"
    src.write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "d.bin"
    dest.parent.mkdir()
    (dest.parent / "d.bin.part").write_bytes(PAYLOAD[:1234])
    download(src.as_uri(), dest, sha256=PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_wrong_checksum_after_download_is_an_error(tmp_path):
    src = tmp_path / "e.bin"
    src.write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "e.bin"
    with pytest.raises(DownloadError, match="does not match"):
        download(src.as_uri(), dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not (tmp_path / "out" / "e.bin.part").exists()


# ----------------------------------------------------------------------------- extraction
@pytest.mark.parametrize("member", ["../evil.txt", "a/../../evil.txt", "/abs/evil.txt",
                                    "C:/evil.txt"])
def test_zip_slip_is_refused(tmp_path, member):
    archive = make_zip(tmp_path / "bad.zip", {"ok.txt": b"ok", member: b"bad"})
    with pytest.raises(UnsafeArchiveError, match="refusing"):
        safe_extract(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out").exists()


def test_tar_slip_and_links_are_refused(tmp_path):
    bad = make_tar(tmp_path / "bad.tar.gz", {"../evil.txt": b"x"})
    with pytest.raises(UnsafeArchiveError, match="'..'"):
        safe_extract(bad, tmp_path / "out", progress=False)
    link = make_tar(tmp_path / "link.tar", {"a.txt": b"x"}, mode="w",
                    symlinks={"escape": "/etc/passwd"})
    with pytest.raises(UnsafeArchiveError, match="link"):
        safe_extract(link, tmp_path / "out", progress=False)
    assert not (tmp_path / "evil.txt").exists()


def test_extracts_zip_and_tar_and_detects_truncation(tmp_path):
    files = {"top/a.png": tiny_png(), "top/sub/b.png": tiny_png(seed=1)}
    for archive in (make_zip(tmp_path / "x.zip", files), make_tar(tmp_path / "x.tar.gz", files)):
        out = safe_extract(archive, tmp_path / archive.name.replace(".", "_"), progress=False)
        assert (out / "top" / "sub" / "b.png").read_bytes() == files["top/sub/b.png"]
    broken = tmp_path / "broken.zip"
    broken.write_bytes((tmp_path / "x.zip").read_bytes()[:200])
    with pytest.raises(DownloadError, match="not a zip or tar|corrupt"):
        safe_extract(broken, tmp_path / "broken", progress=False)


# ----------------------------------------------------------------------------- preparation
def place(root: Path, name: str, files: dict[str, bytes]) -> Path:
    return make_zip(root / "downloads" / name, files)


def test_rain100h_from_the_original_rain_norain_files(tmp_path):
    """Manual option: the JORDER release, rain-001.png next to norain-001.png."""
    root = tmp_path / "data"
    with pytest.raises(ManualDownloadRequired, match="1P_-RAvltEoEhfT-9GrWRdpEi6NSswTs8"):
        prepare_benchmark("Rain100H", root, progress=False)
    place(root, "Rain100H.zip", rain100_files("Rain100H", 100))
    dest = prepare_benchmark("Rain100H", root, progress=False)
    assert dest == root / "derain" / "test" / "Rain100H"
    inputs = sorted(p.name for p in (dest / "input").iterdir())
    assert len(inputs) == BENCHMARKS["Rain100H"].count == 100
    assert inputs == sorted(p.name for p in (dest / "target").iterdir())
    assert inputs[0] == "001.png"
    assert (dest / "target" / "001.png").read_bytes() == tiny_png(seed=2)  # the norain file
    marker = (dest / ".prepared.json").stat().st_mtime_ns
    assert prepare_benchmark("Rain100H", root, progress=False) == dest  # idempotent
    assert (dest / ".prepared.json").stat().st_mtime_ns == marker
    ds = benchmark_dataset("Rain100H", root, split="test")
    assert len(ds) == 100 and ds[0]["lq"].shape == (3, 8, 8)


def test_sots_outdoor_pairs_hazy_with_clear_by_id(tmp_path):
    root = tmp_path / "data"
    place(root, "SOTS.zip", sots_files(500))  # as saved from Google Drive by hand
    dest = prepare_benchmark("SOTS-outdoor", root, progress=False)
    assert len(list((dest / "hazy").iterdir())) == BENCHMARKS["SOTS-outdoor"].count == 500
    assert (dest / "hazy" / "0001_0.85_0.06.jpg").is_file()
    assert (dest / "clear" / "0001.png").is_file()
    ds = benchmark_dataset("SOTS-outdoor", root, split="test")
    assert ds.pairs[0].lq.name == "0001_0.85_0.06.jpg" and ds.pairs[0].gt.name == "0001.png"
    assert ds[499]["name"] == "0500_0.8_0.1"  # 500 % 5 -> A 0.8, 500 % 7 -> beta 0.1


def test_gopro_official_zip_via_url_and_count_check(tmp_path):
    root = tmp_path / "data"
    src = BENCHMARKS["GoPro"].options[0].sources[0]
    archive = make_zip(tmp_path / "GOPRO_Large.zip", gopro_files(
        "test", {"GOPR0384_11_00": 400, "GOPR0385_11_01": 400, "GOPR0410_11_00": 311}))
    opener = BytesOpener({src.url: archive.read_bytes()})
    dest = prepare_benchmark("GoPro", root, opener=opener, progress=False)
    names = sorted(p.name for p in (dest / "input").iterdir())
    assert len(names) == 1111 and names[0] == "GOPR0384_11_00_000001.png"
    assert opener.urls == [src.url]
    # the training split of the same archive: 2103 pairs expected, fixture has 1111 -> error
    with pytest.raises(PrepareError, match="train"):
        prepare_benchmark("GoPro-train", root, opener=opener, progress=False)


def test_corrupt_downloaded_archive_is_fetched_again(tmp_path):
    root = tmp_path / "data"
    src = BENCHMARKS["GoPro"].options[0].sources[0]
    good = make_zip(tmp_path / "good.zip", gopro_files("test", {"GOPR0384_11_00": 1111}))
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / src.filename).write_bytes(good.read_bytes()[:5000])  # truncated
    opener = BytesOpener({src.url: good.read_bytes()})
    dest = prepare_benchmark("GoPro", root, opener=opener, progress=False)
    assert len(list((dest / "target").iterdir())) == 1111 and opener.urls == [src.url]


def test_count_mismatch_is_an_error_unless_allowed(tmp_path):
    root = tmp_path / "data"
    place(root, "Rain100L.zip", rain100_files("Rain100L", 99))
    with pytest.raises(PrepareError, match="prepared 99 pairs, the table expects 100"):
        prepare_benchmark("Rain100L", root, progress=False)
    assert not (root / "derain" / "test" / "Rain100L").exists()
    dest = prepare_benchmark("Rain100L", root, check_count=False, progress=False)
    assert len(list((dest / "input").iterdir())) == 99


def test_folder_checksum_guards_the_kodak_mirror(tmp_path):
    root = tmp_path / "data"
    src = BENCHMARKS["Kodak24"].options[0].sources[0]
    archive = make_zip(tmp_path / "k.zip", {
        f"Kodak-Lossless-True-Color-Image-Suite-master/PhotoCD_PCD0992/{i}.png": tiny_png(seed=i)
        for i in range(1, 25)})
    with pytest.raises(PrepareError, match="folder checksum"):
        prepare_benchmark("Kodak24", root, opener=BytesOpener({src.url: archive.read_bytes()}),
                          progress=False)
    folder = root / "downloads" / "extracted" / "Kodak-Lossless-True-Color-Image-Suite-master"
    # deepinv's scheme: md5 of the sorted per-file md5 hex digests
    files = sorted((folder / folder.name / "PhotoCD_PCD0992").iterdir())
    expect = hashlib.md5("".join(hashlib.md5(f.read_bytes()).hexdigest() for f in files).encode())
    assert folder_md5(files[0].parent) == expect.hexdigest()


def test_unsafe_benchmark_archive_is_not_extracted(tmp_path):
    root = tmp_path / "data"
    place(root, "Rain100H.zip", {**rain100_files("Rain100H", 100), "../../evil.png": b"x"})
    with pytest.raises(UnsafeArchiveError):
        prepare_benchmark("Rain100H", root, progress=False)
    assert not (tmp_path / "evil.png").exists()


def test_cli_exit_codes_and_module_entry_point(tmp_path, capsys):
    root = tmp_path / "data"
    assert task_main("derain", ["--root", str(root), "--only", "Rain100L", "--no-progress"]) == 2
    assert "[manual]" in capsys.readouterr().out
    place(root, "Rain100L.zip", rain100_files("Rain100L", 100))
    assert task_main("derain", ["--root", str(root), "--only", "Rain100L", "--no-progress"]) == 0
    assert "[ready]" in capsys.readouterr().out
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "data_scripts.prepare_dehaze", "--list",
                          "--root", str(root)], cwd=repo, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "SOTS-outdoor" in out.stdout and "count=500" in out.stdout


def test_benchmark_table_is_complete():
    expected = {"denoise": {"DFWB", "CBSD68", "Kodak24", "McMaster", "Urban100"},
                "deblur": {"GoPro-train", "GoPro", "HIDE", "RealBlur-J", "RealBlur-R"},
                "derain": {"Rain13K", "Rain14000", "Rain100H", "Rain100L", "Test100",
                           "Test1200", "Test2800"},
                "dehaze": {"OTS", "SOTS-outdoor"}}
    for task, names in expected.items():
        assert {b.name for b in BENCHMARKS.values() if b.task == task} == names
    for b in BENCHMARKS.values():
        assert b.options and b.evaluation and b.kind in ("clean", "paired", "dehaze")
        for opt in b.options:
            assert opt.layout in ("images", "identical", "sequences", "derain", "dehaze")
            for s in opt.sources:
                assert s.url or s.gdrive_id or s.manual, (b.name, s.filename)
    counts = {"CBSD68": 68, "Kodak24": 24, "Urban100": 100, "GoPro": 1111, "HIDE": 2025,
              "Rain100H": 100, "Rain100L": 100, "SOTS-outdoor": 500, "GoPro-train": 2103}
    assert {n: BENCHMARKS[n].count for n in counts} == counts


def test_hand_made_folder_is_adopted_or_left_alone(tmp_path):
    root = tmp_path / "data"
    dest = BENCHMARKS["Rain100L"].path(root)
    for i in range(100):
        for sub in ("input", "target"):
            (dest / sub).mkdir(parents=True, exist_ok=True)
            (dest / sub / f"{i:03d}.png").write_bytes(tiny_png())
    assert prepare_benchmark("Rain100L", root, progress=False) == dest  # adopted: 100 pairs
    assert json.loads((dest / ".prepared.json").read_text())["count"] == 100
    other = BENCHMARKS["Rain100H"].path(root)
    (other / "input").mkdir(parents=True)
    (other / "input" / "mine.png").write_bytes(tiny_png())
    place(root, "Rain100H.zip", rain100_files("Rain100H", 100))
    with pytest.raises(PrepareError, match="not made by this script"):
        prepare_benchmark("Rain100H", root, progress=False)
    assert (other / "input" / "mine.png").is_file()
