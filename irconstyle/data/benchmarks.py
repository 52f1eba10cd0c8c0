"""The real benchmarks: where each comes from, what it holds, and where it goes on disk.

One explicit table, :data:`BENCHMARKS`. Each entry names where its files come from (the
URL, Google Drive id or manual steps of each :class:`Source`, with a ``note`` for mirrors);
the layouts follow Restormer's ``Datasets/`` READMEs (github.com/swz30/Restormer) and the
datasets' papers are on the book's references page. Some published counts are only widely
reported, so the preparation step asserts every count instead of trusting it.

Canonical layout under a data root (Restormer's ``Datasets/`` tree, one level per task):

* ``{root}/{task}/{role}/{folder}/`` with ``role`` = ``train`` or ``test``;
* clean-only sets (denoising): the images directly in the folder;
* paired sets (deblurring, deraining): ``input/`` and ``target/`` with identical stems;
* dehazing sets: ``hazy/`` (``0001_0.8_0.2.jpg``) and ``clear/`` (``0001.png``), paired by ID;
* downloads and their unpacked copies: ``{root}/downloads/`` and ``{root}/downloads/extracted/``.

Each benchmark lists one or more :class:`Option` s, tried in order: the first whose files
are already in ``downloads/`` wins, otherwise the first that can be fetched unattended.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Source", "Option", "Benchmark", "BENCHMARKS", "benchmark_names", "get_benchmark"]


@dataclass(frozen=True)
class Source:
    """One file to fetch into ``downloads/{filename}``."""
    filename: str
    url: str | None = None          # direct http(s)/file URL
    gdrive_id: str | None = None    # Google Drive file id (fetched with gdown when installed)
    sha256: str | None = None       # none is published for these archives: recorded on first fetch
    size: int | None = None
    manual: str = ""                # steps for sources that need a person (login, password)

    @property
    def automatic(self) -> bool:
        return self.url is not None


@dataclass(frozen=True)
class Option:
    """A set of files that together give one benchmark, and how to read them.

    ``layout`` says how the unpacked files are organised: ``images`` (clean images;
    several ``find`` folders are merged, each file prefixed with its folder name, as in
    Restormer's DFWB), ``identical`` (``input/`` + ``target/``), ``sequences`` (GoPro's
    ``<seq>/blur`` + ``<seq>/sharp``), ``derain`` (any deraining layout), ``dehaze``
    (``hazy|haze`` + ``clear|gt``). ``find`` names the folder(s) to look for inside the
    unpacked archives (matched on the trailing path components, case-insensitively;
    empty: any folder with the layout's sub-folders).
    """
    sources: tuple[Source, ...]
    layout: str
    find: tuple[str, ...] = ()
    folder_md5: str | None = None   # deepinv's folder checksum of the found folder
    note: str = ""


@dataclass(frozen=True)
class Benchmark:
    name: str
    task: str                       # denoise | deblur | derain | dehaze
    role: str                       # train | test
    folder: str                     # canonical folder name under {root}/{task}/{role}/
    kind: str                       # output layout: clean | paired | dehaze
    count: int | None               # expected images (clean) or degraded images (pairs)
    evaluation: str                 # the evaluation convention used in the literature
    options: tuple[Option, ...] = field(default_factory=tuple)
    notes: str = ""

    def path(self, root: str | os.PathLike) -> Path:
        return Path(root) / self.task / self.role / self.folder

    def dataset_spec(self, root: str | os.PathLike) -> tuple[str, dict]:
        """(kind for :func:`build_dataset`, its folder arguments) for the prepared set."""
        p = self.path(root)
        if self.kind == "clean":
            return "denoise", {"gt_dir": p}
        if self.kind == "paired":
            return "paired", {"lq_dir": p / "input", "gt_dir": p / "target"}
        return "dehaze", {"hazy_dir": p / "hazy", "clean_dir": p / "clear"}


def _gd(filename: str, file_id: str, note: str = "") -> Source:
    return Source(filename=filename, gdrive_id=file_id, manual=note)


# Restormer's Google Drive archives (swz30/Restormer @ df766d55, */download_data.py).
_DENOISE_TEST = _gd("restormer_denoise_test.zip", "1mwMLt-niNqcQpfN_ZduG9j4k6P_ZkOl0")
_DERAIN_TEST = _gd("restormer_derain_test.zip", "1P_-RAvltEoEhfT-9GrWRdpEi6NSswTs8")
_GOPRO_LARGE = Source("GOPRO_Large.zip",
                      url="https://cv.snu.ac.kr/~snah/Deblur/dataset/GOPRO_Large.zip")
_JORDER = ("Rain100H/L (old 100-image version) from the JORDER project page "
           "http://www.icst.pku.edu.cn/struct/Projects/joint_rain_removal.html (links to "
           "Baidu/Google Drive)")

_EVAL_DENOISE = ("PSNR on RGB, uint8, full image (Restormer evaluate_gaussian_color_denoising.py); "
                 "IRConStyle reports PSNR/SSIM on RGB and Y, crop 0")
_EVAL_GOPRO = ("PSNR/SSIM on RGB, uint8, full image (Restormer evaluate_gopro_hide.m; MATLAB "
               "ssim is a 3-D SSIM on RGB); IRConStyle: RGB and Y, crop 0")
_EVAL_REALBLUR = ("RealBlur protocol: ECC homography alignment + valid mask, PSNR/SSIM on RGB "
                  "in [0,1], SSIM 5 px border (Restormer evaluate_realblur.py)")
_EVAL_DERAIN = ("PSNR/SSIM on Y (BT.601, MATLAB rgb2ycbcr), full image, Wang 2003 SSIM "
                "(Restormer evaluate_PSNR_SSIM.m); IRConStyle: RGB and Y, crop 0")
_EVAL_SOTS = "PSNR on RGB, full image (MAXIM run_eval.py); IRConStyle: RGB and Y, crop 0"
_TRAIN = "training set (not evaluated)"


def _restormer_test(task: str, name: str, folder: str, count: int | None, source: Source,
                    evaluation: str, notes: str = "") -> Benchmark:
    return Benchmark(name, task, "test", folder, "paired", count, evaluation,
                     (Option((source,), "identical", (folder,)),), notes)


_BENCHMARK_LIST: tuple[Benchmark, ...] = (
    # ------------------------------------------------------------------ denoising
    Benchmark("DFWB", "denoise", "train", "DFWB", "clean", None, _TRAIN, (
        Option((_gd("WaterlooED.zip", "19_mCE_GXfmE5yYsm-HEzuZQqmwMjPpJr"),
                _gd("DIV2K.zip", "13wLWWXvFkuYYVZMMAYiMVdSA7iVEf2fM"),
                _gd("BSD400.zip", "1idKFDkAHJGAFDn1OyXZxsTbOSBx9GS8N"),
                _gd("Flickr2K.zip", "1J8xjFCrVzeYccD-LF08H7HiIsmi8l2Wn")),
               "images", ("WaterlooED", "DIV2K", "BSD400", "Flickr2K")),),
           notes="DIV2K + Flickr2K + Waterloo Exploration + BSD400 (Restormer); counts of "
                 "the parts are not confirmed, so none is asserted. Cut into 512 px "
                 "sub-images with data_scripts/make_subimages.py."),
    Benchmark("CBSD68", "denoise", "test", "CBSD68", "clean", 68, _EVAL_DENOISE,
              (Option((_DENOISE_TEST,), "images", ("CBSD68",)),)),
    Benchmark("Kodak24", "denoise", "test", "Kodak", "clean", 24, _EVAL_DENOISE, (
        Option((Source("Kodak-Lossless-True-Color-Image-Suite-master.zip",
                       url="https://github.com/MohamedBakrAli/Kodak-Lossless-True-Color-"
                           "Image-Suite/archive/refs/heads/master.zip"),),
               "images", ("PhotoCD_PCD0992",), folder_md5="5b16b585b8f20e8ea62af85837d40e40",
               note="GitHub mirror; folder checksum from deepinv datasets/kodak24.py"),
        Option((_DENOISE_TEST,), "images", ("Kodak",))),
              notes="Restormer's folder name is 'Kodak'"),
    Benchmark("McMaster", "denoise", "test", "McMaster", "clean", 18, _EVAL_DENOISE,
              (Option((_DENOISE_TEST,), "images", ("McMaster",)),),
              notes="also at https://www4.comp.polyu.edu.hk/~cslzhang/CDM_Dataset.htm; "
                    "18 images [U]"),
    Benchmark("Urban100", "denoise", "test", "Urban100", "clean", 100, _EVAL_DENOISE, (
        Option((Source("Urban100_HR.tar.gz",
                       url="https://huggingface.co/datasets/eugenesiow/Urban100/resolve/main/"
                           "data/Urban100_HR.tar.gz"),),
               "images", ("Urban100_HR",), folder_md5="6e0640850d436a359e0a9baf5eabd27b",
               note="Hugging Face mirror; folder checksum from deepinv datasets/urban100.py"),
        Option((_DENOISE_TEST,), "images", ("Urban100",)))),
    # ------------------------------------------------------------------ deblurring
    Benchmark("GoPro-train", "deblur", "train", "GoPro", "paired", 2103, _TRAIN, (
        Option((_GOPRO_LARGE,), "sequences", ("train",), note="official GoPro_Large, blur/sharp"),
        Option((_gd("restormer_gopro_train.zip", "1zgALzrLCC_tcXKu_iHQTHukKUVT1aodI"),),
               "identical", ("train",)))),
    Benchmark("GoPro", "deblur", "test", "GoPro", "paired", 1111, _EVAL_GOPRO, (
        Option((_GOPRO_LARGE,), "sequences", ("test",), note="official GoPro_Large, blur/sharp"),
        Option((_gd("restormer_gopro_test.zip", "1k6DTSHu4saUgrGTYkkZXTptILyG9RRll"),),
               "identical", ("GoPro",)))),
    _restormer_test("deblur", "HIDE", "HIDE", 2025,
                    _gd("restormer_hide_test.zip", "1XRomKYJF1H92g1EuD06pCQe4o6HlwB7A"),
                    _EVAL_GOPRO),
    _restormer_test("deblur", "RealBlur-J", "RealBlur_J", 980,
                    _gd("restormer_realblur_j_test.zip", "1Rb1DhhXmX7IXfilQ-zL9aGjQfAAvQTrW"),
                    _EVAL_REALBLUR, "official: http://cg.postech.ac.kr/research/RealBlur/ "
                                    "(CC BY 4.0); 980 pairs [U]"),
    _restormer_test("deblur", "RealBlur-R", "RealBlur_R", 980,
                    _gd("restormer_realblur_r_test.zip", "1glgeWXCy7Y0qWDc0MXBTUlZYJf8984hS"),
                    _EVAL_REALBLUR, "official: http://cg.postech.ac.kr/research/RealBlur/ "
                                    "(CC BY 4.0); 980 pairs [U]"),
    # ------------------------------------------------------------------ deraining
    Benchmark("Rain13K", "derain", "train", "Rain13K", "paired", 13712, _TRAIN, (
        Option((_gd("restormer_derain_train.zip", "14BidJeG4nSNuFNFDf99K-7eErCq4i47t"),),
               "identical", ("Rain13K",)),),
              notes="merge of Rain14000, Rain1800, Rain800, Rain12...; 13,712 pairs [U]"),
    Benchmark("Rain14000", "derain", "train", "Rain14000", "paired", None, _TRAIN, (
        Option((Source("Rain14000.zip", manual=(
            "DDN's Rain14000 (Fu et al. 2017) is linked from "
            "https://xueyangfu.github.io/projects/cvpr2017.html. Save the archive as "
            "downloads/Rain14000.zip (rainy '{id}_{k}.jpg' next to clean '{id}.jpg' folders "
            "are paired automatically).")),), "derain"),),
              notes="what IRConStyle's configs train deraining on; count not confirmed"),
    Benchmark("Rain100H", "derain", "test", "Rain100H", "paired", 100, _EVAL_DERAIN, (
        Option((_DERAIN_TEST,), "identical", ("Rain100H",)),
        Option((Source("Rain100H.zip", manual=f"{_JORDER}; save as downloads/Rain100H.zip"),),
               "derain", ("Rain100H",)))),
    Benchmark("Rain100L", "derain", "test", "Rain100L", "paired", 100, _EVAL_DERAIN, (
        Option((_DERAIN_TEST,), "identical", ("Rain100L",)),
        Option((Source("Rain100L.zip", manual=f"{_JORDER}; save as downloads/Rain100L.zip"),),
               "derain", ("Rain100L",)))),
    _restormer_test("derain", "Test100", "Test100", 100, _DERAIN_TEST, _EVAL_DERAIN,
                    "Rain800 test split [U]"),
    _restormer_test("derain", "Test1200", "Test1200", 1200, _DERAIN_TEST, _EVAL_DERAIN,
                    "DID-MDN Rain1200 [U]"),
    _restormer_test("derain", "Test2800", "Test2800", 2800, _DERAIN_TEST, _EVAL_DERAIN,
                    "Rain14000 test split [U]"),
    # ------------------------------------------------------------------ dehazing
    Benchmark("OTS", "dehaze", "train", "OTS", "dehaze", 313950, _TRAIN, (
        Option((Source("OTS.zip", manual=(
            "RESIDE OTS is on Baidu Pan (https://pan.baidu.com/s/1c2rW4hi, password 5vss) "
            "and in the Google Drive folder 1eL4Qs-WNj7PzsKwDRsgUEzmysdjkRs22 (`gdown "
            "--folder`). Put the hazy and clear images in one archive saved as "
            "downloads/OTS.zip, or unpack them yourself into downloads/extracted/OTS/ "
            "(folders named hazy|haze and clear|gt).")),), "dehaze"),),
              notes="8,970 clean x 35 (A, beta) = 313,950 hazy images"),
    Benchmark("SOTS-outdoor", "dehaze", "test", "SOTS-outdoor", "dehaze", 500, _EVAL_SOTS, (
        Option((_gd("SOTS.zip", "16j2dwVIa9q_0RtpIXMzhu-7Q6dwz_D1N",
                    "mirror from the c-yn/CSNet README; official: Baidu Pan https://pan."
                    "baidu.com/share/init?surl=SSVzR058DX5ar5WL5oBTLg, password s6tu"),),
               "dehaze", ("outdoor",)),)),
)

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in _BENCHMARK_LIST}


def benchmark_names(task: str | None = None) -> list[str]:
    return [b.name for b in _BENCHMARK_LIST if task is None or b.task == task]


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]
