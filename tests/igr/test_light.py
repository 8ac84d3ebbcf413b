"""The light VAE's parts: FLOPs as torch counts them, mobile-friendly layers, and a model folder that carries them
(config `light`, two more components) through save, load, links and sampling."""
import dataclasses
import json

import pytest
import torch
from torch import nn

from igr.config import ConfigError, IGRConfig, LightVAEConfig
from igr.model import IGRModel
from distill.light import counted_flops
from igr.model.light import (attach_light, build_light, can_grow, decoder_flops, encoder_flops, grow_into,
                             save_light)
from igr.pipeline import sample
from igr.train.cache import digest


@pytest.mark.parametrize("cfg, size", [(LightVAEConfig.tiny(), (64, 48)), (LightVAEConfig(), (256, 192)),
                                       (LightVAEConfig(decoder=(4, 8, 16, 32), encoder=(), blocks=(1, 0, 2, 1),
                                                       rgb_skip=True), (64, 48))])
def test_flops_formula_is_what_torch_counts(cfg, size):
    decoder, encoder = build_light(cfg)
    h, w = size
    latent = torch.zeros(1, cfg.latent_channels, h // cfg.factor, w // cfg.factor)
    assert decoder_flops(cfg, h, w) == counted_flops(decoder, latent)
    if encoder is None:
        assert encoder_flops(cfg, h, w) == 0
    else:
        assert encoder_flops(cfg, h, w) == counted_flops(encoder, torch.zeros(1, 3, h, w))


def test_default_parts_cost_a_tenth_of_the_full_vae_at_256x192():
    cfg = LightVAEConfig()
    assert decoder_flops(cfg, 256, 192) / 1e9 == pytest.approx(0.619, abs=1e-3)     # full decoder: 5.99
    assert encoder_flops(cfg, 256, 192) / 1e9 == pytest.approx(0.449, abs=1e-3)     # full encoder: 1.89


def test_parts_are_convolutions_only_and_map_between_latent_and_image_sizes():
    cfg = LightVAEConfig.tiny()
    decoder, encoder = build_light(cfg)
    for part in (decoder, encoder):
        weighted = {type(m) for m in part.modules() if list(m.parameters(recurse=False))}
        assert weighted == {nn.Conv2d}                        # no normalization, no attention
    assert decoder(torch.zeros(2, 4, 8, 6)).shape == (2, 3, 64, 48)
    assert encoder(torch.zeros(2, 3, 64, 48)).shape == (2, 4, 8, 6)


def test_config_refuses_light_parts_with_another_level_count():
    with pytest.raises(ConfigError, match="levels"):
        IGRConfig.tiny().replace(light=True, light_vae=LightVAEConfig(decoder=(4, 8, 8), encoder=(), blocks=(0, 0, 0)))
    with pytest.raises(ConfigError, match="one count per level"):
        LightVAEConfig(decoder=(4, 8, 8, 8), encoder=(), blocks=(0, 1))


def test_grown_parts_compute_what_the_narrower_ones_did_and_the_added_channels_can_learn():
    """`grow_into`: wider levels and added blocks start silent, so a grown decoder and encoder give the old
    outputs exactly; the added channels still get gradients (through the zeroed weights that read them)."""
    old = LightVAEConfig(decoder=(4, 8, 8, 8), encoder=(4, 8, 8, 8), blocks=(0, 1, 0, 1), rgb_skip=True)
    new = LightVAEConfig(decoder=(8, 8, 16, 16), encoder=(4, 12, 8, 8), blocks=(1, 1, 2, 1), rgb_skip=True)
    torch.manual_seed(0)
    (dec, enc), (big_dec, big_enc) = build_light(old), build_light(new)
    for part in (dec, enc):                                # trained-looking biases, not the init's
        for p in part.parameters():
            p.data.add_(0.1 * torch.randn_like(p))
    assert can_grow(old, new)
    grow_into(big_dec, dec)
    grow_into(big_enc, enc)
    latent, image = torch.randn(2, 4, 8, 6), torch.rand(2, 3, 64, 48) * 2 - 1
    assert torch.equal(big_dec(latent), dec(latent)) and torch.equal(big_enc(image), enc(image))
    big_dec(latent).square().mean().backward()
    added = big_dec.conv_out.weight.grad[:, 4:]            # reads the full-resolution level's added channels
    assert added.abs().sum() > 0
    for narrower in (dataclasses.replace(old, decoder=(2, 8, 8, 8)), dataclasses.replace(old, blocks=(0, 0, 0, 1)),
                     dataclasses.replace(old, rgb_skip=False), dataclasses.replace(old, encoder=())):
        assert not can_grow(old, narrower)


@pytest.fixture(scope="module")
def light_model() -> IGRModel:
    torch.manual_seed(0)
    return IGRModel(IGRConfig.tiny().replace(light=True, light_vae=LightVAEConfig.tiny())).eval()


def test_a_model_with_light_parts_round_trips_bit_exactly(light_model, tmp_path):
    assert light_model.components[-2:] == ("light_decoder", "light_encoder")
    light_model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "light_decoder.safetensors").is_file()
    assert json.loads((tmp_path / "m" / "config.json").read_text())["light"] is True
    loaded = IGRModel.from_pretrained(tmp_path / "m")
    mine, theirs = light_model.state_dict(), loaded.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_sampling_runs_the_light_parts_where_the_model_has_them(light_model, person):
    calls = []
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: calls.append(name)) for name, m in
             [("light_decoder", light_model.light_decoder), ("light_encoder", light_model.light_encoder),
              ("decoder", light_model.vae.decoder), ("encoder", light_model.vae.encoder)]]
    try:
        light = sample(light_model, person, seed=0)
        assert calls == ["light_encoder", "light_decoder"]
        calls.clear()
        full = sample(light_model, person, seed=0, light=False)
        assert calls == ["encoder", "decoder"]
    finally:
        for h in hooks:
            h.remove()
    assert light.shape == full.shape and not torch.allclose(light, full)


def test_asking_for_light_parts_a_model_lacks_says_how_to_make_them(tiny_model, person):
    with pytest.raises(ValueError, match="python -m distill light-vae"):
        sample(tiny_model, person, light=True)


def test_light_parts_from_a_run_folder_are_attached_and_linked(tiny_model, tmp_path, person):
    cfg = LightVAEConfig.tiny()
    torch.manual_seed(1)
    decoder, encoder = build_light(cfg)
    save_light(tmp_path / "light", cfg, decoder, encoder, {"vae": digest(tiny_model.vae)})
    tiny_model.save_pretrained(tmp_path / "teacher")
    student = attach_light(IGRModel.from_pretrained(tmp_path / "teacher"), tmp_path / "light")
    student.save_pretrained(tmp_path / "student", share_with=[tmp_path / "teacher", tmp_path / "light"])
    links = json.loads((tmp_path / "student" / "shared.json").read_text())
    assert links["light_decoder"]["path"] == "../light/light_decoder.safetensors" and "vae" in links
    loaded = IGRModel.from_pretrained(tmp_path / "student")
    assert torch.equal(loaded.decode(torch.ones(1, 4, 8, 6), light=True), decoder(torch.ones(1, 4, 8, 6)).clamp(-1, 1))
    assert torch.equal(sample(loaded, person, seed=3), sample(student, person, seed=3))

    torch.manual_seed(7)
    other = IGRModel(IGRConfig.tiny())                         # another VAE: its latents are not the parts'
    with pytest.raises(ConfigError, match="another VAE"):
        attach_light(other, tmp_path / "light")
