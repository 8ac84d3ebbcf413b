"""Metrics say what they claim: perfect scores for a perfect copy, masks confine, FD grows with a shift."""
import json

import numpy as np
import pytest
import torch

from igr.eval import main as eval_main
from igr.metrics import (bootstrap, delta_e76, frechet_distance, garment_region, image_metrics, kernel_distance,
                         mask_iou, rgb_to_lab)


def _images(seed, b=3, h=64, w=48):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((b, 3, h, w), generator=g) * 2 - 1


def _mask(b=3, h=64, w=48):
    m = torch.zeros(b, 1, h, w)
    m[..., 16:48, 12:36] = 1
    return m


def test_a_perfect_copy_scores_perfectly():
    # MS-SSIM needs images larger than 160 px per side with its default 5 scales
    x = _images(0, b=2, h=192, w=176)
    m = image_metrics(x, x, torch.ones(2, 1, 192, 176))
    assert torch.allclose(m["ssim"], torch.ones(2), atol=1e-5) and torch.allclose(m["ms_ssim"], torch.ones(2), atol=1e-5)
    assert (m["psnr"] > 90).all()


def test_metrics_inside_the_mask_ignore_what_is_outside():
    target, mask = _images(0), _images(0)[:, :1] * 0 + _mask()
    noisy_outside = target + 0.5 * (1 - mask) * _images(1)
    m = image_metrics(noisy_outside, target, mask)
    assert (m["psnr_mask"] > 90).all() and (m["psnr"] < 30).all()
    assert (m["ssim_mask"] > m["ssim"]).all()


def _garments(n=4, size=(64, 48)):
    from igr.eval import split_batches

    _, garment, mask, categories = next(split_batches("test", n, size, n, categories=True))
    return garment, mask, categories


def test_mask_iou_is_one_for_a_perfect_copy_and_zero_for_a_blank_image():
    mask = _mask()
    flat = torch.where(mask.bool(), torch.tensor([0.2, -0.4, 0.6]).view(1, 3, 1, 1), torch.ones(3, 3, 64, 48))
    assert torch.equal(image_metrics(flat, flat, mask)["mask_iou"], torch.ones(3))
    assert torch.equal(image_metrics(torch.ones_like(flat), flat, mask)["mask_iou"], torch.zeros(3))
    # on SynthGarment's own garments the off-white rule recovers the true mask (the ground-truth yardstick)
    garment, mask, _ = _garments()
    assert (mask_iou(garment_region((garment + 1) / 2), mask) > 0.95).all()
    assert torch.equal(image_metrics(torch.ones_like(garment), garment, mask)["mask_iou"], torch.zeros(4))


def test_delta_e_is_cie76_as_skimage_computes_it():
    from skimage.color import deltaE_cie76, rgb2lab

    x = (_images(0) + 1) / 2
    assert torch.allclose(rgb_to_lab(x).double(), torch.from_numpy(rgb2lab(x.permute(0, 2, 3, 1).numpy().astype(
        np.float64))).permute(0, 3, 1, 2), atol=1e-3)
    red, green = torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1), torch.tensor([0, 1.0, 0]).view(1, 3, 1, 1)
    assert delta_e76(red, green).item() == pytest.approx(170.566, abs=1e-3)     # hand-computed, as skimage
    assert delta_e76(red, green).item() == pytest.approx(float(deltaE_cie76(rgb2lab(np.array([[[1.0, 0, 0]]])),
                                                                           rgb2lab(np.array([[[0, 1.0, 0]]])))[0, 0]))
    target, mask = _images(0), _mask()
    assert torch.equal(image_metrics(target, target, mask)["delta_e"], torch.zeros(3))
    # only the garment's colour counts: a change outside the mask leaves ΔE at zero
    assert (image_metrics(target + (1 - mask) * 0.5, target, mask)["delta_e"] < 1e-6).all()


def test_frechet_distance_is_zero_for_one_set_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 8, generator=g, dtype=torch.float64)
    assert frechet_distance(real, real) == pytest.approx(0, abs=1e-6)
    near, far = frechet_distance(real, real + 0.5), frechet_distance(real, real + 2.0)
    assert near == pytest.approx(8 * 0.25, rel=0.05) and far == pytest.approx(8 * 4.0, rel=0.05)
    kid_same, _ = kernel_distance(real, real)
    kid_far, _ = kernel_distance(real, real + 2.0)
    assert abs(kid_same) < 0.05 < kid_far


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_more_samples():
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=20), rng.normal(size=2000)
    lo, hi = bootstrap(small, n=500)
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap(large, n=500)
    assert hi2 - lo2 < (hi - lo) / 3


def test_eval_cli_writes_json_and_markdown(tiny_model, tmp_path):
    folder = tiny_model.save_pretrained(tmp_path / "model")
    assert eval_main(["--model", str(folder), "--n", "4", "--batch", "2", "--steps", "2", "--boot", "20",
                      "--references", "--out", str(tmp_path / "report" / "tiny")]) == 0
    report = json.loads((tmp_path / "report" / "tiny.json").read_text())
    for k in ("ssim", "ms_ssim", "psnr", "ssim_mask", "psnr_mask", "mask_iou", "delta_e", "effnet_dist", "print_corr",
              "fd", "kid"):
        assert np.isfinite(report["metrics"][k]["mean"]), k
    md = (tmp_path / "report" / "tiny.md").read_text()
    assert report["n"] == 4 and "not Inception" in md and "vae_reconstruction" in md
    assert all(col in md for col in ("| mask IoU |", "| ΔE76 mask |", "| EffNet-L0 dist (ours) |", "not LPIPS"))
    # the blank yardstick: a white image against the same ground truth
    garment, mask, categories = _garments()
    blank = image_metrics(torch.ones_like(garment), garment, mask)
    refs = report["references"]
    assert refs["blank"]["psnr"] == pytest.approx(float(blank["psnr"].mean()), rel=1e-5)
    assert refs["blank"]["mask_iou"] == 0 and refs["ground_truth"]["effnet_dist"] == 0
    assert refs["ground_truth"]["mask_iou"] > 0.95 and refs["ground_truth"]["delta_e"] == 0
    # the flat-colour yardstick: the truth's shape and mean colour, no print
    assert refs["flat_colour"]["mask_iou"] > 0.95 and abs(refs["flat_colour"]["print_corr"]) < 0.05
    assert refs["ground_truth"]["print_corr"] == pytest.approx(1) and "flat_colour" in md
    # one row per garment category, its n and means over its own items
    per = report["metrics"]["per_sample"]
    assert per["category"] == categories
    by = report["metrics"]["by_category"]
    assert sum(v["n"] for v in by.values()) == 4 and set(by) == set(categories)
    c = categories[0]
    mine = [x for x, k in zip(per["delta_e"], categories) if k == c]
    assert by[c]["delta_e"] == pytest.approx(np.mean(mine), abs=1e-5)
    assert all(f"| {c} | {by[c]['n']} |" in md for c in by)
    assert (tmp_path / "report" / "tiny.features.npz").is_file()


def _onnx_file(path, pairwise: bool):
    """A stand-in for LPIPS (pairwise: mean squared difference) or Inception (embedding: channel means).

    The real networks' weights cannot be downloaded here; these graphs test the mechanics of the
    --metric path (loading, feeding [0, 1] images, reporting), not those networks' numbers.
    """
    import onnx
    from onnx import TensorProto, helper

    img = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3, "H", "W"])
    if pairwise:
        nodes = [helper.make_node("Sub", ["a", "b"], ["d"]), helper.make_node("Mul", ["d", "d"], ["sq"]),
                 helper.make_node("ReduceMean", ["sq"], ["dist"], axes=[1, 2, 3], keepdims=0)]
        graph = helper.make_graph(nodes, "pair", [img("a"), img("b")],
                                  [helper.make_tensor_value_info("dist", TensorProto.FLOAT, ["N"])])
    else:
        nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["feat"])]
        graph = helper.make_graph(nodes, "emb", [img("x")],
                                  [helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)
    return str(path)


def test_metrics_from_local_onnx_files(tmp_path):
    from igr.metrics import OnnxMetric

    pair = OnnxMetric("lpips", _onnx_file(tmp_path / "pair.onnx", True))
    emb = OnnxMetric("inception", _onnx_file(tmp_path / "emb.onnx", False))
    assert (pair.kind, emb.kind) == ("pairwise", "embedding")
    x, y = _images(0), _images(1)
    assert np.allclose(pair.distance(x, x), 0) and (pair.distance(x, y) > 0.05).all()
    # the graph sees [0, 1] images: the channel means of a [-1, 1] image map to (mean + 1) / 2
    assert torch.allclose(emb.embed(x), ((x.mean((2, 3)) + 1) / 2).double(), atol=1e-5)


def test_eval_cli_reports_user_supplied_metrics(tiny_model, tmp_path):
    folder = tiny_model.save_pretrained(tmp_path / "model")
    pair, emb = _onnx_file(tmp_path / "pair.onnx", True), _onnx_file(tmp_path / "emb.onnx", False)
    out = tmp_path / "report" / "tiny"
    assert eval_main(["--model", str(folder), "--n", "4", "--batch", "2", "--steps", "1", "--boot", "20",
                      "--metric", f"lpips={pair}", "--metric", f"inception={emb}", "--out", str(out)]) == 0
    m = json.loads(out.with_suffix(".json").read_text())["metrics"]
    assert m["lpips"]["mean"] > 0 and m["lpips"]["ci95"][0] <= m["lpips"]["mean"] <= m["lpips"]["ci95"][1]
    assert np.isfinite(m["fd_inception"]["mean"]) and np.isfinite(m["kid_inception"]["mean"])
    assert len(m["per_sample"]["ssim"]) == 4 and len(m["per_sample"]["lpips"]) == 4
    md = out.with_suffix(".md").read_text()
    assert "lpips" in md and "fd_inception" in md


@pytest.mark.parametrize("spec, says", [("lpips", "NAME=PATH"), ("lpips=/nonexistent.onnx", "cannot load")])
def test_eval_cli_refuses_a_bad_metric_file(tiny_model, tmp_path, capsys, spec, says):
    folder = tiny_model.save_pretrained(tmp_path / "model")
    with pytest.raises(SystemExit) as e:
        eval_main(["--model", str(folder), "--n", "4", "--metric", spec, "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_mean_of_samples_is_the_pixel_mean_of_each_seeds_restore(tiny_model):
    from igr.pipeline import mean_of_samples, sample_items

    person = _images(3, b=2, h=tiny_model.config.height, w=tiny_model.config.width)
    one = [sample_items(tiny_model, person, 5, seed=s, steps=2) for s in (7, 8, 9)]
    assert torch.equal(mean_of_samples(tiny_model, person, 5, 1, seed=7, steps=2), one[0])
    assert torch.allclose(mean_of_samples(tiny_model, person, 5, 3, seed=7, steps=2), torch.stack(one).mean(0),
                          atol=1e-6)
    assert not torch.allclose(one[0], one[1], atol=1e-3)           # the seeds differ, so the mean is not a copy
    with pytest.raises(ValueError, match="at least 1"):
        mean_of_samples(tiny_model, person, 5, 0)


def test_eval_cli_scores_the_mean_of_k_samples(tiny_model, tmp_path, capsys):
    from igr.eval import split_batches
    from igr.pipeline import mean_of_samples

    folder = tiny_model.save_pretrained(tmp_path / "model")
    out = tmp_path / "report" / "k2-s1.5"                # a dot in the name: the files keep it (k2-s1.5.json)
    assert eval_main(["--model", str(folder), "--n", "4", "--batch", "2", "--steps", "2", "--boot", "20",
                      "--samples", "2", "--seed", "3", "--out", str(out)]) == 0
    report = json.loads((tmp_path / "report" / "k2-s1.5.json").read_text())
    assert (tmp_path / "report" / "k2-s1.5.features.npz").is_file()
    assert report["sampling"]["samples_averaged"] == 2 and report["sampling"]["seed"] == 3
    size = (tiny_model.config.height, tiny_model.config.width)
    expected, first = [], 0
    for person, garment, mask in split_batches("test", 4, size, 2):
        pred = mean_of_samples(tiny_model, person, first, 2, seed=3, steps=2)
        expected += image_metrics(pred, garment, mask)["psnr_mask"].tolist()
        first += len(person)
    assert report["metrics"]["per_sample"]["psnr_mask"] == pytest.approx(expected, abs=1e-4)
    with pytest.raises(SystemExit) as e:
        eval_main(["--model", str(folder), "--n", "4", "--samples", "0", "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "--samples must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_print_correlation_tells_a_restored_print_from_a_flat_or_misplaced_one():
    from igr.eval import flat_colour
    from igr.metrics import print_correlation

    truth, mask = _images(0), _mask()
    p = lambda x: print_correlation((x + 1) / 2, (truth + 1) / 2, mask)
    assert torch.allclose(p(truth), torch.ones(3), atol=1e-5)
    faint = flat_colour(truth, mask) * 0.8 + truth * 0.2              # the same print at a fifth of its contrast
    assert torch.allclose(p(faint), torch.ones(3), atol=1e-4)
    assert torch.allclose(p(-truth), -torch.ones(3), atol=1e-5)          # inverted print
    assert p(flat_colour(truth, mask)).abs().max() < 1e-5                # a binary mask: flat inside
    assert p(_images(7)).abs().max() < 0.1                               # texture in the wrong places
    outside = truth.clone()
    outside[..., :16, :] = -truth[..., :16, :]                          # what lies outside the mask is not judged
    assert torch.allclose(p(outside), torch.ones(3), atol=1e-5)
    m = lambda x: image_metrics(x, truth, mask)["print_corr"]           # and image_metrics reports it
    assert torch.equal(m(truth), p(truth))
