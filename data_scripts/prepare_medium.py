"""Prepare the medium offline photo set (``build_dataset("medium", ...)``) from package files.

    python -m data_scripts.prepare_medium                  # recreate + verify against the manifest
    python -m data_scripts.prepare_medium --out DIR        # recreate elsewhere, verify
    python -m data_scripts.prepare_medium --write-manifest # (maintainers) rewrite the manifest

43 natural colour photos from four offline sources (each photo's source, licence and
checksum: ``irconstyle/data/medium/manifest.json`` and ``NOTICE.md``), each downscaled to
a longer side of 256 px (antialiased bicubic, 8-bit, the rule of
``irconstyle.data.images.downscale``) and stored as PNG:

* scikit-image (the installed wheel's ``skimage/data``): 8 photos;
* sporco 0.2.2.post1 (its wheel, fetched with ``pip download --no-deps``): 5 photos;
* Debian bookworm ``opencv-doc`` 4.6.0+dfsg-12 (``apt-get download`` + ``dpkg -x`` into a
  temporary folder; nothing is installed): 18 photos;
* Debian bookworm ``mate-backgrounds`` 1.26.0-1 (same): the 12 ``nature/`` photos.

Left out on purpose: second views of a scene (motorcycle_right, aloeR, right.jpg, leuvenB,
graf3, rubberwhale2, aero3), an edited copy (ela_modified), drawings, renders, text and
test patterns, grey-only files, ``messi5.jpg`` (a press photo of a person, provenance
unclear) and the abstract/desktop wallpapers.

The split is a fixed rule (recorded in the manifest): photos are ranked within their
source by ``sha256("irconstyle-medium-split" + name)``, ordered by (rank fraction, hash) so
every source is spread evenly, and the first 12 go to test, the next 4 to val, the rest to
train. Verification compares the decoded pixels' SHA-256 (the PNG file's SHA-256 also
depends on the zlib build) and the file hash with ``manifest.json``; exit status 1 on any
mismatch.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from irconstyle.data.images import downscale
from irconstyle.data.io import read_image, write_image
from irconstyle.data.medium import (MANIFEST_NAME, MAX_SIDE, MEDIUM_DIR, pixel_sha256,
                                    read_manifest)

SPLIT_SALT = "irconstyle-medium-split"
N_TEST, N_VAL = 12, 4
SPORCO = "sporco==0.2.2.post1"
DEBS = {"opencv-doc": "4.6.0+dfsg-12", "mate-backgrounds": "1.26.0-1"}

SKIMAGE_LICENCE = "BSD-3-Clause (scikit-image package)"
OPENCV_DIR = "usr/share/doc/opencv-doc/examples/data"
OPENCV_LICENCE = ("Apache-2.0 AND BSD-3-Clause (Debian copyright, 'Files: *' of OpenCV "
                  "samples/data)")
MATE_DIR = "usr/share/backgrounds/mate/nature"
SPORCO_LICENCE = ("sporco/data/README.rst: believed public domain or freely redistributable; "
                  "package BSD-3-Clause")


@dataclass(frozen=True)
class Photo:
    name: str
    source: str  # scikit-image | sporco | opencv-doc | mate-backgrounds
    path: str  # inside the package
    licence: str


def _mate(name: str, holder: str) -> Photo:
    return Photo(name.lower(), "mate-backgrounds", f"{MATE_DIR}/{name}.jpg",
                 f"GPL-2+ (Debian copyright: {holder})")


PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut", "scikit-image", "skimage/data/astronaut.png",
          "public domain (NASA); " + SKIMAGE_LICENCE),
    Photo("chelsea", "scikit-image", "skimage/data/chelsea.png",
          "CC0 (Stefan van der Walt); " + SKIMAGE_LICENCE),
    Photo("coffee", "scikit-image", "skimage/data/coffee.png",
          "CC0 (Rachel Michetti); " + SKIMAGE_LICENCE),
    Photo("rocket", "scikit-image", "skimage/data/rocket.jpg",
          "public domain (SpaceX); " + SKIMAGE_LICENCE),
    Photo("hubble_deep_field", "scikit-image", "skimage/data/hubble_deep_field.jpg",
          "public domain (NASA); " + SKIMAGE_LICENCE),
    Photo("immunohistochemistry", "scikit-image", "skimage/data/ihc.png",
          "no known copyright restrictions; " + SKIMAGE_LICENCE),
    Photo("retina", "scikit-image", "skimage/data/retina.jpg",
          "CC0 (Hacker et al.); " + SKIMAGE_LICENCE),
    Photo("motorcycle_left", "scikit-image", "skimage/data/motorcycle_left.png",
          "Middlebury 2014 stereo (Scharstein et al., GCPR 2014), no licence stated; "
          + SKIMAGE_LICENCE),
    Photo("kodim23", "sporco", "sporco/data/kodim23.png",
          "Kodak PhotoCD #23, released for unrestricted use; " + SPORCO_LICENCE),
    Photo("monarch", "sporco", "sporco/data/monarch.png",
          "Waterloo BragZone, free of copyright restrictions; " + SPORCO_LICENCE),
    Photo("sail", "sporco", "sporco/data/sail.png",
          "Waterloo BragZone, free of copyright restrictions; " + SPORCO_LICENCE),
    Photo("tulips", "sporco", "sporco/data/tulips.png",
          "Waterloo BragZone, free of copyright restrictions; " + SPORCO_LICENCE),
    Photo("barbara", "sporco", "sporco/data/barbara.png",
          "attributed to Allen Gersho; " + SPORCO_LICENCE),
    *(Photo(stem.lower(), "opencv-doc", f"{OPENCV_DIR}/{stem}.{ext}", OPENCV_LICENCE)
      for stem, ext in (("aero1", "jpg"), ("aloeL", "jpg"), ("apple", "jpg"),
                        ("baboon", "jpg"), ("board", "jpg"), ("building", "jpg"),
                        ("butterfly", "jpg"), ("chicky_512", "png"), ("ela_original", "jpg"),
                        ("fruits", "jpg"), ("graf1", "png"), ("home", "jpg"), ("left", "jpg"),
                        ("leuvenA", "jpg"), ("orange", "jpg"), ("rubberwhale1", "png"),
                        ("squirrel_cls", "jpg"), ("stuff", "jpg"))),
    _mate("Aqua", "2008, Charles Barbin"),
    _mate("Blinds", "2008, Lennart Poettering; 2008, Andrea Cimitan"),
    _mate("Dune", "2007, Marco Cogoni; 2008, Hylke Bons"),
    _mate("FreshFlower", "2005, Jens Ansorg"),
    _mate("Garden", "2008, Charles Barbin"),
    _mate("GreenMeadow", "2005, Timothy Schellhase; 2008, Lapo Calamandrei"),
    _mate("LadyBird", "2008, Charles Barbin"),
    _mate("RainDrops", "2008, 'blackcombwhistler07'"),
    _mate("Storm", "2008, Sergey Nazarov"),
    _mate("TwoWings", "2008, Charles Barbin; 2008, Hylke Bons"),
    _mate("Wood", "2008, Jean-Francois Fortin Tam"),
    _mate("YellowFlower", "2008, Charles Barbin"),
)

SPLIT_RULE = (f"rank photos within their source by sha256('{SPLIT_SALT}' + US + name) "
              f"(US = '\\x1f'); order all by ((rank + 0.5) / photos in source, hash); "
              f"first {N_TEST} -> test, next {N_VAL} -> val, rest -> train")


def _split_key(name: str) -> str:
    return hashlib.sha256(f"{SPLIT_SALT}\x1f{name}".encode()).hexdigest()


def assign_splits(photos: tuple[Photo, ...] = PHOTOS) -> dict[str, str]:
    """name -> split by :data:`SPLIT_RULE`."""
    by_source: dict[str, list[Photo]] = {}
    for p in photos:
        by_source.setdefault(p.source, []).append(p)
    order = []
    for group in by_source.values():
        group = sorted(group, key=lambda p: _split_key(p.name))
        order += [((r + 0.5) / len(group), _split_key(p.name), p.name) for r, p in enumerate(group)]
    order.sort()
    return {name: ("test" if i < N_TEST else "val" if i < N_TEST + N_VAL else "train")
            for i, (_, _, name) in enumerate(order)}


# ---------------------------------------------------------------------- fetching the sources
def _skimage_root() -> tuple[Path, str]:
    import skimage
    return Path(skimage.__file__).parent.parent, skimage.__version__


def _sporco_root(work: Path) -> tuple[Path, str]:
    """sporco's files: the installed package if any, else its wheel unpacked member by member."""
    try:
        import sporco  # noqa: F401  (pip install --no-deps sporco)
        return Path(sporco.__file__).parent.parent, sporco.__version__
    except ImportError:
        pass
    wheels = work / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                    str(wheels), SPORCO], check=True)
    wheel = next(wheels.glob("sporco-*.whl"))
    root = work / "sporco"
    with zipfile.ZipFile(wheel) as zf:
        for p in PHOTOS:
            if p.source == "sporco":
                dest = root / p.path
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(zf.read(p.path))  # fixed member names: no path from the archive
    return root, SPORCO.split("==")[1]


def _deb_root(work: Path, debs: Path | None) -> tuple[Path, dict[str, str]]:
    """Unpack opencv-doc and mate-backgrounds (from ``debs`` or ``apt-get download``)."""
    folder = debs or work / "debs"
    folder.mkdir(parents=True, exist_ok=True)
    root = work / "root"
    versions = {}
    for pkg in DEBS:
        found = sorted(folder.glob(f"{pkg}_*.deb"))
        if not found:
            if shutil.which("apt-get") is None:
                raise SystemExit(f"no {pkg}_*.deb in {folder} and no apt-get: download it "
                                 f"on a Debian machine (apt-get download {pkg}) and pass --debs")
            subprocess.run(["apt-get", "download", pkg], cwd=folder, check=True)
            found = sorted(folder.glob(f"{pkg}_*.deb"))
        deb = found[-1]
        versions[pkg] = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True,
                                       capture_output=True, text=True).stdout.strip()
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    return root, versions


# ---------------------------------------------------------------------- preparing
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare(out: Path, work: Path, debs: Path | None) -> dict:
    """Write every photo's PNG into ``out``; return the manifest describing them."""
    sk_root, sk_version = _skimage_root()
    sp_root, sp_version = _sporco_root(work)
    deb_root, deb_versions = _deb_root(work, debs)
    roots = {"scikit-image": (sk_root, sk_version), "sporco": (sp_root, sp_version),
             **{pkg: (deb_root, v) for pkg, v in deb_versions.items()}}
    splits = assign_splits()
    out.mkdir(parents=True, exist_ok=True)
    images = []
    for p in PHOTOS:
        root, version = roots[p.source]
        original = read_image(root / p.path)
        small = downscale(original, MAX_SIDE)
        file = out / f"{p.name}.png"
        write_image(file, small)
        images.append({
            "name": p.name, "file": file.name, "split": splits[p.name], "source": p.source,
            "source_version": version, "original_path": p.path, "licence": p.licence,
            "original_size": list(original.shape[-2:]), "size": list(small.shape[-2:]),
            "sha256": _sha256(file), "pixels_sha256": pixel_sha256(read_image(file)),
        })
    counts = {s: sum(i["split"] == s for i in images) for s in ("train", "val", "test")}
    return {
        "name": "irconstyle-medium",
        "description": "natural colour photos from offline packages, longer side "
                       f"{MAX_SIDE} px, 8-bit RGB PNG; sizes are [height, width]",
        "max_side": MAX_SIDE,
        "resize": "antialiased bicubic (torch), re-quantised to 8 bit "
                  "(irconstyle.data.images.downscale)",
        "split_rule": SPLIT_RULE,
        "counts": counts,
        "command": "python -m data_scripts.prepare_medium",
        "images": images,
    }


def verify(manifest: dict, folder: Path) -> list[str]:
    """Mismatches between ``folder``'s files and ``manifest`` (empty: all good)."""
    problems = []
    splits = assign_splits()
    if splits != {i["name"]: i["split"] for i in manifest["images"]}:
        problems.append("the split rule gives other photos or splits than the manifest")
    for item in manifest["images"]:
        file = folder / item["file"]
        if not file.is_file():
            problems.append(f"{file}: missing")
            continue
        if pixel_sha256(read_image(file)) != item["pixels_sha256"]:
            problems.append(f"{file}: pixels differ from the manifest "
                            f"({item['source']} {item['source_version']})")
        elif _sha256(file) != item["sha256"]:
            print(f"note: {file.name}: same pixels, different PNG bytes (zlib build)")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=MEDIUM_DIR, help="folder of the PNGs")
    ap.add_argument("--debs", type=Path, help="folder holding opencv-doc_*.deb and "
                    "mate-backgrounds_*.deb (default: apt-get download into a temp folder)")
    ap.add_argument("--write-manifest", action="store_true",
                    help="write manifest.json from this run instead of verifying against it")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="medium-") as tmp:
        manifest = prepare(args.out, Path(tmp), args.debs)
    total = sum(f.stat().st_size for f in args.out.glob("*.png"))
    print(f"{len(manifest['images'])} photos {manifest['counts']} in {args.out}, "
          f"{total / 2**20:.2f} MiB")
    if args.write_manifest:
        (args.out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
        print(f"wrote {args.out / MANIFEST_NAME}")
        return 0
    problems = verify(read_manifest(MEDIUM_DIR), args.out)
    for p in problems:
        print(p, file=sys.stderr)
    print("verified against the manifest" if not problems else f"{len(problems)} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
