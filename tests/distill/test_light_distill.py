"""Light VAE distillation on a tiny model: the loss falls, a resumed run ends where an unbroken one does, a
finished run is reused, and the sweep's report and a student with the light parts come out of the CLI."""
import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from distill import light as L
from distill.__main__ import main as distill_main
from igr.config import IGRConfig, LightVAEConfig
from igr.images import uint8_images
from igr.model import IGRModel
from igr.model.light import build_light, decoder_flops, load_light
from igr.pipeline import sample

SETTINGS = dict(batch=4, lr=3e-3, warmup=2, checkpoint_every=0, log_every=5)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("light")
    torch.manual_seed(0)
    IGRModel(IGRConfig.tiny()).save_pretrained(root / "teacher")
    vae = L.FullVAE.from_folder(root / "teacher")
    pool = L.build_pool(vae, root / "pool", n=8, progress=False)
    return root, vae, pool


def _pool_loss(decoder, encoder, pool) -> float:
    with torch.no_grad():
        dec = (decoder(pool["latent"]) - pool["decoded"].float()).abs().mean()
        enc = (encoder(L._float(pool["person"])) - pool["person_latent"]).abs().mean()
    return float(dec + enc)


def test_pool_holds_the_full_vaes_work_and_is_reused(setup, monkeypatch):
    root, vae, pool = setup
    assert pool["latent"].shape == (8, 4, 8, 6) and pool["decoded"].shape == (8, 3, 64, 48)
    assert torch.allclose(pool["decoded"].float(), vae.decode(pool["latent"]), atol=2e-3)
    monkeypatch.setattr(vae, "decode", lambda z: (_ for _ in ()).throw(AssertionError("pool computed again")))
    assert torch.equal(L.build_pool(vae, root / "pool", n=8, progress=False)["latent"], pool["latent"])


def test_training_lowers_the_loss_on_the_pool(setup, tmp_path):
    root, vae, pool = setup
    cfg = L.LightTrainConfig(steps=40, **SETTINGS)
    light = LightVAEConfig.tiny()
    torch.manual_seed(cfg.seed)
    before = _pool_loss(*build_light(light), pool)
    summary = L.distill_light(vae, light, pool, tmp_path / "run", cfg, progress=False)
    _, decoder, encoder, meta = load_light(tmp_path / "run" / "final")
    assert _pool_loss(decoder, encoder, pool) < 0.8 * before
    assert meta["vae"] == vae.digest() and meta["flops"]["decoder"] == decoder_flops(light, 64, 48)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 5, 10, 15, 20, 25, 30, 35, 39]
    assert {"dec_l1", "dec_edge", "enc_l1", "loss"} <= rows[0].keys()
    assert summary["final_loss_mean50"] < summary["first_loss"]


def test_a_resumed_run_ends_bit_exactly_where_an_unbroken_one_does(setup, tmp_path, monkeypatch):
    root, vae, pool = setup
    cfg = L.LightTrainConfig(steps=6, **SETTINGS)
    light = LightVAEConfig.tiny()
    L.distill_light(vae, light, pool, tmp_path / "straight", cfg, progress=False, keep_at=(3,))
    assert L.distill_light(vae, light, pool, tmp_path / "broken", cfg, progress=False, stop_after=3) == \
        {"stopped_at": 3}
    # the parts kept at step 3 of the straight run are the broken run's checkpoint at that step
    kept = load_light(tmp_path / "straight" / "step-3")
    ckpt = load_file(str(tmp_path / "broken" / "checkpoint" / "parts.safetensors"))
    assert kept[3]["step"] == 3 and kept[3]["settings"]["train"]["steps"] == 6
    assert all(torch.equal(v, ckpt[f"decoder.{k}"]) for k, v in kept[1].state_dict().items())
    assert all(torch.equal(v, ckpt[f"encoder.{k}"]) for k, v in kept[2].state_dict().items())
    assert "step" not in json.loads((tmp_path / "straight" / "final" / "light.json").read_text())
    assert (tmp_path / "broken" / "checkpoint" / "trainer.json").is_file()
    L.distill_light(vae, light, pool, tmp_path / "broken", cfg, progress=False)
    for part in ("light_decoder", "light_encoder"):
        a = (tmp_path / "straight" / "final" / f"{part}.safetensors").read_bytes()
        assert a == (tmp_path / "broken" / "final" / f"{part}.safetensors").read_bytes()
    steps = [[json.loads(line)["step"] for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
             for run in ("straight", "broken")]
    assert steps[0] == steps[1] == [0, 5]

    L.distill_light(vae, light, pool, tmp_path / "again", cfg, progress=False, stop_after=3)
    with pytest.raises(ValueError, match="other settings"):          # a checkpoint of another run is not taken up
        L.distill_light(vae, light, pool, tmp_path / "again", dataclasses.replace(cfg, lr=cfg.lr / 2), progress=False)
    monkeypatch.setattr(L, "light_loss", lambda *a: (_ for _ in ()).throw(AssertionError("trained again")))
    assert L.distill_light(vae, light, pool, tmp_path / "straight", cfg, progress=False)["vae"] == vae.digest()


def test_with_ema_the_parts_written_are_the_average_of_the_trained_weights_and_it_survives_a_resume(setup, tmp_path):
    root, vae, pool = setup
    light = LightVAEConfig.tiny()
    plain = L.LightTrainConfig(steps=6, **SETTINGS)
    cfg = dataclasses.replace(plain, ema=0.5)
    assert "ema" not in plain.to_dict() and cfg.to_dict()["ema"] == 0.5     # runs made before `ema` still match
    with pytest.raises(ValueError, match="ema"):
        L.LightTrainConfig(ema=1.0)
    # the trained weights after steps 1..3 (the average does not change training: same seed, same batches)
    L.distill_light(vae, light, pool, tmp_path / "plain", plain, progress=False, keep_at=(1, 2, 3))
    torch.manual_seed(plain.seed)
    trained = [L._parts(*build_light(light))] + [L._parts(*load_light(tmp_path / "plain" / f"step-{s}")[1:3])
                                                  for s in (1, 2, 3)]
    average = {k: v.clone() for k, v in trained[0].items()}
    for step in range(3):
        decay = min(0.5, (1 + step) / (10 + step))
        for k in average:
            average[k] = average[k] + (1 - decay) * (trained[step + 1][k] - average[k])
    L.distill_light(vae, light, pool, tmp_path / "ema", cfg, progress=False, keep_at=(3,))
    kept = L._parts(*load_light(tmp_path / "ema" / "step-3")[1:3])
    assert all(torch.allclose(kept[k], average[k], atol=1e-6) for k in average)
    assert not all(torch.equal(kept[k], trained[3][k]) for k in average)
    # a run broken after step 3 takes its average up again: the same final parts, byte for byte
    assert L.distill_light(vae, light, pool, tmp_path / "broken", cfg, progress=False, stop_after=3) == \
        {"stopped_at": 3}
    saved = load_file(str(tmp_path / "broken" / "checkpoint" / "average.safetensors"))
    assert all(torch.equal(saved[k], kept[k]) for k in kept)
    L.distill_light(vae, light, pool, tmp_path / "broken", cfg, progress=False)
    for part in ("light_decoder", "light_encoder"):
        a = (tmp_path / "ema" / "final" / f"{part}.safetensors").read_bytes()
        assert a == (tmp_path / "broken" / "final" / f"{part}.safetensors").read_bytes()
    assert json.loads((tmp_path / "ema" / "final" / "light.json").read_text())["settings"]["train"]["ema"] == 0.5


def test_the_spectrum_loss_charges_a_blur_not_a_shift_and_joins_the_loss_only_when_weighted(setup):
    root, vae, pool = setup
    torch.manual_seed(0)
    img = torch.rand(2, 3, 32, 24) * 2 - 1
    shifted = torch.roll(img, shifts=(5, 3), dims=(2, 3))      # the same energy per frequency, every pixel moved
    blurred = torch.nn.functional.avg_pool2d(img, 3, stride=1, padding=1, count_include_pad=False)
    assert L.spectrum_l1(shifted, img) < 1e-5 < 0.1 < (shifted - img).abs().mean()
    assert L.spectrum_l1(blurred, img) > 0.1
    # in the loss: the weighted term is added to what the run without it computes, and logged
    plain = L.LightTrainConfig(steps=1, **SETTINGS)
    weighted = dataclasses.replace(plain, spectrum_weight=2.0)
    assert "spectrum_weight" not in plain.to_dict() and weighted.to_dict()["spectrum_weight"] == 2.0
    with pytest.raises(ValueError, match="weights"):
        L.LightTrainConfig(spectrum_weight=-1.0)
    torch.manual_seed(1)
    decoder, encoder = build_light(LightVAEConfig.tiny())
    base, base_logs = L.light_loss(decoder, encoder, pool, 0, plain)
    loss, logs = L.light_loss(decoder, encoder, pool, 0, weighted)
    assert "dec_spectrum" not in base_logs and logs["dec_spectrum"] > 0
    assert float(loss.detach()) == pytest.approx(float(base.detach()) + 2.0 * logs["dec_spectrum"], rel=1e-5)


def test_the_sweep_reports_each_width_and_attach_gives_a_student_that_samples_light(setup, tmp_path):
    root, vae, pool = setup
    code = distill_main(["light-sweep", "--vae", str(root / "teacher"), "--widths", "4,8,8,8", "4,8,16,16",
                         "--blocks", "0,1,0,1", "--runs", str(tmp_path / "runs"), "--pool", str(root / "pool"),
                         "--pool-n", "8", "--eval-n", "4", "--train-steps", "3", "--batch", "4",
                         "--out", str(tmp_path / "rep" / "light")])
    assert code == 0
    rep = json.loads((tmp_path / "rep" / "light.json").read_text())
    assert [r["decoder_widths"] for r in rep["rows"]] == [[4, 8, 8, 8], [4, 8, 16, 16]]
    assert rep["rows"][0]["decoder_gflop"] < rep["rows"][1]["decoder_gflop"] < rep["full"]["decoder_gflop"]
    assert {"psnr", "ssim", "ssim_mask"} <= rep["rows"][0]["vs_full"].keys() and "encoder" in rep["rows"][0]
    for suffix in (".md", ".png", "-grid.png"):
        assert (tmp_path / "rep" / f"light{suffix}").is_file()

    run = tmp_path / "runs" / "w4-8-8-8" / "final"
    assert distill_main(["light-attach", "--model", str(root / "teacher"), "--light", str(run),
                         "--out", str(tmp_path / "student")]) == 0
    student = IGRModel.from_pretrained(tmp_path / "student")
    assert student.config.light and (tmp_path / "student" / "light.json").is_file()
    person = torch.rand(1, 3, 64, 48) * 2 - 1
    _, decoder, _, _ = load_light(run)
    out = sample(student, person, seed=0)
    z = torch.randn(2, 4, 8, 6)
    assert torch.equal(student.decode(z, light=True), decoder(z).clamp(-1, 1))
    assert not torch.allclose(out, sample(student, person, seed=0, light=False))


def test_an_evaluation_of_a_light_student_says_which_vae_it_ran(setup, tmp_path):
    from igr.eval import main as eval_main
    from igr.model.light import attach_light, save_light

    root, vae, pool = setup
    cfg = LightVAEConfig.tiny()
    save_light(tmp_path / "light", cfg, *build_light(cfg), {"vae": vae.digest()})
    attach_light(IGRModel.from_pretrained(root / "teacher"), tmp_path / "light").save_pretrained(tmp_path / "student")
    rows = {}
    for name, flag in (("light", []), ("full", ["--full-vae"])):
        assert eval_main(["--model", str(tmp_path / "student"), "--n", "4", "--batch", "4", "--boot", "10",
                          "--out", str(tmp_path / name), *flag]) == 0
        rows[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert rows["light"]["sampling"]["light"] is True and "light" not in rows["full"]["sampling"]
    assert rows["light"]["metrics"]["ssim"] != rows["full"]["metrics"]["ssim"]


def test_an_evaluation_can_swap_one_light_part_for_the_full_vaes_and_says_which(setup, tmp_path):
    from igr.eval import main as eval_main
    from igr.model.light import attach_light, save_light

    root, vae, pool = setup
    cfg = LightVAEConfig.tiny()
    save_light(tmp_path / "light", cfg, *build_light(cfg), {"vae": vae.digest()})
    student = attach_light(IGRModel.from_pretrained(root / "teacher"), tmp_path / "light")
    student.save_pretrained(tmp_path / "student")
    # a model without its light decoder decodes with the full one; without its light encoder, encodes with the full one
    z, image = torch.randn(2, 4, 8, 6), torch.rand(2, 3, 64, 48) * 2 - 1
    light_dec, light_enc = student.light_decoder, student.light_encoder
    student.light_decoder, student.light_encoder = None, None
    assert torch.equal(student.decode(z, light=True), student.decode(z, light=False))
    assert torch.equal(student.encode(image, light=True), student.encode(image, light=False))
    assert not torch.allclose(light_dec(z).clamp(-1, 1), student.decode(z, light=False))
    rows = {}
    for name, flag in (("light", []), ("both", ["--full-vae"]), ("encoder", ["--full-vae", "encoder"]),
                       ("decoder", ["--full-vae", "decoder"])):
        assert eval_main(["--model", str(tmp_path / "student"), "--n", "4", "--batch", "4", "--boot", "10",
                          "--out", str(tmp_path / name), *flag]) == 0
        rows[name] = json.loads((tmp_path / f"{name}.json").read_text())
    for part in ("encoder", "decoder"):
        assert rows[part]["sampling"]["light"] is True and rows[part]["sampling"]["full_vae"] == part
    assert "full_vae" not in rows["light"]["sampling"] and "light" not in rows["both"]["sampling"]
    ssim = {name: row["metrics"]["ssim"]["mean"] for name, row in rows.items()}
    assert len(set(ssim.values())) == 4, ssim                   # each part swapped changes the restore
    with pytest.raises(SystemExit):                             # the teacher has no light parts to swap
        eval_main(["--model", str(root / "teacher"), "--n", "4", "--full-vae", "decoder", "--out", str(tmp_path / "x")])


def test_a_run_can_start_from_earlier_parts_of_the_same_or_a_narrower_shape_and_records_them(setup, tmp_path):
    root, vae, pool = setup
    cfg = L.LightTrainConfig(steps=30, **SETTINGS)
    light = LightVAEConfig.tiny()
    first = L.distill_light(vae, light, pool, tmp_path / "first", cfg, progress=False)
    short = dataclasses.replace(cfg, steps=2)
    scratch = L.distill_light(vae, light, pool, tmp_path / "scratch", short, progress=False)
    resumed = L.distill_light(vae, light, pool, tmp_path / "from", short, progress=False,
                              init=tmp_path / "first" / "final")
    # the first step of the run started from trained parts sees their (lower) loss, not a random decoder's
    assert resumed["first_loss"] < 0.8 * scratch["first_loss"]
    assert resumed["first_loss"] == pytest.approx(first["final_loss_mean50"], rel=0.5)
    init = resumed["settings"]["init"]
    assert init["folder"] == str(tmp_path / "first" / "final") and init["vae"] == vae.digest()
    assert "init" not in scratch["settings"]                  # a run from scratch keeps the settings it always had
    # wider parts start from the narrower ones grown (the same outputs), and say what they grew from
    wider = dataclasses.replace(light, decoder=tuple(2 * w for w in light.decoder))
    grown = L.distill_light(vae, wider, pool, tmp_path / "wider", short, progress=False,
                            init=tmp_path / "first" / "final")
    assert grown["first_loss"] == pytest.approx(resumed["first_loss"], rel=1e-4)
    assert grown["settings"]["init"]["grown_from"]["decoder"] == list(light.decoder)
    assert "grown_from" not in init
    narrower = dataclasses.replace(light, decoder=(2,) + light.decoder[1:])
    with pytest.raises(L.ConfigError, match="another shape"):
        L.distill_light(vae, narrower, pool, tmp_path / "other", short, progress=False,
                        init=tmp_path / "first" / "final")
    assert not (tmp_path / "other").exists()


def test_a_models_sampled_latents_are_what_it_decodes_and_join_the_pool(setup, tmp_path):
    """`distill latents`: the latents a model's sampler hands its decoder for the first N train persons, each
    from its own noise (what `sample_items` restores, before decoding); `build_pool` decodes them after the true
    garments' latents."""
    from safetensors.torch import load_file

    from igr.data import SynthGarmentDataset
    from igr.pipeline import sample_items

    root, vae, _ = setup
    out = tmp_path / "lat" / "student.safetensors"
    assert distill_main(["latents", "--model", str(root / "teacher"), "--n", "5", "--batch", "2", "--seed", "3",
                         "--out", str(out)]) == 0
    latent = load_file(str(out))["latent"]
    model = IGRModel.from_pretrained(root / "teacher").eval()
    assert latent.shape == (5, *model.config.latent_shape)
    person = torch.stack([SynthGarmentDataset("train", 5, size=(64, 48))[i]["person"] for i in (2, 3)])
    want = sample_items(model, person, 2, seed=3)
    assert torch.allclose(model.decode(latent[2:4]), want, atol=1e-4)
    assert [p.name for p in (tmp_path / "lat").iterdir()] == ["student.safetensors"]   # no temporary file left
    pool = L.build_pool(vae, tmp_path / "pool", n=4, extra_latents=out, progress=False)
    assert pool["latent"].shape[0] == 9 and torch.equal(pool["latent"][4:], latent)
    assert pool["person"].shape[0] == 4


def test_a_pool_can_hold_warped_persons_and_a_run_can_train_the_encoder_alone(tmp_path):
    """A warp-prior model's light encoder also encodes the person warped into the in-shop frame
    (`IGRModel.warp_input`): `warp_from` adds those images to the encoder's rows; `encoder_only` trains the encoder
    beside the decoder of `init`, written unchanged."""
    from igr.warp import warp
    from tests.tiny_warp import tiny_warp_model

    tiny_warp_model(tmp_path)
    vae = L.FullVAE.from_folder(tmp_path / "teacher")
    plain = L.build_pool(vae, tmp_path / "pool", n=4, progress=False)
    pool = L.build_pool(vae, tmp_path / "pool", n=4, warp_from=tmp_path / "teacher", progress=False)
    meta = json.loads((tmp_path / "pool" / "meta.json").read_text())
    assert meta["warp"]["from"] == str(tmp_path / "teacher")     # another pool than the plain one: built again
    assert pool["person"].shape[0] == 8 and torch.equal(pool["person"][:4], plain["person"])
    person = L._float(plain["person"])
    with torch.no_grad():
        warped = uint8_images(warp(person, IGRModel.from_pretrained(tmp_path / "teacher").warpnet(person)[0]))
    assert (pool["person"][4:].int() - warped.int()).abs().max() <= 1            # uint8 rounding of the person
    assert not torch.equal(pool["person"][4:], pool["person"][:4])
    with pytest.raises(ValueError, match="no warp prior"):
        L.build_pool(vae, tmp_path / "other", n=4, warp_from=tmp_path / "base", progress=False)

    light = LightVAEConfig.tiny()
    cfg = L.LightTrainConfig(steps=20, **SETTINGS)
    L.distill_light(vae, light, pool, tmp_path / "first", dataclasses.replace(cfg, steps=2), progress=False)
    only = dataclasses.replace(cfg, encoder_only=True)
    summary = L.distill_light(vae, light, pool, tmp_path / "enc", only, progress=False, init=tmp_path / "first" / "final")
    _, dec0, enc0, _ = load_light(tmp_path / "first" / "final")
    _, dec1, enc1, _ = load_light(tmp_path / "enc" / "final")
    assert all(torch.equal(a, b) for a, b in zip(dec0.state_dict().values(), dec1.state_dict().values()))
    with torch.no_grad():
        err = [float((e(L._float(pool["person"])) - pool["person_latent"]).abs().mean()) for e in (enc0, enc1)]
    assert err[1] < 0.9 * err[0], err
    rows = [json.loads(line) for line in (tmp_path / "enc" / "log.jsonl").read_text().splitlines()]
    assert "enc_l1" in rows[0] and "dec_l1" not in rows[0] and rows[0]["loss"] == rows[0]["enc_l1"]
    assert summary["settings"]["train"]["encoder_only"] is True
    assert "encoder_only" not in L.LightTrainConfig().to_dict()
    with pytest.raises(L.ConfigError, match="init"):
        L.distill_light(vae, light, pool, tmp_path / "none", only, progress=False)
