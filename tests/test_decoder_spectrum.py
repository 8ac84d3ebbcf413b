"""scripts/decoder-spectrum.py: a blur keeps the low bands' energy and loses the high ones'; a model without light
parts is refused; a light model gets one row per kind of latent. scripts/decoder-fd.py: a decoder that draws what
the full one draws is at FD 0 from it."""
import pytest
import torch

from distill.light import FullVAE
from igr.config import IGRConfig, LightVAEConfig
from igr.model import IGRModel
from igr.model.light import attach_light, build_light, save_light
from tests.script_module import script_main, script_module


def _light_model(tmp_path):
    """A tiny model (tmp_path/plain) and the same with random light parts attached (tmp_path/lit)."""
    torch.manual_seed(0)
    IGRModel(IGRConfig.tiny()).save_pretrained(tmp_path / "plain")
    cfg = LightVAEConfig.tiny()
    save_light(tmp_path / "light", cfg, *build_light(cfg), {"vae": FullVAE.from_folder(tmp_path / "plain").digest()})
    attach_light(IGRModel.from_pretrained(tmp_path / "plain"), tmp_path / "light").save_pretrained(tmp_path / "lit")


def test_a_blur_loses_the_high_bands_energy_and_keeps_the_low_ones():
    band_energy = script_module("decoder-spectrum.py").band_energy
    torch.manual_seed(0)
    img = torch.rand(4, 3, 64, 48) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(img, 3, stride=1, padding=1, count_include_pad=False)
    ratio = [b / a for a, b in zip(band_energy(img), band_energy(blurred))]
    assert ratio[0] == pytest.approx(1.0, abs=0.05) and ratio[-1] < 0.2 and ratio == sorted(ratio, reverse=True)
    # the bands tile the half spectrum rfft2 keeps: about half the images' energy (Parseval)
    assert sum(band_energy(img)) == pytest.approx(0.5 * float((img ** 2).sum((-2, -1)).mean()), rel=0.1)


def test_rows_for_a_light_model_and_a_refusal_without_light_parts(tmp_path, capsys):
    _light_model(tmp_path)
    main = script_main("decoder-spectrum.py")
    assert main([str(tmp_path / "lit"), "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"| {tmp_path / 'lit'} |") == 2 and "own samples" in out and "true garments" in out
    with pytest.raises(SystemExit):
        main([str(tmp_path / "plain"), "--n", "2"])
    assert "no light parts" in capsys.readouterr().err


def test_decoder_fd_is_zero_for_the_full_decoder_itself_and_above_it_for_a_light_one(tmp_path, capsys):
    """scripts/decoder-fd.py: FD_garm between a light decoder's and the full decoder's images of the same latents."""
    module = script_module("decoder-fd.py")
    _light_model(tmp_path)
    full = IGRModel.from_pretrained(tmp_path / "lit")
    real = module.light_decoder
    # "exact": a stand-in light decoder that draws what the full decoder draws
    module.light_decoder = lambda folder: (lambda z: full.decode(z, light=False)) if folder == "exact" else real(folder)
    args = ["--latents-from", str(tmp_path / "lit"), "--features", str(tmp_path / "plain"), "--n", "8", "--batch", "4"]
    assert module.main([*args, "exact", str(tmp_path / "lit")]) == 0
    out = capsys.readouterr().out
    rows = {line.split(" | ")[0][2:]: [float(v) for v in line.strip(" |").split(" | ")[1:]]
            for line in out.splitlines() if line.startswith("| exact") or line.startswith(f"| {tmp_path}")}
    full_to_truth = float(out.split("true garments: ")[1].split()[0])
    assert rows["exact"][0] < 1e-3 and rows["exact"][1] == pytest.approx(full_to_truth, abs=2e-3)
    assert rows[str(tmp_path / "lit")][0] > 0.01
    with pytest.raises(SystemExit):
        module.main([*args, str(tmp_path / "plain")])
    assert "no light parts" in capsys.readouterr().err
