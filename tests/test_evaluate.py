"""Protocols (each against an independent computation on real photos), the evaluation
loop (padding geometry, self-ensemble, result files) and weight loading."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from scipy import ndimage, signal
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import irconstyle
from irconstyle.data.augment import dihedral
from irconstyle.evaluation.ecc import find_homography_ecc, realblur_scores, warp_perspective
from irconstyle.evaluation.evaluate import (evaluate, evaluate_checkpoint, evaluation_dataset, load_model,
                                 restore)
from irconstyle.evaluation.metrics import gaussian_window, psnr
from irconstyle.evaluation.protocols import BENCHMARKS, PROTOCOLS, convention, score
from irconstyle.checkpoints.weights import WeightsError, load_into, read_weights

TINY = dict(width=8, left_blk_num=[1, 1, 1], bottom_blk_num=1, right_blk_num=[1, 1, 1])
BRIEF_BENCHMARKS = ["CBSD68", "Kodak24", "McMaster", "Urban100", "GoPro", "HIDE", "RealBlur_J",
                    "RealBlur_R", "Rain100H", "Rain100L", "Test100", "Test1200", "Test2800", "SOTS"]


def _tiny(seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = irconstyle.build_model("constyle_nafnet", **{**TINY, "constyle_train": False, **kw})
    with torch.no_grad():  # non-zero branch scales, so the blocks do something
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0, 0.1)
    return model.eval()


def _crop(name: str, size: int, top: int = 60, left: int = 100) -> np.ndarray:
    return getattr(data, name)()[top:top + size, left:left + size]


def _noisy(gt: np.ndarray, sigma: float = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(gt + rng.normal(0, sigma, gt.shape)), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- the table
def test_table_covers_every_benchmark_and_protocol() -> None:
    assert set(BENCHMARKS) == set(BRIEF_BENCHMARKS)
    for name in [*BRIEF_BENCHMARKS, "minibench_denoise", "minibench_anything"]:
        for protocol in PROTOCOLS:
            conv = convention(name, protocol)
            assert conv.protocol == protocol
            assert conv.pad_gt == (protocol == "release")
            # every convention names where it comes from: a public address or the
            # book's fidelity page (both ship with the repository)
            assert ("github.com/" in conv.source or "book/fidelity.md" in conv.source
                    or name.startswith("minibench_"))
    assert convention("Rain100H", "canonical").primary == "y"
    assert convention("GoPro", "canonical").scorer == "matlab"
    assert convention("RealBlur_R", "canonical").scorer == "realblur"
    assert convention("RealBlur-J", "canonical") == convention("RealBlur_J", "canonical")
    assert convention("SOTS-outdoor", "release") == convention("SOTS", "release")
    with pytest.raises(ValueError, match="unknown benchmark 'BSD'"):
        convention("BSD", "basicsr")
    with pytest.raises(ValueError, match="unknown protocol"):
        convention("GoPro", "official")


# ----------------------------------------------------------------------------- scorers
@pytest.mark.parametrize("photo", ["astronaut", "coffee"])
def test_basicsr_scorer_is_skimage(photo: str) -> None:
    gt = _crop(photo, 96)
    out = _noisy(gt)
    s = score(out, gt, convention("CBSD68", "canonical"))
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert s["psnr_rgb"] == pytest.approx(peak_signal_noise_ratio(gt, out, data_range=255), abs=1e-9)
    assert s["ssim_rgb"] == pytest.approx(structural_similarity(gt, out, channel_axis=-1, **kw), abs=1e-9)
    y = lambda im: 16 + im.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255  # noqa: E731
    assert s["psnr_y"] == pytest.approx(peak_signal_noise_ratio(y(gt), y(out), data_range=255), abs=1e-9)
    assert s["ssim_y"] == pytest.approx(structural_similarity(y(gt), y(out), **kw), abs=1e-9)


def _gauss2d() -> np.ndarray:
    g = gaussian_window()
    return np.outer(g, g)


def _ssim_from(filt, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ma, mb = filt(a), filt(b)
    va, vb, cov = filt(a * a) - ma ** 2, filt(b * b) - mb ** 2, filt(a * b) - ma * mb
    return ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))


def test_matlab_scorer_gopro_hide_is_a_direct_volume_computation() -> None:
    gt = _crop("chelsea", 48).astype(np.uint8)
    out = ndimage.uniform_filter(gt, (3, 3, 1))  # a blur
    s = score(out, gt, convention("GoPro", "canonical"))
    g = gaussian_window()
    k3 = g[:, None, None] * g[None, :, None] * g[None, None, :]

    def vol(v):  # MATLAB imgaussfilt3: replicate padding, same size
        return signal.correlate(np.pad(v, 5, mode="edge"), k3, mode="valid", method="direct")

    a, b = out.astype(np.float64), gt.astype(np.float64)
    assert s["ssim_rgb"] == pytest.approx(_ssim_from(vol, a, b).mean(), abs=1e-10)
    assert s["psnr_rgb"] == pytest.approx(peak_signal_noise_ratio(gt, out, data_range=255), abs=1e-9)
    assert score(out, gt, convention("HIDE", "canonical")) == s


def _matlab_y(img: np.ndarray) -> np.ndarray:
    y = 16 + (65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255
    return np.clip(np.round(y), 0, 255)


@pytest.mark.parametrize("photo", ["astronaut", "coffee"])
def test_matlab_y_scorer_deraining_is_wang_ssim_on_rounded_y(photo: str) -> None:
    gt = _crop(photo, 64)
    out = _noisy(gt, 15, seed=3)
    s = score(out, gt, convention("Rain100L", "canonical"))
    ya, yb = _matlab_y(out.astype(np.float64)), _matlab_y(gt.astype(np.float64))
    rmse = math.sqrt(np.mean((ya - yb) ** 2))
    assert s["psnr_y"] == pytest.approx(20 * math.log10(255 / rmse), abs=1e-9)
    wang = _ssim_from(lambda v: signal.correlate2d(v, _gauss2d(), mode="valid"), ya, yb)
    assert s["ssim_y"] == pytest.approx(wang.mean(), abs=1e-10)
    # rounding Y changes the score a little compared with BasicSR's float Y
    assert s["psnr_y"] != score(out, gt, convention("Rain100L", "basicsr"))["psnr_y"]


def test_realblur_scores_with_a_full_mask_are_skimage() -> None:
    gt = _crop("coffee", 64) / 255.0
    out = _noisy(_crop("coffee", 64)) / 255.0
    mask = np.ones_like(gt)
    p, s = realblur_scores(out, gt, mask)
    assert p == pytest.approx(peak_signal_noise_ratio(gt, out, data_range=1), abs=1e-9)
    ref = structural_similarity(gt, out, channel_axis=-1, gaussian_weights=True,
                                use_sample_covariance=False, data_range=1)
    assert s == pytest.approx(ref, abs=1e-9)  # skimage also drops a 5 px border


def _displacement(w: np.ndarray, h: np.ndarray, n: int) -> float:
    ys, xs = np.mgrid[0:n, 0:n]
    pts = np.stack([xs.ravel(), ys.ravel(), np.ones(n * n)])
    a, b = w @ pts, h @ pts
    return float(np.abs(a[:2] / a[2] - b[:2] / b[2]).mean())


@pytest.mark.parametrize("photo", ["chelsea", "coffee"])
def test_realblur_protocol_recovers_a_known_homography(photo: str) -> None:
    """A prediction that is the ground truth seen through a known homography (real
    content beyond the crop, no reflected borders): ECC finds the homography and the
    aligned PSNR is high, where the unaligned one is not.  The same ECC agreed with
    OpenCV 5.0's findTransformECC within 0.01 px mean displacement on such data."""
    h = np.array([[1.01, 0.01, 1.3], [-0.008, 0.995, -0.9], [2e-5, -1e-5, 1.0]])
    full = getattr(data, photo)() / 255.0
    n, top, left = 128, 60, 100
    gt = np.round(full[top:top + n, left:left + n] * 255).astype(np.uint8)
    to_full = np.array([[1, 0, left], [0, 1, top], [0, 0, 1.0]]) @ np.linalg.inv(h)
    pred = np.round(np.clip(warp_perspective(full, to_full, order="cubic", shape=(n, n)), 0, 1)
                    * 255).astype(np.uint8)
    ecc = find_homography_ecc(gt / 255.0, pred / 255.0)
    assert ecc.iterations == 100 and ecc.converged
    assert _displacement(ecc.warp, h, n) < 0.1
    s = score(pred, gt, convention("RealBlur_J", "canonical"))
    assert s["psnr_rgb"] > 35 and s["ssim_rgb"] > 0.97 and s["psnr_y"] > 36
    assert psnr(pred, gt) < 22
    # a perfect prediction stays put
    same = score(gt, gt, convention("RealBlur_R", "canonical"))
    assert same["psnr_rgb"] == math.inf and same["ssim_rgb"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- evaluate
def _pairs(h: int = 45, w: int = 53):
    out = []
    for i, name in enumerate(["astronaut", "coffee"]):
        gt = _crop(name, max(h, w))[:h, :w]
        out.append((name, _noisy(gt, 20, seed=i), gt))
    return out


def test_basicsr_and_release_geometry() -> None:
    model = _tiny()
    pairs = _pairs()
    basic = evaluate(model, pairs, protocol="basicsr", benchmark="minibench_denoise")
    release = evaluate(model, pairs, protocol="release", benchmark="minibench_denoise")
    for (name, lq, gt), b, r in zip(pairs, basic["images"], release["images"]):
        x = torch.from_numpy(lq / 255.0).permute(2, 0, 1)[None].float()
        with torch.no_grad():
            out = model(x)
            # the release: lq and gt reflect-padded bottom/right to 8, output not cropped
            lq_p = np.pad(lq / 255.0, ((0, 3), (0, 3), (0, 0)), mode="reflect")
            out_p = model(torch.from_numpy(lq_p).permute(2, 0, 1)[None].float())
        gt_p = np.pad(gt, ((0, 3), (0, 3), (0, 0)), mode="reflect")
        assert out_p.shape[-2:] == (48, 56)
        assert b["name"] == name and b["psnr_rgb"] == pytest.approx(psnr(out, gt), abs=1e-12)
        assert b["ssim_y"] == pytest.approx(irconstyle.evaluation.metrics.ssim(out, gt, y_channel=True))
        assert r["psnr_rgb"] == pytest.approx(psnr(out_p, gt_p), abs=1e-12)
        assert r["psnr_y"] == pytest.approx(psnr(out_p, gt_p, y_channel=True), abs=1e-12)
        assert r["psnr_rgb"] != b["psnr_rgb"]
    assert basic["mean"]["psnr_rgb"] == pytest.approx(np.mean([r["psnr_rgb"] for r in basic["images"]]))
    assert release["protocol"] == "release" and "D2" in release["source"]


def test_release_pads_to_8_even_when_the_model_needs_16() -> None:
    """The release's datasets pad to 8 (64 for MAXIM); the original 4-level NAFNet pads
    further inside and crops back to the 8-padded size."""
    torch.manual_seed(0)
    model = irconstyle.build_model("nafnet", width=8, enc_blk_nums=(1, 1, 1, 1), middle_blk_num=1,
                                   dec_blk_nums=(1, 1, 1, 1)).eval()
    assert model.size_factor == 16
    name, lq, gt = _pairs()[0]
    res = evaluate(model, [(name, lq, gt)], protocol="release", benchmark="CBSD68")
    # Independent of the model's own padding: the release's dataset reflect-pads 45x53 to
    # 48x56; NAFNet's check_image_size then zero-pads right and bottom to 48x64, which we
    # do here, so the model (given a multiple of 16) pads nothing; crop back to 48x56.
    lq_8 = np.pad(lq / 255.0, ((0, 3), (0, 3), (0, 0)), mode="reflect")
    gt_8 = np.pad(gt, ((0, 3), (0, 3), (0, 0)), mode="reflect")
    outs = {}
    for mode in ("constant", "reflect"):
        lq_16 = np.pad(lq_8, ((0, 0), (0, 8), (0, 0)), mode=mode)
        with torch.no_grad():
            full = model(torch.from_numpy(lq_16).permute(2, 0, 1)[None].float())
        assert full.shape[-2:] == (48, 64)
        outs[mode] = irconstyle.evaluation.metrics.ssim(full[..., :48, :56], gt_8)
    assert res["images"][0]["ssim_rgb"] == pytest.approx(outs["constant"], abs=1e-12)
    assert outs["reflect"] != pytest.approx(outs["constant"], abs=1e-9)  # the check can fail


def test_self_ensemble_runs_the_whole_model_on_each_transform() -> None:
    model = _tiny(1)
    x = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(0))
    inverse = {k: (k if k >= 4 else (4 - k) % 4) for k in range(8)}  # reflections are involutions
    with torch.no_grad():
        ref = sum(dihedral(model(dihedral(x, k)), inverse[k]) for k in range(8)) / 8
        plain = model(x)
    ens = restore(model, x, self_ensemble=True)
    torch.testing.assert_close(ens, ref, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(ens, plain, atol=1e-4)
    tiled = restore(model, x, self_ensemble=True, tile=16, overlap=8)
    assert tiled.shape == x.shape


def test_result_files_and_images(tmp_path) -> None:
    model = _tiny()
    pairs = _pairs()
    res = evaluate(model, [{"lq": torch.from_numpy(lq / 255.0).permute(2, 0, 1).float(),
                            "gt": gt, "name": name} for name, lq, gt in pairs],
                   protocol="release", benchmark="SOTS", save_dir=tmp_path / "r",
                   save_images=True, weights="test")
    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    assert saved["protocol"] == "release" and saved["benchmark"] == "SOTS"
    assert saved["weights"] == "test" and saved["n_images"] == 2
    assert saved["mean"]["psnr_rgb"] == pytest.approx(res["mean"]["psnr_rgb"])
    with open(tmp_path / "r" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["astronaut", "coffee", "mean"]
    assert set(["psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y"]) <= set(rows[0])
    assert float(rows[-1]["ssim_y"]) == pytest.approx(np.mean([float(r["ssim_y"]) for r in rows[:2]]))
    from PIL import Image

    for name, _, gt in pairs:  # saved at the true size even under the release protocol
        assert Image.open(tmp_path / "r" / "images" / f"{name}.png").size == (gt.shape[1], gt.shape[0])


def test_evaluate_rejects_bad_data() -> None:
    model = _tiny()
    gt = _crop("coffee", 32)
    with pytest.raises(ValueError, match="bad: lq .* and gt .* differ"):
        evaluate(model, [("bad", gt[:30], gt)], protocol="basicsr", benchmark="SOTS")
    nan = np.full((32, 32, 3), np.nan, np.float32)
    with pytest.raises(ValueError, match="nanimg: lq contains NaN"):
        evaluate(model, [("nanimg", nan, gt)], protocol="basicsr", benchmark="SOTS")
    with pytest.raises(ValueError, match="no image"):
        evaluate(model, [], protocol="basicsr", benchmark="SOTS")


def _write(path, img: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def test_evaluation_datasets_from_folders_and_a_prepared_root(tmp_path) -> None:
    gt = _crop("coffee", 32)
    lq = _noisy(gt)
    # a prepared data root (canonical layout of irconstyle.data.benchmarks)
    for folder in ("GoPro", "RealBlur_J"):
        _write(tmp_path / "data" / "deblur" / "test" / folder / "input" / "x 1.png", lq)
        _write(tmp_path / "data" / "deblur" / "test" / folder / "target" / "x 1.png", gt)
    for bench in ("GoPro", "RealBlur_J", "RealBlur-J"):
        items = list(evaluation_dataset(bench, data_root=tmp_path / "data"))
        assert [it["name"] for it in items] == ["x 1"]
        np.testing.assert_allclose(items[0]["lq"].permute(1, 2, 0).numpy() * 255, lq, atol=1e-3)
    # folders: dehazing pairs by ID, denoising adds seeded noise to clean images
    _write(tmp_path / "hazy" / "0001_0.8_0.2.png", lq)
    _write(tmp_path / "clear" / "0001.png", gt)
    items = list(evaluation_dataset("SOTS", lq_dir=tmp_path / "hazy", gt_dir=tmp_path / "clear"))
    assert len(items) == 1
    _write(tmp_path / "clean" / "a.png", gt)
    noisy = [evaluation_dataset("CBSD68", gt_dir=tmp_path / "clean", sigma=s, reference_noise=r)[0]
             for s, r in ((25, False), (25, True), (50, False))]
    assert all(torch.equal(n["gt"], noisy[0]["gt"]) for n in noisy)
    stds = [float((n["lq"] - n["gt"]).std() * 255) for n in noisy]
    assert 22 < stds[0] < 28 and 22 < stds[1] < 28 and 45 < stds[2] < 55
    assert not torch.equal(noisy[0]["lq"], noisy[1]["lq"])  # the release's seed(0) noise differs
    assert len(evaluation_dataset("minibench_derain")) == 2
    with pytest.raises(ValueError, match="gt_dir"):
        evaluation_dataset("Urban100")
    with pytest.raises(ValueError, match="lq_dir"):
        evaluation_dataset("HIDE", gt_dir=tmp_path / "clean")


# ----------------------------------------------------------------------------- weights
def test_our_checkpoint_scores_ema_and_raw(tmp_path) -> None:
    raw, ema = _tiny(0), _tiny(1)
    ckpt = {"model": raw.state_dict(), "ema": {"module": ema.state_dict(), "num_updates": 3},
            "config": "model:\n  name: constyle_nafnet\n", "model_kwargs_json": json.dumps(TINY),
            "step": 10}
    path = tmp_path / "last.pt"
    torch.save(ckpt, path)
    w = read_weights(path)
    assert w.format == "checkpoint" and set(w.variants) == {"ema", "raw"}
    assert w.model_name == "constyle_nafnet" and w.model_kwargs == TINY
    model, label = load_model(None, w)  # model and kwargs come from the file
    assert label.endswith("[ema]")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ema(x))
    results = evaluate_checkpoint(model, w, _pairs(), protocol="basicsr", benchmark="SOTS",
                                  save_dir=tmp_path / "ev")
    assert set(results) == {"ema", "raw"}
    assert results["ema"]["mean"]["psnr_rgb"] != results["raw"]["mean"]["psnr_rgb"]
    assert (tmp_path / "ev" / "raw" / "results.csv").is_file()
    with torch.no_grad():  # the last variant loaded is raw
        torch.testing.assert_close(model(x), raw(x))


def test_safetensors_with_metadata_and_training_build(tmp_path) -> None:
    from safetensors.torch import save_file

    trained = _tiny(2, constyle_train=True)  # has the momentum encoder and queue
    path = tmp_path / "best.safetensors"
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(path),
              metadata={"model": "constyle_nafnet", "model_kwargs": json.dumps(TINY), "weights": "ema"})
    model, label = load_model(None, path)
    assert model.constyle.has_memory is False  # inference build; memory keys dropped
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(model(x), trained.eval()(x))


def test_release_checkpoint_goes_through_the_release_loader(tmp_path, golden_dir) -> None:
    from golden import golden_state_dict

    sd = golden_state_dict(golden_dir, "constyle_nafnet")
    path = tmp_path / "net_g.pth"
    torch.save({"params": sd, "params_ema": sd}, path)
    w = read_weights(path)
    assert w.format == "release" and set(w.variants) == {"ema", "raw"}
    model, _ = load_model("constyle_nafnet", w, variant="raw")
    gold = np.load(golden_dir / "golden.npz")
    with torch.no_grad():
        out = model(torch.from_numpy(gold["input"]))
    np.testing.assert_allclose(out.numpy(), gold["constyle_nafnet_output"], rtol=1e-4, atol=1e-4)
    with pytest.raises(WeightsError, match="net_g.pth"):
        load_into(_tiny(), w, model_name="constyle_nafnet")  # wrong widths


@pytest.mark.parametrize("content, match", [
    (b"", "empty file"),
    (bytes(range(256)) * 4, "not a PyTorch checkpoint"),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json", "not a readable safetensors"),
])
def test_bad_weight_files(tmp_path, content: bytes, match: str) -> None:
    path = tmp_path / "w eights.pt"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=match) as info:
        read_weights(path)
    assert "w eights.pt" in str(info.value)


def test_weights_that_do_not_fit(tmp_path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"foo": torch.zeros(3)}, path)
    w = read_weights(path)
    assert w.format == "state_dict"
    with pytest.raises(WeightsError, match=r"other.pt: weights do not fit the model: missing"):
        load_into(_tiny(), w)
    with pytest.raises(WeightsError, match="no 'ema' weights"):
        load_into(_tiny(), w, "ema")
    torch.save([1, 2], path)
    with pytest.raises(WeightsError, match="expected a dict"):
        read_weights(path)
    with pytest.raises(WeightsError, match="no such weights file"):
        read_weights(tmp_path / "missing.pt")
