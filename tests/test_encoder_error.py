"""scripts/encoder-error.py: the full encoder itself is at relative L1 0 on both images a warp-prior model
encodes; random light parts are far; a model without a warp prior, and light parts without an encoder, are
refused."""
import dataclasses

import pytest
import torch

from distill.light import FullVAE
from igr.config import LightVAEConfig
from igr.model import IGRModel
from igr.model.light import build_light, save_light
from tests.script_module import script_module
from tests.tiny_warp import tiny_warp_model


def test_the_full_encoder_is_at_zero_a_random_light_one_is_not_and_refusals(tmp_path, capsys):
    from igr.warp import SIZE

    script = script_module("encoder-error.py")
    tiny_warp_model(tmp_path)
    model = IGRModel.from_pretrained(tmp_path / "teacher").eval()
    cfg = LightVAEConfig.tiny()
    decoder, encoder = build_light(cfg)
    person = torch.rand(2, 3, *SIZE) * 2 - 1
    with torch.no_grad():
        same, random = script.errors(model, [lambda x: model.encode(x, light=False), encoder], person)
    channel_bias = script.channel_bias
    assert set(same) == {"person", "warped", "person_bias", "warped_bias"}
    assert all(float(same[k].abs().max()) < 1e-6 and channel_bias(same[f"{k}_bias"]) < 1e-6 for k in ("person", "warped"))
    assert all(float(random[k].min()) > 0.1 and channel_bias(random[f"{k}_bias"]) > 0.01 for k in ("person", "warped"))
    # the bias is of the mean over images: opposite offsets in two images cancel, one offset everywhere does not
    offset = torch.tensor([[[1.0, 10.0]] * 4, [[-1.0, 10.0]] * 4])
    assert channel_bias(offset) == 0 and channel_bias(offset.abs()) == pytest.approx(0.1)

    vae = FullVAE.from_folder(tmp_path / "teacher").digest()
    save_light(tmp_path / "light", cfg, decoder, encoder, {"vae": vae})
    assert script.main([str(tmp_path / "light"), "--model", str(tmp_path / "teacher"), "--n", "2"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {tmp_path / 'light'} |")]
    assert len(row) == 1 and row[0].count("|") == 10
    with pytest.raises(SystemExit):                     # no WarpNet: one image per restore, nothing to compare
        script.main([str(tmp_path / "light"), "--model", str(tmp_path / "base"), "--n", "2"])
    no_encoder = dataclasses.replace(cfg, encoder=())
    save_light(tmp_path / "dec-only", no_encoder, build_light(no_encoder)[0], None, {"vae": vae})
    with pytest.raises(SystemExit):
        script.main([str(tmp_path / "dec-only"), "--model", str(tmp_path / "teacher"), "--n", "2"])
