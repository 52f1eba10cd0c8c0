"""Data: image I/O, synthetic degradations, the offline mini-benchmark, real benchmarks.
May import: runtime.

A network knows no data set: nothing below training imports this folder but evaluation.
Entry point for training code: :func:`build_dataset`.
"""
from .augment import dihedral
from .benchmarks import BENCHMARKS, Benchmark, Option, Source, benchmark_names, get_benchmark
from .build import DATASETS, benchmark_dataset, build_dataset, dataset_kinds
from .degrade import (RESIDE_OTS_AIRLIGHT, RESIDE_OTS_BETA, add_gaussian_noise, add_haze,
                      add_rain, convolve2d, depth_proxy, estimate_transmission, line_kernel,
                      motion_blur, motion_kernel, rain_layer, stable_seed, streak_angle,
                      transmission)
from .download import (DownloadError, ManualDownloadRequired, UnsafeArchiveError, download,
                       safe_extract, sha256_file)
from .images import PHOTOS, load_photo, motorcycle_depth, photo_names
from .io import IMAGE_EXTENSIONS, ImageError, list_images, read_image, write_image
from .minibench import MINIBENCH_SPLITS, TASKS, MiniBench, degrade_for_task
from .paired import SPLITS, NoisyImages, PairedImages, RestorationDataset
from .pairs import Pair, dehaze_key, dehaze_pairs, derain_key, derain_pairs, pair_identical
from .prepare import PrepareError, prepare_benchmark, prepare_task
from .sampling import item_generator, item_seed, seed_worker
from .subimages import make_subimages

__all__ = [
    # datasets
    "build_dataset", "benchmark_dataset", "dataset_kinds", "DATASETS", "SPLITS",
    "RestorationDataset", "PairedImages", "NoisyImages", "MiniBench", "TASKS",
    "MINIBENCH_SPLITS", "degrade_for_task",
    # sampling / augmentation
    "item_generator", "item_seed", "seed_worker", "dihedral",
    # degradations
    "add_gaussian_noise", "motion_kernel", "motion_blur", "convolve2d", "line_kernel",
    "rain_layer", "add_rain", "streak_angle", "transmission", "add_haze",
    "estimate_transmission", "depth_proxy", "RESIDE_OTS_AIRLIGHT", "RESIDE_OTS_BETA",
    "stable_seed",
    # images and files
    "ImageError", "read_image", "write_image", "list_images", "IMAGE_EXTENSIONS",
    "PHOTOS", "photo_names", "load_photo", "motorcycle_depth",
    "Pair", "pair_identical", "dehaze_key", "dehaze_pairs", "derain_key", "derain_pairs",
    # benchmarks, downloads, preparation
    "BENCHMARKS", "Benchmark", "Option", "Source", "benchmark_names", "get_benchmark",
    "download", "safe_extract", "sha256_file", "DownloadError", "ManualDownloadRequired",
    "UnsafeArchiveError", "PrepareError", "prepare_benchmark", "prepare_task",
    "make_subimages",
]
