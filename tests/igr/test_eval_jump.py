"""`igr.eval --jump`, `--guidance-below`, `--jump-mean`: what it samples is the pipeline's jump plan, the report
says so, a model whose config carries a plan is evaluated on it, and what cannot run is refused up front."""
import json

import pytest
import torch

from igr.config import IGRConfig
from igr.eval import main as eval_main
from igr.model import IGRModel


@pytest.fixture(scope="module")
def zero_snr(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("zero") / "model"
    IGRModel(IGRConfig.tiny().replace(zero_snr=True, sample_steps=4)).save_pretrained(folder)
    return folder


def _eval(folder, out, *extra):
    return eval_main(["--model", str(folder), "--n", "4", "--batch", "2", "--boot", "20", "--out", str(out), *extra])


def test_a_jump_is_evaluated_as_the_pipeline_samples_it(zero_snr, tmp_path):
    from igr.eval import split_batches
    from igr.metrics import image_metrics
    from igr.pipeline import sample_items

    assert _eval(zero_snr, tmp_path / "j", "--jump", "0.5", "--guidance-below", "499", "--guidance", "2") == 0
    report = json.loads((tmp_path / "j.json").read_text())
    assert report["sampling"]["jump"] == 0.5 and report["sampling"]["guidance_below"] == 499
    model = IGRModel.from_pretrained(zero_snr).eval()
    size = (model.config.height, model.config.width)
    expected, first = [], 0
    for person, garment, mask in split_batches("test", 4, size, 2):
        pred = sample_items(model, person, first, jump=0.5, guidance_below=499, guidance_scale=2.0)
        expected += image_metrics(pred, garment, mask)["psnr_mask"].tolist()
        first += len(person)
    assert report["metrics"]["per_sample"]["psnr_mask"] == pytest.approx(expected, abs=1e-4)


def test_a_plan_in_the_config_is_the_evaluated_plan(zero_snr, tmp_path):
    model = IGRModel.from_pretrained(zero_snr)
    model.config = model.config.replace(sample_jump=0.3, guidance_below=300)
    model.save_pretrained(tmp_path / "planned")
    assert _eval(tmp_path / "planned", tmp_path / "p") == 0
    sampling = json.loads((tmp_path / "p.json").read_text())["sampling"]
    assert sampling["jump"] == 0.3 and sampling["guidance_below"] == 300


@pytest.mark.parametrize("extra, says", [
    (["--jump", "0.5", "--strength", "0.5"], "two different starts"),
    (["--jump-mean", "2"], "with --jump"),
    (["--jump", "0.01"], "leaves none"),
    (["--jump", "1"], "jump must be in"),
])
def test_what_cannot_run_is_refused_before_any_sampling(zero_snr, tmp_path, capsys, extra, says):
    with pytest.raises(SystemExit) as e:
        _eval(zero_snr, tmp_path / "r", *extra)
    assert e.value.code == 2 and says in capsys.readouterr().err and not (tmp_path / "r.json").exists()


def test_a_jump_needs_a_zero_terminal_snr_model(tiny_model, tmp_path, capsys):
    folder = tiny_model.save_pretrained(tmp_path / "plain")
    with pytest.raises(SystemExit) as e:
        _eval(folder, tmp_path / "r", "--jump", "0.5")
    assert e.value.code == 2 and "zero terminal SNR" in capsys.readouterr().err
