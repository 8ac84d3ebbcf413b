"""IGR from a local Stable Diffusion folder (igr.model.sd, `igr.train --pretrained`): tiny random-weight folders of
the diffusers SD 1.5 layout, written by diffusers' and transformers' own save_pretrained, load into GarmDenoiser,
GarmNet, the VAE and the CLIP tower, train, save and reload bit-exactly, export through convert and restore with
igr_edge; a missing or mismatched part fails with one error naming the file and the expected shape."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from igr.config import IGRConfig
from igr.model import IGRModel
from igr.model.igr import build_unet, build_vae, clip_vision_config
from igr.model.sd import PretrainedFolderError, from_sd_folder, write_sd_folder
from igr.train.__main__ import main as train_main
from tests.tiny_bundles import tiny_sd_config

TINY_SD = tiny_sd_config()

# runwayml/stable-diffusion-v1-5 unet/config.json and vae/config.json, h94/IP-Adapter models/image_encoder/config.json
SD15_UNET = {"act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280],
             "center_input_sample": False, "cross_attention_dim": 768,
             "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
             "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
             "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4,
             "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}
SD15_VAE = {"act_fn": "silu", "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
            "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3,
            "up_block_types": ["UpDecoderBlock2D"] * 4}
IP_ADAPTER_ENCODER = {"hidden_act": "gelu", "hidden_size": 1280, "image_size": 224, "intermediate_size": 5120,
                      "layer_norm_eps": 1e-05, "num_attention_heads": 16, "num_channels": 3, "num_hidden_layers": 32,
                      "patch_size": 14, "projection_dim": 1024}


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return write_sd_folder(TINY_SD, tmp_path_factory.mktemp("sd") / "sd-tiny", seed=3)


@pytest.fixture(scope="module")
def trained(sd_folder, tmp_path_factory):
    """2 coarse steps from the folder, through the CLI; the run folder."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert train_main(["--stage", "coarse", "--preset", "tiny", "--pretrained", str(sd_folder), "--out", str(out),
                       "--steps", "2", "--gradient-checkpointing"]) == 0
    return out


def _file(folder, part):
    return load_file(str(folder / part / ("model.safetensors" if part == "image_encoder"
                                          else "diffusion_pytorch_model.safetensors")))


def _norm(d):
    return json.loads(json.dumps(d))


def test_sd15_preset_has_the_sd15_unet_vae_and_ip_adapter_encoder():
    cfg = IGRConfig.sd15()
    assert (cfg.height, cfg.width, cfg.latent_shape) == (512, 384, (4, 64, 48))
    with torch.device("meta"):
        unet, vae = build_unet(cfg.unet, 4), build_vae(cfg.vae)
    assert {k: _norm(unet.config[k]) for k in SD15_UNET} == SD15_UNET
    assert {k: _norm(vae.config[k]) for k in SD15_VAE} == SD15_VAE
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964            # SD 1.5's UNet
    clip = clip_vision_config(cfg.encoder).to_dict()
    assert {k: clip[k] for k in IP_ADAPTER_ENCODER} == IP_ADAPTER_ENCODER


def test_a_tiny_sd_folder_loads_into_both_unets_the_vae_and_the_tower(sd_folder):
    model = from_sd_folder(sd_folder, IGRConfig.tiny())
    assert model.config == TINY_SD, "the architecture comes from the folder, the rest from the base preset"
    unet, vae, tower = (_file(sd_folder, p) for p in ("unet", "vae", "image_encoder"))
    den, garm = model.denoiser.unet.state_dict(), model.garmnet.unet.state_dict()
    assert all(torch.equal(den[k], v) for k, v in unet.items()), "GarmDenoiser starts as the UNet"
    assert set(garm) < set(unet) and all(torch.equal(garm[k], unet[k]) for k in garm), "GarmNet is a copy, cut short"
    assert all(torch.equal(model.vae.state_dict()[k], v) for k, v in vae.items())
    assert all(torch.equal(model.image_encoder.clip.state_dict()[k], v) for k, v in tower.items())
    for name, proc in model.denoiser.unet.attn_processors.items():      # IP-Adapter: image branch = text branch
        if name.endswith("attn2.processor"):
            attn = model.denoiser.unet.get_submodule(name.removesuffix(".processor"))
            assert torch.equal(proc.to_k_ip.weight, attn.to_k.weight)


def test_an_aligned_prior_widens_the_loaded_input_at_zero(sd_folder):
    model = from_sd_folder(sd_folder, IGRConfig.tiny().replace(aligned_prior=True))
    w = model.denoiser.unet.conv_in.weight
    assert w.shape[1] == 8 and torch.equal(w[:, :4], _file(sd_folder, "unet")["conv_in.weight"])
    assert not w[:, 4:].any()


def test_trained_from_the_folder_saves_and_reloads_bit_exactly(sd_folder, trained, tmp_path):
    final = IGRModel.from_pretrained(trained / "final")
    assert final.config == TINY_SD
    unet = _file(sd_folder, "unet")
    assert any(not torch.equal(final.denoiser.unet.state_dict()[k], v) for k, v in unet.items()), "it trained"
    assert all(torch.equal(final.vae.state_dict()[k], v) for k, v in _file(sd_folder, "vae").items()), "VAE frozen"
    tower = final.image_encoder.clip.state_dict()
    assert all(torch.equal(tower[k], v) for k, v in _file(sd_folder, "image_encoder").items()), "tower frozen"
    final.save_pretrained(tmp_path / "again")
    again = IGRModel.from_pretrained(tmp_path / "again")
    a, b = final.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for name in final.components:
        assert (tmp_path / "again" / f"{name}.safetensors").read_bytes() == \
            (trained / "final" / f"{name}.safetensors").read_bytes()


def test_the_trained_model_exports_and_igr_edge_restores_what_torch_samples(tiny_bundles):
    # the tiny bundles' `sd`: the same folder layout and config, trained 2 steps through the CLI, exported by
    # convert's components path (five graphs; cached with the other tiny bundles)
    from igr.pipeline import sample
    from igr_edge import Restorer
    from igr_edge.noise import normal

    model = IGRModel.from_pretrained(tiny_bundles["models"] / "sd")
    assert model.config == TINY_SD
    c, h, w = model.config.latent_shape
    rng = np.random.default_rng(0)
    person = rng.integers(0, 256, (model.config.height, model.config.width, 3), dtype=np.uint8)
    with Restorer(bundle=tiny_bundles["sd"], backend="cpu") as restorer:
        edge = np.asarray(restorer.restore(person, seed=7))
    x = torch.from_numpy(person).permute(2, 0, 1)[None].float() / 127.5 - 1
    noise = torch.from_numpy(normal(7, (1, c, h, w)))
    with torch.no_grad():
        ours = ((sample(model, x, noise=noise)[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    assert edge.shape == ours.shape == (64, 48, 3)
    assert np.abs(edge.astype(int) - ours.astype(int)).mean() < 1.0
    assert edge.std() > 1, "not a blank image"


def _broken(sd_folder, tmp_path):
    import shutil

    folder = tmp_path / "sd"
    shutil.copytree(sd_folder, folder)
    return folder


def test_a_missing_part_names_the_file(sd_folder, tmp_path):
    folder = _broken(sd_folder, tmp_path)
    (folder / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(PretrainedFolderError, match=r"vae/diffusion_pytorch_model\.safetensors is missing"):
        from_sd_folder(folder, IGRConfig.tiny())
    (folder / "image_encoder" / "config.json").unlink()
    with pytest.raises(PretrainedFolderError, match=r"image_encoder/config\.json is missing"):
        from_sd_folder(folder, IGRConfig.tiny())


def test_a_mismatched_tensor_names_the_file_and_the_expected_shape(sd_folder, tmp_path, capsys):
    folder = _broken(sd_folder, tmp_path)
    path = folder / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(path))
    state["conv_in.weight"] = torch.zeros(16, 9, 3, 3)               # an inpainting UNet's 9-channel input
    save_file(state, str(path))
    with pytest.raises(PretrainedFolderError, match=r"unet/diffusion_pytorch_model\.safetensors: conv_in\.weight has "
                                                    r"shape \(16, 9, 3, 3\), .*implies \(16, 4, 3, 3\)"):
        from_sd_folder(folder, IGRConfig.tiny())
    del state["conv_in.weight"]
    save_file(state, str(path))
    with pytest.raises(PretrainedFolderError, match=r"lacks conv_in\.weight \(expected shape \(16, 4, 3, 3\)"):
        from_sd_folder(folder, IGRConfig.tiny())
    assert train_main(["--stage", "coarse", "--preset", "tiny", "--pretrained", str(folder),
                       "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "conv_in.weight" in err[0], err


def test_a_config_igr_cannot_build_names_the_field(sd_folder, tmp_path):
    folder = _broken(sd_folder, tmp_path)
    path = folder / "unet" / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "use_linear_projection": True}))        # SD 2.x
    with pytest.raises(PretrainedFolderError, match=r"unet/config\.json: use_linear_projection is true, .* expects false"):
        from_sd_folder(folder, IGRConfig.tiny())
    path.write_text(json.dumps({**config, "in_channels": 9}))
    with pytest.raises(PretrainedFolderError, match=r"in_channels is 9, .*4-channel latent expects 4"):
        from_sd_folder(folder, IGRConfig.tiny())


def test_old_vae_attention_names_are_read(sd_folder, tmp_path):
    folder = _broken(sd_folder, tmp_path)
    path = folder / "vae" / "diffusion_pytorch_model.safetensors"
    new = load_file(str(path))
    old = {k.replace(".to_q.", ".query.").replace(".to_k.", ".key.").replace(".to_v.", ".value.")
           .replace(".to_out.0.", ".proj_attn."): v for k, v in new.items()}
    assert old.keys() != new.keys()
    save_file(old, str(path))
    model = from_sd_folder(folder, IGRConfig.tiny())
    assert all(torch.equal(model.vae.state_dict()[k], v) for k, v in new.items())


def test_gradient_checkpointing_gives_the_same_gradients(sd_folder):
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = from_sd_folder(sd_folder, IGRConfig.tiny()).train()
        if checkpointing:
            model.enable_gradient_checkpointing()
        person = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1
        model.diffusion_loss(person, person.flip(-1), generator=torch.Generator().manual_seed(2), dropout=0).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any(n.startswith("garmnet.") for n in grads[0])
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])
