"""igr.warp: SynthGarment's correspondences, the warp they define, and WarpNet learning them."""

import json

import numpy as np
import pytest
import torch

from igr.data import SceneConfig, generate
from igr.data.synth import seed_for
from igr.warp import (SIZE, WARP_FIELDS, WarpNet, align, base_grid, composite, correspondence, deshade,
                      diagnostic_field, error_parts, loss_fn, make_data, restorers, train, true_field, warp,
                      with_refiner)

GRID = (SIZE[0] // 4, SIZE[1] // 4)


def image(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a).permute(2, 0, 1)[None].float() / 127.5 - 1


def test_flat_xy_marks_the_visible_garment_and_leaves_the_photo_unchanged():
    s = generate(10_100_003, size=SIZE)
    seen = ~np.isnan(s.flat_xy[..., 0])
    assert np.array_equal(seen, s.worn > 0)
    xy = s.flat_xy[seen]
    assert (xy >= 0).all() and (xy[:, 0] <= SIZE[1] - 1).all() and (xy[:, 1] <= SIZE[0] - 1).all()
    # every seen pixel shows a garment pixel of the in-shop image
    fx, fy = np.round(xy[:, 0]).astype(int), np.round(xy[:, 1]).astype(int)
    assert (s.mask[fy, fx] > 0).mean() > 0.97


def test_the_true_warp_moves_the_print_into_the_in_shop_frame():
    """Warping the photo by its own correspondences matches the garment far better than the same field shifted."""
    errs = []
    for seed in (10_100_001, 10_100_002, 10_100_005):
        s = generate(seed, size=SIZE, config=SceneConfig.clean())
        coords, weight = correspondence(s.flat_xy, GRID)
        assert weight.sum() > 100
        person, garment = image(s.person), image(s.garment)
        m = torch.nn.functional.interpolate(torch.tensor(weight)[None, None], size=SIZE, mode="nearest")

        def err(c):
            w = deshade(warp(person, torch.tensor(c)[None]), garment)
            return float(((w - garment).abs() * m).sum() / (3 * m.sum()))

        shifted = coords + np.array([8 / SIZE[1] * 2, 0], np.float32)[:, None, None]    # 8 px to the right
        errs.append((err(coords), err(shifted)))
    true, off = np.array(errs).T
    assert (true < 0.2).all(), errs          # 0.08-0.18 of [-1, 1] (seams, the print magnified ~1.4x)
    assert (true < 0.85 * off).all(), errs


def test_correspondence_inverts_a_known_map_and_drops_ambiguous_cells():
    H, W = SIZE
    flat_xy = np.full((H, W, 2), np.nan, np.float32)
    Y, X = np.mgrid[40:120, 50:110]
    flat_xy[Y, X, 0], flat_xy[Y, X, 1] = 2 * X - 80, 2 * Y - 60           # person (X, Y) shows in-shop (2X-80, 2Y-60)
    coords, weight = correspondence(flat_xy, GRID)
    rows, cols = np.nonzero(weight)
    assert len(rows) > 200
    fx, fy = (cols + 0.5) * W / GRID[1] - 0.5, (rows + 0.5) * H / GRID[0] - 0.5   # cell centres, in-shop px
    px = (coords[0, rows, cols] + 1) / 2 * W - 0.5
    py = (coords[1, rows, cols] + 1) / 2 * H - 0.5
    assert np.abs(px - (fx + 80) / 2).max() < 1.0 and np.abs(py - (fy + 60) / 2).max() < 1.0
    # a cell shown by two distant places (a front and a back panel) is left out
    flat_xy[200, 10], flat_xy[200, 180] = flat_xy[60, 70], flat_xy[60, 70]
    flat_xy[200, 11], flat_xy[200, 181] = flat_xy[60, 70], flat_xy[60, 70]
    cell = int((flat_xy[60, 70, 1] + 0.5) * GRID[0] / H), int((flat_xy[60, 70, 0] + 0.5) * GRID[1] / W)
    assert weight[cell] == 1 and correspondence(flat_xy, GRID)[1][cell] == 0


def test_warp_with_the_identity_field_returns_the_photo():
    person = torch.rand(1, 3, *SIZE) * 2 - 1
    out = warp(person, base_grid(GRID)[None])
    assert torch.allclose(out[..., 4:-4, 4:-4], person[..., 4:-4, 4:-4], atol=1e-4)


def test_deshade_keeps_the_print_and_drops_the_lighting():
    y, x = torch.meshgrid(torch.arange(SIZE[0]), torch.arange(SIZE[1]), indexing="ij")
    print_ = ((x // 6 + y // 6) % 2).float() * 0.5 + 0.3                     # checks in [0.3, 0.8]
    flat = print_.expand(1, 3, *SIZE) * 2 - 1
    light = (0.5 + 0.5 * x / SIZE[1]).float()                               # a smooth ramp, 0.5 -> 1
    shaded = (print_ * light).expand(1, 3, *SIZE) * 2 - 1
    before = (shaded - flat).abs().mean()
    after = (deshade(shaded, flat) - flat).abs().mean()
    assert after < before / 3


def test_composite_takes_the_warp_where_seen_and_the_fallback_elsewhere():
    warped, fallback = torch.full((1, 3, *SIZE), 0.5), torch.full((1, 3, *SIZE), -0.5)
    visible = torch.zeros(1, 1, *GRID)
    visible[..., : GRID[0] // 2, :] = 1
    out = composite(warped, visible, fallback)
    assert torch.allclose(out[..., :100, :], warped[..., :100, :]) and torch.allclose(out[..., 160:, :], fallback[..., 160:, :])


def test_oracle_variant_shows_the_photo_where_the_garment_is_seen():
    """The oracle restorer of the evaluation (a grey image stands in for the regression baseline)."""
    class Grey:
        def restore(self, person):
            return torch.zeros_like(person)

    s = generate(10_100_000, size=SIZE)
    fns = restorers(None, Grey(), "test")
    assert sorted(fns) == ["baseline", "oracle-deshaded"]
    out = fns["oracle-deshaded"](image(s.person), 0)
    from_photo = (out[0].abs() > 0.02).any(0).numpy()
    assert (from_photo & (s.mask > 0)).sum() > 0.5 * (s.mask > 0).sum()   # most of the garment comes from the photo
    assert (from_photo & (s.mask == 0)).sum() < 0.05 * (s.mask == 0).sum()


def test_warpnet_shapes_refuses_other_sizes_and_round_trips(tmp_path):
    torch.manual_seed(0)
    net = WarpNet().eval()
    person = torch.rand(2, 3, *SIZE) * 2 - 1
    coords, logit = net(person)
    assert coords.shape == (2, 2, *GRID) and logit.shape == (2, 1, *GRID)
    with pytest.raises(ValueError, match="256x192"):
        net(torch.zeros(1, 3, 128, 96))
    net.save_pretrained(tmp_path / "w", {"step": 0})
    again = WarpNet.from_pretrained(tmp_path / "w")
    assert torch.equal(again(person)[0], coords)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"kind": "regression-baseline"}))
    with pytest.raises(ValueError, match="not a warp folder"):
        WarpNet.from_pretrained(tmp_path / "bad")


def test_warpnet_learns_from_generated_correspondences(tmp_path):
    """A few steps on a tiny file of real SynthGarment targets lower the coordinate error."""
    data = tmp_path / "warp.npz"
    make_data(data, "train", 24, workers=1)
    d = np.load(data)
    assert d["person"].shape == (24, *SIZE, 3) and d["coords"].shape == (24, 2, *GRID)
    person = torch.from_numpy(d["person"][:8]).permute(0, 3, 1, 2).float() / 127.5 - 1
    coords, weight = torch.from_numpy(d["coords"][:8]), torch.from_numpy(d["weight"][:8])
    torch.manual_seed(0)
    with torch.no_grad():
        before = float(loss_fn(WarpNet(), person, coords, weight)[0])
    train(data, tmp_path / "run", steps=40, batch=8, lr=2e-3, log_every=20)
    net = WarpNet.from_pretrained(tmp_path / "run" / "final")
    with torch.no_grad():
        after = float(loss_fn(net, person, coords, weight)[0])
    assert after < 0.8 * before
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 40 and "val_l1_px" in rows[-1]
    assert rows[-1]["val_after_similarity_px"] <= rows[-1]["val_after_shift_px"] <= rows[-1]["val_l1_px"]

    # a Refiner on that frozen WarpNet: it starts from the same field, then lowers the error on what it trains on
    fresh = with_refiner(tmp_path / "run" / "final", 2).eval()
    with torch.no_grad():
        assert torch.equal(fresh(person)[0], net(person)[0])
    train(data, tmp_path / "ref", steps=40, batch=8, lr=2e-3, log_every=20, init=tmp_path / "run" / "final", refine=2)
    refined = WarpNet.from_pretrained(tmp_path / "ref" / "final")
    assert refined.config()["refine"] == 2 and json.loads((tmp_path / "ref" / "final" / "config.json").read_text())[
        "init"] == str(tmp_path / "run" / "final")
    base_state = net.state_dict()
    assert all(torch.equal(v, base_state[k]) for k, v in refined.state_dict().items() if not k.startswith("refiner."))
    with torch.no_grad():
        assert float(loss_fn(refined, person, coords, weight)[0]) < after
    rows = [json.loads(line) for line in (tmp_path / "ref" / "log.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and {"val_l1_px", "val_after_shift_px"} <= rows[0].keys() and rows[-1]["step"] == 40
    with pytest.raises(ValueError, match="needs --init"):
        train(data, tmp_path / "bad", steps=1, refine=1)
    # --init alone goes on training every weight of that WarpNet, from where it stood
    train(data, tmp_path / "more", steps=20, batch=8, lr=1e-3, log_every=20, init=tmp_path / "run" / "final")
    rows = [json.loads(line) for line in (tmp_path / "more" / "log.jsonl").read_text().splitlines()]
    first = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert rows[0]["step"] == 0 and rows[0]["val_l1_px"] == pytest.approx(first["val_l1_px"], abs=1e-3)
    more = WarpNet.from_pretrained(tmp_path / "more" / "final")
    assert more.refine == 0 and not torch.equal(more.out.weight, net.out.weight)


def test_diagnostic_fields_split_a_warpnets_error_into_placement_and_shape():
    torch.manual_seed(0)
    net = WarpNet().eval()
    torch.nn.init.normal_(net.out.weight, std=0.1)
    items = [3, 4]
    person = torch.cat([image(generate(seed_for("test", i), size=SIZE).person) for i in items])
    coords, visible = true_field("test", items)
    with torch.no_grad():
        mine, logit = net(person)
    c, v = diagnostic_field("field", net, person, "test", items)
    assert torch.equal(c, coords) and torch.equal(v, visible)
    # placement: WarpNet's field and visibility, moved by one similarity per item onto the truth
    c, v = diagnostic_field("placement", net, person, "test", items)
    assert torch.equal(v, torch.sigmoid(logit))
    parts, placed = error_parts(mine, coords, visible[:, 0]), error_parts(c, coords, visible[:, 0])
    assert placed["l1_px"] == pytest.approx(parts["after_similarity_px"], rel=1e-4)
    assert placed["l1_px"] < parts["l1_px"]
    # shape: the true field and visibility, moved onto WarpNet's placement; no closer to the truth than a similarity
    c, v = diagnostic_field("shape", net, person, "test", items)
    assert torch.equal(v, visible) and error_parts(c, coords, visible[:, 0])["after_similarity_px"] < 1e-3
    seen = visible > 0
    assert ((c - mine) ** 2)[seen.expand_as(c)].sum() <= ((coords - mine) ** 2)[seen.expand_as(c)].sum()
    c, v = diagnostic_field("coords", net, person, "test", items)
    assert torch.equal(c, mine) and torch.equal(v, visible)
    c, v = diagnostic_field("visibility", net, person, "test", items)
    assert torch.equal(c, coords) and torch.equal(v, torch.sigmoid(logit))
    with pytest.raises(ValueError, match="unknown warp field"):
        diagnostic_field("oracle", net, person, "test", items)


def test_error_parts_separate_one_shift_and_one_similarity_per_item():
    grid = base_grid(GRID)[None].repeat(3, 1, 1, 1)
    weight = torch.ones(3, *GRID)
    weight[2, :, 24:] = 0                                      # only the cells seen count
    shifted = grid + torch.tensor([0.02, -0.05, 0.1]).view(3, 1, 1, 1)
    parts = error_parts(shifted, grid, weight)
    assert parts["l1_px"] > 3 and parts["after_shift_px"] < 1e-4 and parts["after_similarity_px"] < 1e-4
    centre = (grid * weight[:, None]).sum((2, 3), keepdim=True) / weight[:, None].sum((2, 3), keepdim=True)
    scaled = (grid - centre) * 1.3 + centre
    parts = error_parts(scaled, grid, weight)
    assert parts["after_shift_px"] == pytest.approx(parts["l1_px"], rel=1e-6) and parts["after_shift_px"] > 3
    assert parts["after_similarity_px"] < 1e-4
    assert torch.allclose(align(scaled, grid, weight), grid, atol=1e-6)          # every cell moved, seen or not


def test_report_pairs_each_variant_with_the_baseline(tmp_path):
    rng = np.random.default_rng(0)
    base = {k: rng.uniform(0.3, 0.5, 20) for k in ("ssim_mask", "mask_iou", "delta_e", "effnet_dist")}

    def write(name, shift):
        per = {k: (v + shift).round(6).tolist() for k, v in base.items()}
        metrics = {k: {"mean": float(np.mean(v))} for k, v in per.items()}
        metrics.update(fd={"mean": 10.0 - shift}, per_sample=per)
        (tmp_path / f"w-{name}.json").write_text(json.dumps(
            {"model": f"warp variant {name}: what {name} is", "split": "test", "n": 20, "metrics": metrics}))

    write("baseline", 0.0)
    write("warp", 0.05)
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps({"step": s, "val_l1_px": 10 - s / 100}) for s in (100, 200)) + "\n")
    from igr.warp import report
    text = report(tmp_path / "w", ["baseline", "warp"], {"WarpNet": log}, tmp_path / "r", title="T", command="cmd")
    row = next(line for line in text.splitlines() if line.startswith("| warp |"))
    assert "+0.0500 [+0.0500, +0.0500]" in row                      # a constant shift: its interval is a point
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["rows"]["warp"]["ssim_mask_vs_baseline"][0] == pytest.approx(0.05)
    assert (tmp_path / "r-curves.png").stat().st_size > 1000


def test_cli_train_without_data_says_how_to_make_it(tmp_path, capsys):
    from igr.warp import main
    assert main(["train", "--data", str(tmp_path / "none.npz"), "--out", str(tmp_path / "run")]) == 2
    assert "python -m igr.warp data" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit):
        main(["train", "--data", str(tmp_path / "none.npz"), "--out", str(tmp_path / "run"), "--refine", "2"])
    assert "--refine (1 or more) needs --init" in capsys.readouterr().err


def test_a_warp_prior_model_starts_as_its_source_caches_its_warp_and_trains(tmp_path):
    """`attach` puts a WarpNet into a model (same outputs until trained); the cache gains each row's warp input
    (`--warp-from`); a coarse run reads it, moves the new input channels and leaves the WarpNet frozen."""
    from igr.config import IGRConfig
    from igr.model import IGRModel
    from igr.probe import swap_test
    from igr.train.cache import LatentCache, add_warp, build, frozen_digests, main as cache_main
    from igr.train.config import StageConfig
    from igr.train.trainer import Trainer
    from igr.warp import attach, true_field

    torch.manual_seed(0)
    base = IGRModel(IGRConfig.tiny().replace(height=SIZE[0], width=SIZE[1])).eval()
    base.save_pretrained(tmp_path / "base")
    net = WarpNet()
    torch.nn.init.normal_(net.out.weight, std=0.1)          # a visibility that varies
    net.save_pretrained(tmp_path / "warpnet")
    fresh = attach(tmp_path / "base", tmp_path / "warpnet", tmp_path / "with-warp")
    assert fresh == ["denoiser.unet.conv_in.weight[:, 4:] (zero)"]
    model = IGRModel.from_pretrained(tmp_path / "with-warp")
    assert model.components[-1] == "warpnet" and torch.equal(model.warpnet.out.weight, net.out.weight)
    with pytest.raises(ValueError, match="already has a warp prior"):
        attach(tmp_path / "with-warp", tmp_path / "warpnet", tmp_path / "again")
    other = WarpNet()
    torch.nn.init.normal_(other.out.weight, std=0.1)
    other.save_pretrained(tmp_path / "other")                  # --replace: only the WarpNet is exchanged
    assert attach(tmp_path / "with-warp", tmp_path / "other", tmp_path / "swapped", replace=True) == []
    swapped = IGRModel.from_pretrained(tmp_path / "swapped")
    assert torch.equal(swapped.warpnet.out.weight, other.out.weight)
    assert all(torch.equal(v, model.denoiser.state_dict()[k]) for k, v in swapped.denoiser.state_dict().items())
    with pytest.raises(ValueError, match="no warp prior to replace"):
        attach(tmp_path / "base", tmp_path / "other", tmp_path / "again", replace=True)
    with_refiner(tmp_path / "warpnet", 1).save_pretrained(tmp_path / "refined")   # a warp prior builds no Refiner
    with pytest.raises(ValueError, match="another shape"):
        attach(tmp_path / "base", tmp_path / "refined", tmp_path / "again")
    assert not (tmp_path / "again").exists()
    from convert.bundle import write_bundle                  # a teacher's component graphs carry no WarpNet
    with pytest.raises(ValueError, match="only a few-step student's single-call graph carries the WarpNet"):
        write_bundle(tmp_path / "with-warp", tmp_path / "bundle", variants=["onnx-fp32"], progress=False)
    assert not (tmp_path / "bundle").exists()

    person = torch.rand(2, 3, *SIZE) * 2 - 1
    cond = model.condition(person)
    assert cond.warp.shape == (2, 5, *base.config.latent_shape[1:])
    assert 0 < cond.warp[:, 4].min() < cond.warp[:, 4].max() < 1          # visibility, pooled to the latent grid
    assert not cond.null().warp.any()
    z, t = torch.randn(2, *base.config.latent_shape), torch.tensor([300, 900])
    with torch.no_grad():
        assert torch.allclose(model.predict(z, t, cond), base.predict(z, t, base.condition(person)), atol=1e-5)
    with pytest.raises(ValueError, match="warp prior"):
        model.condition_from(base.encode(person), base.image_encoder.embed(person))
    assert len(swap_test(model, person, person, timesteps=(500,), batch=2)) == 1

    plain = build(base, tmp_path / "cache", sizes=[SIZE], n=3, batch=3, workers=0, progress=False)
    with pytest.raises(ValueError, match="add one with --warp-from"):
        LatentCache(plain, SIZE, expect=frozen_digests(model))
    cached = add_warp(model, plain, tmp_path / "cache-warp", batch=2, progress=False)
    rows = LatentCache(cached, SIZE, expect=frozen_digests(model)).rows
    first = image(generate(seed_for("train", 1), size=SIZE).person)
    assert torch.allclose(rows["warp"][1:2].float(), model.warp_input(first).half().float(), atol=2e-2)
    assert torch.equal(rows["person_latent"], LatentCache(plain, SIZE).rows["person_latent"])
    with pytest.raises(SystemExit):
        cache_main(["--model", str(tmp_path / "base"), "--warp-from", str(plain), "--out", str(tmp_path / "c3")])
    assert not (tmp_path / "c3").exists()

    # --true-field: rows warped by SynthGarment's true field, which a run of any WarpNet accepts
    truth = add_warp(model, plain, tmp_path / "cache-true", batch=2, progress=False, true=True)
    true_rows = LatentCache(truth, SIZE, expect={**frozen_digests(model), "warpnet": "another"}).rows
    field = true_field("train", [1])
    assert torch.allclose(true_rows["warp"][1:2].float(), model.warp_input(first, field).half().float(), atol=2e-2)
    assert (true_rows["warp"][:, :4] - rows["warp"][:, :4]).abs().mean() > 0.05     # not the WarpNet's warp
    by_workers = add_warp(model, plain, tmp_path / "cache-true-2", batch=2, progress=False, true=True, workers=2)
    assert torch.equal(LatentCache(by_workers, SIZE, expect={**frozen_digests(model), "warpnet": "x"}).rows["warp"],
                       true_rows["warp"])                  # generated by worker processes: the same rows
    with pytest.raises(ValueError, match="other warpnet"):
        LatentCache(cached, SIZE, expect={**frozen_digests(model), "warpnet": "another"})
    from igr.eval import main as eval_main
    with pytest.raises(SystemExit):                          # --true-warp needs a warp prior model
        eval_main(["--model", str(tmp_path / "base"), "--n", "2", "--true-warp", "--out", str(tmp_path / "ev")])
    assert not (tmp_path / "ev.json").exists()
    assert eval_main(["--model", str(tmp_path / "with-warp"), "--n", "2", "--steps", "2", "--boot", "10", "--true-warp",
                      "--out", str(tmp_path / "ev")]) == 0
    assert json.loads((tmp_path / "ev.json").read_text())["sampling"]["warp"] == "true field"
    assert eval_main(["--model", str(tmp_path / "with-warp"), "--n", "2", "--steps", "2", "--boot", "10", "--true-warp",
                      "placement", "--out", str(tmp_path / "ev-placed")]) == 0
    assert json.loads((tmp_path / "ev-placed.json").read_text())["sampling"]["warp"] == WARP_FIELDS["placement"]

    warp_before = {k: v.clone() for k, v in model.warpnet.state_dict().items()}
    cfg = StageConfig.preset("coarse", "tiny", cache=str(cached), steps=2, size=SIZE, low_res_fraction=0.0)
    result = Trainer(model.train(), cfg, tmp_path / "run").run(progress=False)
    assert result.step == 2 and result.final is not None
    trained = IGRModel.from_pretrained(result.final)
    assert trained.denoiser.unet.conv_in.weight[:, 4:].abs().sum() > 0     # the warp channels opened
    assert all(torch.equal(v, trained.warpnet.state_dict()[k]) for k, v in warp_before.items())


def test_warpnet_training_resumes_bit_for_bit_and_refuses_other_settings(tmp_path, capsys):
    """Stopped at a checkpoint and resumed, a run ends with the weights and log of one that never stopped."""
    from igr.warp import main

    data = tmp_path / "warp.npz"
    make_data(data, "train", 24, workers=1)
    kw = dict(steps=12, batch=4, lr=2e-3, log_every=2)      # a validation and a checkpoint every 20 steps, and at 12
    train(data, tmp_path / "straight", **kw)
    train(data, tmp_path / "split", until=5, **kw)
    assert json.loads((tmp_path / "split" / "final" / "config.json").read_text())["step"] == 5
    # a resume with other settings would not be the same run
    with pytest.raises(ValueError, match="lr"):
        train(data, tmp_path / "split", resume=True, **{**kw, "lr": 1e-3})
    train(data, tmp_path / "split", resume=True, **kw)
    a = WarpNet.from_pretrained(tmp_path / "straight" / "final").state_dict()
    b = WarpNet.from_pretrained(tmp_path / "split" / "final").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = lambda run: [{k: v for k, v in json.loads(line).items() if k != "seconds"}  # noqa: E731
                        for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
    straight, split = rows("straight"), rows("split")
    assert [r["step"] for r in straight] == [2, 4, 6, 8, 10, 12]
    assert [r["step"] for r in split] == [2, 4, 5, 6, 8, 10, 12]      # the stop's own row, then the same rows
    assert [r for r in split if r["step"] != 5] == straight

    assert main(["train", "--data", str(data), "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "no checkpoint to resume" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["train", "--data", str(data), "--out", str(tmp_path / "gpu"), "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err


def test_warpnet_trains_on_several_data_files_joined_in_order(tmp_path, capsys):
    """Two files of consecutive items are the one file of all of them; overlapping items are refused."""
    from igr.warp import load_data, main

    make_data(tmp_path / "all.npz", "train", 16, workers=1)
    make_data(tmp_path / "a.npz", "train", 8, workers=1)
    make_data(tmp_path / "b.npz", "train", 8, workers=1, first=8)
    joined, whole = load_data([tmp_path / "a.npz", tmp_path / "b.npz"]), load_data(tmp_path / "all.npz")
    assert all(torch.equal(x, y) for x, y in zip(joined, whole)) and len(joined[0]) == 16
    kw = dict(steps=4, batch=4, lr=2e-3, log_every=2)
    train(tmp_path / "all.npz", tmp_path / "one", **kw)
    assert main(["train", "--data", str(tmp_path / "a.npz"), "--data", str(tmp_path / "b.npz"),
                 "--out", str(tmp_path / "two"), "--steps", "4", "--batch", "4", "--lr", "2e-3"]) == 0
    a = WarpNet.from_pretrained(tmp_path / "one" / "final").state_dict()
    b = WarpNet.from_pretrained(tmp_path / "two" / "final").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "two" / "final" / "config.json").read_text())["data"] == [
        str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]

    make_data(tmp_path / "c.npz", "train", 8, workers=1, first=4)
    with pytest.raises(ValueError, match="overlaps"):
        load_data([tmp_path / "a.npz", tmp_path / "c.npz"])
    assert main(["train", "--data", str(tmp_path / "a.npz"), "--data", str(tmp_path / "c.npz"),
                 "--out", str(tmp_path / "bad")]) == 2
    assert "overlaps" in capsys.readouterr().err
    # a file written before it recorded its items trains alone, and is refused in a join
    d = np.load(tmp_path / "b.npz")
    np.savez(tmp_path / "old.npz", person=d["person"], coords=d["coords"], weight=d["weight"])
    assert all(torch.equal(x, y) for x, y in zip(load_data(tmp_path / "old.npz"), load_data(tmp_path / "b.npz")))
    with pytest.raises(ValueError, match="does not record which items"):
        load_data([tmp_path / "a.npz", tmp_path / "old.npz"])
    assert main(["train", "--data", str(tmp_path / "a.npz"), "--data", str(tmp_path / "none.npz"),
                 "--out", str(tmp_path / "bad")]) == 2
    assert "no data file" in capsys.readouterr().err


def test_a_mirrored_item_warps_to_the_mirrored_in_shop_image_and_flip_trains(tmp_path, capsys):
    """`mirror` flips the photo and its targets together: the warp of the mirrored photo by the mirrored field is the
    mirror of the warp, and a mirrored true field is the true field of the mirrored photo's garment."""
    from igr.warp import main, mirror

    s = generate(seed_for("train", 3), size=SIZE)
    coords, weight = (torch.from_numpy(a)[None] for a in correspondence(s.flat_xy, GRID))
    person = torch.from_numpy(s.person).permute(2, 0, 1)[None].float() / 127.5 - 1
    mp, mc, mw = mirror(person, coords, weight)
    assert torch.allclose(warp(mp, mc), warp(person, coords).flip(-1), atol=1e-5)
    assert torch.equal(mw, weight.flip(-1)) and weight.sum() > 100
    assert torch.equal(mirror(mp, mc, mw)[1], coords)                       # twice is the item itself
    # the targets of the mirrored photo: the correspondence of the mirrored flat_xy field agrees
    flat = s.flat_xy[:, ::-1].copy()
    flat[..., 0] = SIZE[1] - 1 - flat[..., 0]
    c2, w2 = (torch.from_numpy(a)[None] for a in correspondence(flat, GRID))
    both = (w2 * mw).bool()[:, None].expand_as(mc)
    assert both.sum() > 0.9 * 2 * mw.sum() and torch.allclose(c2[both], mc[both], atol=1e-5)

    data = tmp_path / "warp.npz"
    make_data(data, "train", 16, workers=1)
    kw = dict(steps=4, batch=4, lr=2e-3, log_every=2)
    train(data, tmp_path / "plain", **kw)
    train(data, tmp_path / "flip", flip=True, **kw)
    a = WarpNet.from_pretrained(tmp_path / "plain" / "final").state_dict()
    b = WarpNet.from_pretrained(tmp_path / "flip" / "final").state_dict()
    assert not all(torch.equal(a[k], b[k]) for k in a)                     # the mirrored items changed the steps
    with pytest.raises(ValueError, match="flip"):
        train(data, tmp_path / "flip", resume=True, **kw)                   # the checkpoint's run flipped
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--init", str(tmp_path / "plain" / "final"),
                 "--refine", "1", "--flip"]) == 2
    assert "--flip cannot train a Refiner" in capsys.readouterr().err


def test_a_shipped_models_warpnet_is_read_from_its_folder_and_trains_on(tmp_path, capsys):
    """`--init` takes an IGR model folder with a warp prior: its WarpNet (the one `attach` put in) goes on training;
    a model without a warp prior is refused with the reason."""
    from igr.warp import main
    from tests.tiny_warp import tiny_warp_model

    teacher = tiny_warp_model(tmp_path)
    person = torch.rand(2, 3, *SIZE) * 2 - 1
    mine, attached = WarpNet.from_pretrained(teacher), WarpNet.from_pretrained(tmp_path / "warpnet")
    assert all(torch.equal(mine.state_dict()[k], v) for k, v in attached.state_dict().items())
    assert torch.equal(mine(person)[0], attached(person)[0])
    with pytest.raises(ValueError, match="without a warp prior"):
        WarpNet.from_pretrained(tmp_path / "base")

    data = tmp_path / "warp.npz"
    make_data(data, "train", 16, workers=1)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "on"), "--init", str(teacher),
                 "--steps", "2", "--batch", "4"]) == 0
    trained = WarpNet.from_pretrained(tmp_path / "on" / "final").state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in attached.state_dict().items())
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "no"), "--init", str(tmp_path / "base"),
                 "--steps", "2"]) == 2
    assert "without a warp prior" in capsys.readouterr().err
