"""scripts/decoder-spectrum.py: a blur keeps the low bands' energy and loses the high ones'; a model without light
parts is refused; a light model gets one row per kind of latent."""
import pytest
import torch

from distill.light import FullVAE
from igr.config import IGRConfig, LightVAEConfig
from igr.model import IGRModel
from igr.model.light import attach_light, build_light, save_light
from tests.script_module import script_main


def _module():
    import importlib.util

    from tests.script_module import SCRIPTS

    spec = importlib.util.spec_from_file_location("decoder_spectrum", SCRIPTS / "decoder-spectrum.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_blur_loses_the_high_bands_energy_and_keeps_the_low_ones():
    band_energy = _module().band_energy
    torch.manual_seed(0)
    img = torch.rand(4, 3, 64, 48) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(img, 3, stride=1, padding=1, count_include_pad=False)
    ratio = [b / a for a, b in zip(band_energy(img), band_energy(blurred))]
    assert ratio[0] == pytest.approx(1.0, abs=0.05) and ratio[-1] < 0.2 and ratio == sorted(ratio, reverse=True)
    # the bands tile the half spectrum rfft2 keeps: about half the images' energy (Parseval)
    assert sum(band_energy(img)) == pytest.approx(0.5 * float((img ** 2).sum((-2, -1)).mean()), rel=0.1)


def test_rows_for_a_light_model_and_a_refusal_without_light_parts(tmp_path, capsys):
    torch.manual_seed(0)
    IGRModel(IGRConfig.tiny()).save_pretrained(tmp_path / "plain")
    cfg = LightVAEConfig.tiny()
    save_light(tmp_path / "light", cfg, *build_light(cfg), {"vae": FullVAE.from_folder(tmp_path / "plain").digest()})
    attach_light(IGRModel.from_pretrained(tmp_path / "plain"), tmp_path / "light").save_pretrained(tmp_path / "lit")
    main = script_main("decoder-spectrum.py")
    assert main([str(tmp_path / "lit"), "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"| {tmp_path / 'lit'} |") == 2 and "own samples" in out and "true garments" in out
    with pytest.raises(SystemExit):
        main([str(tmp_path / "plain"), "--n", "2"])
    assert "no light parts" in capsys.readouterr().err
