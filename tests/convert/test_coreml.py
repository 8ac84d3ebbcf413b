"""The Core ML exporter's precision and metadata, on real conversions read back from the saved package (conversion
works on Linux; predictions need macOS, see the tests marked coreml)."""
import dataclasses
import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F

ct = pytest.importorskip("coremltools")

from convert.coreml_export import (LICENCE, convert_coreml, describe, precisions, spec_check,  # noqa: E402
                                   to_mlprogram)
from convert.gates import GateError, gate_images  # noqa: E402
from convert.specs import specs_for  # noqa: E402
from igr.config import IGRConfig  # noqa: E402
from igr.model import IGRModel  # noqa: E402


class Normed(nn.Module):
    """person, noise -> garment through a GroupNorm and a LayerNorm, as the student's blocks use them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.group = nn.GroupNorm(2, 8)
        self.layer = nn.LayerNorm(8)
        self.out = nn.Conv2d(8, 3, 1)

    def forward(self, person: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = self.group(self.conv(person))                                   # (1, 8, H, W)
        x = self.layer(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = self.out(x) + F.interpolate(noise[:, :3], scale_factor=8)       # (1, 3, H, W)
        return ((x + 1.0) * 127.5).round().clamp(0, 255)


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """The same module converted as the exporter does and with plain fp16 everywhere, saved and described."""
    torch.manual_seed(0)
    cfg = IGRConfig.tiny()
    module = Normed().eval()
    root = tmp_path_factory.mktemp("coreml")
    out = {}
    for name, precision in (("ours", None), ("fp16", ct.precision.FLOAT16)):
        mlmodel = to_mlprogram(module, cfg.height, cfg.width, cfg.latent_shape, compute_precision=precision)
        describe(mlmodel, "coreml-fp16", cfg, 2)
        mlmodel.save(str(root / f"{name}.mlpackage"))
        out[name] = root / f"{name}.mlpackage"
    return out


def spec(package):
    return ct.models.MLModel(str(package), skip_model_load=True).get_spec()


def test_normalization_statistics_are_fp32_and_the_rest_fp16(packages):
    fp32, statistics16 = precisions(spec(packages["ours"]))
    assert statistics16 == {}
    # GroupNorm: mean, x − mean, its square, their mean, + ε, √, ÷ σ; LayerNorm whole
    assert {"reduce_mean", "sub", "square", "add", "sqrt", "real_div", "layer_norm"} <= set(fp32)
    assert "conv" not in fp32                                      # the convolutions compute in fp16
    plain32, plain16 = precisions(spec(packages["fp16"]))
    assert {"square", "layer_norm"} <= set(plain16) and "square" not in plain32       # what the check refuses


def test_the_spec_check_refuses_fp16_normalization_statistics(packages):
    student = specs_for(IGRConfig.tiny().replace(sample_steps=2), student_steps=2)["student"]
    assert "layer_norm" in spec_check(packages["ours"], student)["fp32_ops"]
    with pytest.raises(GateError, match=r"Core ML normalization statistics ops in fp16 \(.*square 1.*\)"):
        spec_check(packages["fp16"], student)


def test_the_package_carries_author_licence_and_descriptions(packages):
    model = ct.models.MLModel(str(packages["ours"]), skip_model_load=True)
    assert model.author == "IGR Edge" and model.license == LICENCE and model.version == "1"
    assert "2-step student (coreml-fp16)" in model.short_description
    assert model.input_description["person"].startswith("Person photo, RGB 48×64")
    assert "float32 1×4×8×6" in model.input_description["noise"] and "splitmix64-boxmuller" in model.input_description["noise"]
    assert model.output_description["garment"] == "Restored garment, RGB 48×64"


def test_a_pretrained_image_towers_licence_is_named_in_the_package(packages):
    cfg = IGRConfig.tiny()
    cfg = cfg.replace(encoder=dataclasses.replace(cfg.encoder, backbone="efficientnet-lite0"))
    model = ct.models.MLModel(str(packages["ours"]), skip_model_load=True)
    describe(model, "coreml-fp16", cfg, 2)
    assert model.license == f"{LICENCE}; image tower weights: ImageNet EfficientNet-Lite0 (Tan & Le 2019), Apache-2.0"


@pytest.mark.slow          # ~70 s here: the tiny student's torch.export and ct.convert
def test_the_students_package_keeps_its_norm_statistics_in_fp32_and_is_described(tmp_path):
    torch.manual_seed(0)
    cfg = IGRConfig.tiny().replace(guidance_scale=1.0, sampler="ddim", sample_steps=2)
    meta = {"kind": "steps", "method": "progressive", "steps": 2, "guidance_baked": 2.0}
    IGRModel(cfg).save_pretrained(tmp_path / "student-2", extra={"distill.json": json.dumps(meta)})
    model = IGRModel.from_pretrained(tmp_path / "student-2")
    persons, truth, noise = gate_images(model.config, 2)
    package, parity = convert_coreml(specs_for(model.config, student_steps=2)["student"], model, tmp_path / "cm",
                                     "coreml-fp16", persons=persons, truth=truth, noise=noise, reference=truth)
    fp32 = parity["spec"]["fp32_ops"]
    ops = parity["spec"]["ops"]
    for op in ("square", "sqrt", "layer_norm", "reduce_mean"):     # every one of them in fp32
        assert fp32.get(op) == ops[op] > 0, op
    assert "conv" not in fp32 and "linear" not in fp32 and "matmul" not in fp32
    saved = ct.models.MLModel(str(package), skip_model_load=True)
    assert saved.author == "IGR Edge" and saved.license.startswith(LICENCE)
    assert saved.input_description["person"] and saved.input_description["noise"] and saved.output_description["garment"]
