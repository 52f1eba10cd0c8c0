"""Image reading, pairing rules, datasets (determinism, resume), mini-benchmark, sub-images."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import irconstyle.data as data
from irconstyle.data.augment import dihedral_inverse
from irconstyle.data import (ImageError, build_dataset, dihedral, read_image,
                             write_image)
from irconstyle.data.subimages import crop_starts, make_subimages, tile_boxes

from fixtures.builders import png16_bytes, tiny_jpg, tiny_png, write_files


def save(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- reading
def test_read_rgb_exact_and_roundtrip(tmp_path):
    a = rgb(5, 7)
    x = read_image(save(tmp_path / "a.png", a))
    assert x.dtype == torch.float32 and x.shape == (3, 5, 7)
    assert torch.equal(x, torch.from_numpy(a).permute(2, 0, 1).float() / 255)
    write_image(tmp_path / "b.png", x)
    assert torch.equal(read_image(tmp_path / "b.png"), x)


def test_grey_is_replicated_to_rgb(tmp_path):
    g = rgb(4, 6)[..., 0]
    x = read_image(save(tmp_path / "g.png", g))
    assert x.shape == (3, 4, 6)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert torch.equal(x[0], torch.from_numpy(g).float() / 255)


def test_rgba_drops_alpha_without_compositing(tmp_path):
    a = np.dstack([rgb(4, 4), np.zeros((4, 4), np.uint8)])  # fully transparent
    x = read_image(save(tmp_path / "a.png", a))
    assert x.shape == (3, 4, 4)
    assert torch.equal(x, torch.from_numpy(a[..., :3]).permute(2, 0, 1).float() / 255)
    la = np.dstack([rgb(3, 3)[..., 0], np.full((3, 3), 7, np.uint8)])
    y = read_image(save(tmp_path / "la.png", la, "LA"))
    assert y.shape == (3, 3, 3) and torch.equal(y[2], torch.from_numpy(la[..., 0]).float() / 255)


def test_palette_image_is_converted(tmp_path):
    img = Image.fromarray(rgb(6, 6)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    img.save(tmp_path / "p.png")
    x = read_image(tmp_path / "p.png")
    ref = np.array(img.convert("RGB"))
    assert torch.equal(x, torch.from_numpy(ref).permute(2, 0, 1).float() / 255)


def test_16bit_png_is_scaled_to_unit_range(tmp_path):
    grey = np.array([[0, 1000, 65535], [30000, 12345, 2]], dtype=np.uint16)
    (tmp_path / "g16.png").write_bytes(png16_bytes(grey))
    x = read_image(tmp_path / "g16.png")
    assert torch.allclose(x[0], torch.from_numpy(grey / 65535.0).float())  # full precision
    col = np.random.default_rng(0).integers(0, 65536, (3, 4, 3)).astype(np.uint16)
    col[0, 0] = (0, 65535, 40000)
    (tmp_path / "c16.png").write_bytes(png16_bytes(col))
    y = read_image(tmp_path / "c16.png")
    assert y.shape == (3, 3, 4) and 0 <= y.min() and y.max() <= 1
    # Pillow keeps 8 bits of 16-bit colour (documented): within one 8-bit level
    assert (y - torch.from_numpy(col / 65535.0).permute(2, 0, 1)).abs().max() <= 1 / 255 + 1e-6
    assert y[1, 0, 0] == 1.0 and y[0, 0, 0] == 0.0


@pytest.mark.parametrize("content,problem", [
    (b"", "empty file"),
    (b"this is not an image", "cannot decode"),
    (tiny_png(16, 16)[:60], "cannot decode"),  # truncated PNG
])
def test_bad_files_raise_image_error_naming_the_file(tmp_path, content, problem):
    p = tmp_path / "bad.png"
    p.write_bytes(content)
    with pytest.raises(ImageError, match=problem) as err:
        read_image(p)
    assert str(p) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(ImageError, match="no such image"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(ImageError, match="holds no image") as err:
        build_dataset("denoise", gt_dir=tmp_path / "empty", split="test")
    assert "empty" in str(err.value)


# ----------------------------------------------------------------------------- pairing
def test_paired_missing_partner_and_size_mismatch(tmp_path):
    write_files(tmp_path, {"lq/a.png": tiny_png(8, 8), "lq/b.png": tiny_png(8, 8),
                           "gt/a.png": tiny_png(8, 8)})
    with pytest.raises(ImageError, match="no partner named 'b'") as err:
        build_dataset("paired", lq_dir=tmp_path / "lq", gt_dir=tmp_path / "gt", split="test")
    assert str(tmp_path / "lq" / "b.png") in str(err.value)
    (tmp_path / "gt" / "b.png").write_bytes(tiny_png(8, 10))
    ds = build_dataset("paired", lq_dir=tmp_path / "lq", gt_dir=tmp_path / "gt", split="test")
    assert ds[0]["name"] == "a"
    with pytest.raises(ImageError, match="sizes differ") as err:
        ds[1]
    assert "b.png" in str(err.value)


def test_dehaze_pairs_by_id_not_by_order(tmp_path):
    """D7: two hazy versions of 0001 and one of 0002; sorted order would mis-pair."""
    write_files(tmp_path, {"hazy/0001_0.8_0.2.jpg": tiny_jpg(), "hazy/0001_1_0.04.jpg": tiny_jpg(),
                           "hazy/0002_0.9_0.1.jpg": tiny_jpg(),
                           "clear/0001.png": tiny_png(seed=1), "clear/0002.png": tiny_png(seed=2)})
    ds = build_dataset("dehaze", hazy_dir=tmp_path / "hazy", clean_dir=tmp_path / "clear",
                       split="test")
    assert [p.gt.name for p in ds.pairs] == ["0001.png", "0001.png", "0002.png"]
    assert ds[2]["name"] == "0002_0.9_0.1"
    assert torch.equal(ds[2]["gt"], read_image(tmp_path / "clear" / "0002.png"))
    (tmp_path / "hazy" / "0003_0.8_0.2.jpg").write_bytes(tiny_jpg())
    with pytest.raises(ImageError, match="no clean partner with id '0003'"):
        build_dataset("dehaze", hazy_dir=tmp_path / "hazy", clean_dir=tmp_path / "clear",
                      split="test")


@pytest.mark.parametrize("layout", ["side_by_side", "jorder", "restormer", "ddn"])
def test_derain_layouts(tmp_path, layout):
    files = {
        "side_by_side": {"rain-001.png": tiny_png(seed=1), "norain-001.png": tiny_png(seed=2),
                         "rain-002.png": tiny_png(seed=1), "norain-002.png": tiny_png(seed=3)},
        "jorder": {"rain/norain-1x2.png": tiny_png(seed=1),
                   "norain/norain-1.png": tiny_png(seed=2),
                   "rain/norain-2x2.png": tiny_png(seed=1),
                   "norain/norain-2.png": tiny_png(seed=3)},
        "restormer": {"input/1.png": tiny_png(seed=1), "target/1.png": tiny_png(seed=2),
                      "input/2.png": tiny_png(seed=1), "target/2.png": tiny_png(seed=3)},
        "ddn": {"rainy_image/1_1.jpg": tiny_jpg(seed=1), "ground_truth/1.jpg": tiny_jpg(seed=2),
                "rainy_image/2_14.jpg": tiny_jpg(seed=1), "ground_truth/2.jpg": tiny_jpg(seed=3)},
    }[layout]
    write_files(tmp_path, files)
    ds = build_dataset("derain", root=tmp_path, split="test")
    assert len(ds) == 2
    gts = [p.gt.stem for p in ds.pairs]
    assert gts == {"side_by_side": ["norain-001", "norain-002"], "jorder": ["norain-1", "norain-2"],
                   "restormer": ["1", "2"], "ddn": ["1", "2"]}[layout]


# ----------------------------------------------------------------------------- datasets
@pytest.fixture()
def photo_dir(tmp_path) -> Path:
    for i in range(3):
        save(tmp_path / "gt" / f"im{i}.png", rgb(24 + i, 30, seed=i))
        save(tmp_path / "lq" / f"im{i}.png", rgb(24 + i, 30, seed=10 + i))
    return tmp_path


def test_train_item_is_a_pure_function_of_seed_epoch_index(photo_dir):
    kw = dict(lq_dir=photo_dir / "lq", gt_dir=photo_dir / "gt", split="train", patch_size=8,
              seed=5, repeats=4)
    a, b = build_dataset("paired", **kw), build_dataset("paired", **kw)
    assert len(a) == 12
    b.set_epoch(3)
    for i in (0, 7):
        assert torch.equal(a[(3, i)]["lq"], b[i]["lq"])
    epochs = [a[(e, 0)]["gt"] for e in range(6)]
    assert any(not torch.equal(epochs[0], e) for e in epochs[1:]), "crops must change per epoch"
    other = build_dataset("paired", **{**kw, "seed": 6})
    assert not all(torch.equal(a[(0, i)]["gt"], other[(0, i)]["gt"]) for i in range(4))
    item = a[(0, 1)]
    assert item["lq"].shape == item["gt"].shape == (3, 8, 8) and item["name"] == "im1"


def test_crop_and_flip_are_the_same_for_lq_and_gt(tmp_path):
    base = rgb(20, 20)
    save(tmp_path / "gt" / "x.png", base)
    save(tmp_path / "lq" / "x.png", base)
    ds = build_dataset("paired", lq_dir=tmp_path / "lq", gt_dir=tmp_path / "gt", split="train",
                       patch_size=6, repeats=20)
    for i in range(20):
        item = ds[i]
        assert torch.equal(item["lq"], item["gt"])


def test_same_batches_whatever_the_worker_count(photo_dir):
    from irconstyle.train.distributed import EpochShardSampler

    ds = build_dataset("denoise", gt_dir=photo_dir / "gt", split="train", sigma="random",
                       patch_size=8, seed=1, repeats=4)

    def batches(workers: int, epoch: int) -> list[torch.Tensor]:
        ds.set_epoch(epoch)
        sampler = EpochShardSampler(len(ds), batch_size=4, seed=2, epoch=epoch)
        loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers)
        return [b["lq"] for b in loader]

    zero, two = batches(0, epoch=1), batches(2, epoch=1)
    assert len(zero) == 3 and all(torch.equal(x, y) for x, y in zip(zero, two))
    assert not torch.equal(batches(0, epoch=2)[0], zero[0])


def test_dihedral_inverse_undoes_each_transform():
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).reshape(1, 2, 5, 7)
    outs = [dihedral(x, k) for k in range(8)]
    assert len({tuple(o.flatten().tolist()) for o in outs}) == 8  # eight distinct variants
    assert all(torch.equal(dihedral_inverse(o, k), x) for k, o in enumerate(outs))


def test_eval_items_are_full_unpadded_images(photo_dir):
    ds = build_dataset("paired", lq_dir=photo_dir / "lq", gt_dir=photo_dir / "gt", split="val")
    assert len(ds) == 3
    assert ds[1]["lq"].shape == (3, 25, 30)  # odd height: no padding to a multiple of 8


def test_denoise_eval_noise_is_seeded_by_image_name(photo_dir, tmp_path):
    ds = build_dataset("denoise", gt_dir=photo_dir / "gt", split="test", sigma=25)
    item = ds[0]
    noise = item["lq"] - item["gt"]
    assert abs(noise.std().item() - 25 / 255) < 0.1 * 25 / 255 and item["lq"].min() < 0
    assert torch.equal(ds[0]["lq"], item["lq"])
    other = tmp_path / "copy"
    other.mkdir()
    (other / "im0.png").write_bytes((photo_dir / "gt" / "im0.png").read_bytes())
    again = build_dataset("denoise", gt_dir=other, split="test", sigma=25)[0]
    assert torch.equal(again["lq"], item["lq"])  # same name, same noise, whatever the folder
    with pytest.raises(ValueError, match="fixed sigma"):
        build_dataset("denoise", gt_dir=photo_dir / "gt", split="val", sigma="random")


def test_reference_noise_matches_restormer_recipe(photo_dir):
    ds = build_dataset("denoise", gt_dir=photo_dir / "gt", split="test", sigma=15,
                       reference_noise=True)
    item = ds[2]
    img = np.asarray(Image.open(photo_dir / "gt" / "im2.png")).astype(np.float32) / 255.0
    np.random.seed(seed=0)
    img += np.random.normal(0, 15 / 255.0, img.shape)
    assert np.array_equal(item["lq"].permute(1, 2, 0).numpy(), img)


def test_random_sigma_varies_per_training_item(photo_dir):
    ds = build_dataset("denoise", gt_dir=photo_dir / "gt", split="train", sigma="random",
                       patch_size=16, repeats=10)
    stds = [(ds[i]["lq"] - ds[i]["gt"]).std().item() * 255 for i in range(30)]
    assert 0 <= min(stds) < 15 and 35 < max(stds) <= 55


def test_training_patch_larger_than_image_names_the_file(photo_dir):
    ds = build_dataset("paired", lq_dir=photo_dir / "lq", gt_dir=photo_dir / "gt", split="train",
                       patch_size=64)
    with pytest.raises(ImageError, match="im0.*smaller than the training patch"):
        ds[0]


def test_dihedral_group_has_eight_distinct_invertible_elements():
    x = torch.arange(12.0).view(1, 3, 4)
    outs = [dihedral(x, k) for k in range(8)]
    assert len({tuple(o.flatten().tolist()) + tuple(o.shape) for o in outs}) == 8
    assert torch.equal(outs[0], x)
    with pytest.raises(ValueError):
        dihedral(x, 8)


def test_build_dataset_table_and_errors(tmp_path):
    assert data.dataset_kinds() == ["minibench", "medium", "paired", "denoise", "dehaze", "derain"]
    with pytest.raises(KeyError, match="unknown dataset kind"):
        build_dataset("imagenet", split="train")
    with pytest.raises(ValueError, match="split"):
        build_dataset("minibench", task="denoise", split="training")


# ----------------------------------------------------------------------------- minibench
def test_minibench_split_is_by_image_and_disjoint():
    s = data.MINIBENCH_SPLITS
    assert not (set(s["train"]) & set(s["val"])) and not (set(s["val"]) & set(s["test"]))
    assert not (set(s["train"]) & set(s["test"]))
    assert "motorcycle_right" not in sum(s.values(), ())  # second view of a test scene
    assert set(sum(s.values(), ())) <= set(data.photo_names())


@pytest.mark.parametrize("task", ["denoise", "deblur", "derain", "dehaze"])
def test_minibench_items(task):
    train = build_dataset("minibench", task=task, split="train", patch_size=32, repeats=2,
                          variants=1)
    item = train[(0, 3)]
    assert set(item) == {"lq", "gt", "name"}
    assert item["lq"].dtype == torch.float32 and item["lq"].shape == (3, 32, 32)
    assert item["name"] in data.MINIBENCH_SPLITS["train"]
    assert not torch.equal(item["lq"], item["gt"])
    test_a = build_dataset("minibench", task=task, split="test", seed=0)
    test_b = build_dataset("minibench", task=task, split="test", seed=123)
    assert [test_a[i]["name"] for i in range(len(test_a))] == ["chelsea", "motorcycle_left"]
    for i in range(len(test_a)):  # the test set does not depend on the training seed
        assert torch.equal(test_a[i]["lq"], test_b[i]["lq"])
        assert max(test_a[i]["gt"].shape[-2:]) == 256
    if task != "denoise":
        assert 0 <= test_a[0]["lq"].min() and test_a[0]["lq"].max() <= 1


def test_minibench_random_sigma_and_eval_guard():
    ds = build_dataset("minibench", task="denoise", split="train", sigma="random", patch_size=32)
    stds = [(ds[i]["lq"] - ds[i]["gt"]).std().item() * 255 for i in range(20)]
    assert max(stds) - min(stds) > 15
    with pytest.raises(ValueError, match="fixed sigma"):
        build_dataset("minibench", task="denoise", split="test", sigma="random")


def test_minibench_downscaled_photos_are_8bit():
    x = data.load_photo("retina", max_side=64)
    assert max(x.shape[-2:]) == 64
    assert torch.equal(x, (x * 255).round() / 255)


# ----------------------------------------------------------------------------- sub-images
def test_crop_starts_cover_the_image_with_full_tiles():
    assert crop_starts(1000, 512, 384) == [0, 384, 488]
    assert crop_starts(512, 512, 384) == [0] and crop_starts(300, 512, 384) == [0]
    assert crop_starts(896, 512, 384) == [0, 384]
    boxes = tile_boxes(700, 1000, 512, 384)
    assert len(boxes) == 2 * 3 and boxes[-1] == (488, 188, 1000, 700)


def test_make_subimages_paired_and_idempotent(tmp_path):
    for name, (h, w) in {"a": (40, 50), "b": (20, 20)}.items():
        save(tmp_path / "in" / f"{name}.png", rgb(h, w, 1))
        save(tmp_path / "tg" / f"{name}.png", rgb(h, w, 2))
    outs = [tmp_path / "out_in", tmp_path / "out_tg"]
    n = make_subimages([tmp_path / "in", tmp_path / "tg"], outs, crop=32, step=24,
                       progress=False)
    assert n == 4 + 1  # a: 2x2 tiles; b is smaller than the crop: kept whole
    names = sorted(p.name for p in outs[0].glob("*.png"))
    assert names == sorted(p.name for p in outs[1].glob("*.png"))
    assert names[:4] == ["a_s000.png", "a_s001.png", "a_s002.png", "a_s003.png"]
    tile = np.asarray(Image.open(outs[0] / "a_s003.png"))
    assert np.array_equal(tile, rgb(40, 50, 1)[8:40, 18:50])
    mtime = (outs[0] / "a_s000.png").stat().st_mtime_ns
    assert make_subimages([tmp_path / "in", tmp_path / "tg"], outs, crop=32, step=24,
                          progress=False) == 5
    assert (outs[0] / "a_s000.png").stat().st_mtime_ns == mtime


# ----------------------------------------------------------------------------- layering
def test_data_layer_imports_nothing_from_upper_layers():
    pkg = Path(data.__file__).parent
    for path in pkg.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                mod = ("." * node.level) + (node.module or "")
                assert node.level <= 1, f"{path.name} reaches above irconstyle.data: {mod}"
                assert not (node.module or "").startswith(("irconstyle.nets", "irconstyle.train",
                                                           "irconstyle.cli", "irconstyle.nets.zoo")), mod
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("irconstyle"), f"{path.name}: {alias.name}"


class _GlobalDraw(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> float:
        return float(np.random.rand())


def test_seed_worker_reseeds_numpy_every_epoch():
    """D12: global NumPy draws in workers must not repeat from one epoch to the next."""
    loader = DataLoader(_GlobalDraw(), batch_size=2, num_workers=2,
                        worker_init_fn=data.seed_worker,
                        generator=torch.Generator().manual_seed(0))
    first, second = [torch.cat(list(loader)) for _ in range(2)]
    assert not torch.equal(first, second)
    assert len(set(first.tolist())) == 4  # the two workers differ too
