"""The swap test: one denoiser call conditioned on the pair's own person vs another's, per timestep."""
import json

import torch

from igr.config import IGRConfig
from igr.model import IGRModel
from igr.probe import main as probe_main, swap_test


def test_swap_test_measures_own_swapped_and_blind_errors_per_timestep():
    torch.manual_seed(0)
    model = IGRModel(IGRConfig.tiny().replace(zero_snr=True, aligned_prior=True))
    person, garment = torch.rand(2, 4, 3, 64, 48) * 2 - 1
    rows = swap_test(model, person, garment, timesteps=(10, 999), batch=3)
    assert [r["t"] for r in rows] == [10, 999]
    for r in rows:
        assert r["own"] > 0 and r["swapped"] > 0 and r["mean_latent"] > 0
        assert r["swap_ratio"] == r["swapped"] / r["own"] and r["vs_mean"] == r["own"] / r["mean_latent"]
    assert rows[0]["own"] < rows[1]["own"]          # little noise: the input itself gives the garment away


def test_probe_cli_writes_json_and_markdown(tmp_path):
    torch.manual_seed(0)
    IGRModel(IGRConfig.tiny()).save_pretrained(tmp_path / "m")
    assert probe_main(["--model", str(tmp_path / "m"), "--n", "3", "--out", str(tmp_path / "probe" / "m")]) == 0
    data = json.loads((tmp_path / "probe" / "m.json").read_text())
    assert data["n"] == 3 and len(data["rows"]) == 7
    assert "| 999 |" in (tmp_path / "probe" / "m.md").read_text()
