"""The light aligned prior on a tiny model: it learns the full prior's answers (not the truth), the rest of the
model is untouched, and the CLI writes a folder that loads, samples, and links what it did not change."""
import json

import pytest
import torch

from distill.__main__ import main as distill_main
from distill.prior import answers, distill_prior, relative_l1
from igr.config import IGRConfig
from igr.model import IGRModel
from igr.pipeline import sample


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("prior")
    torch.manual_seed(0)
    model = IGRModel(IGRConfig.tiny().replace(aligned_prior=True))
    with torch.no_grad():                                   # a prior that answers something other than its init
        for p in model.prior.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(root / "model")
    latents = torch.randn(512, 4, 8, 6)
    return root, model, latents


def test_the_narrow_prior_learns_the_full_priors_answers_and_nothing_else_changes(setup):
    _, model, latents = setup
    untrained, _ = distill_prior(model, (8, 16, 16), latents, steps=1, holdout=64, progress=False)
    trained, record = distill_prior(model, (8, 16, 16), latents, steps=150, batch=32, lr=3e-3, holdout=64,
                                    progress=False)
    held = latents[-64:]                                    # never trained on
    want = answers(model.prior, held)
    assert relative_l1(answers(trained.prior, held), want) < 0.7 * relative_l1(answers(untrained.prior, held), want)
    assert record["relative_l1_holdout"] == pytest.approx(relative_l1(answers(trained.prior, held), want), abs=1e-4)
    assert record["gflop"]["light"] < record["gflop"]["full"] and record["curve"][-1]["l1"] < record["curve"][0]["l1"]
    assert trained.config.prior.channels == (8, 16, 16) and trained.config.replace(prior=model.config.prior) == \
        model.config
    for name in model.components:
        if name != "prior":
            mine, theirs = trained.component(name).state_dict(), model.component(name).state_dict()
            assert all(torch.equal(mine[k], theirs[k]) for k in theirs), name
    with pytest.raises(ValueError, match="none to train on"):
        distill_prior(model, (8, 16, 16), latents, holdout=512, progress=False)
    with pytest.raises(ValueError, match="no aligned prior"):
        distill_prior(IGRModel(IGRConfig.tiny()), (8, 16, 16), latents, progress=False)


def test_the_cli_writes_a_folder_that_samples_and_links_the_unchanged_parts(setup, tmp_path, monkeypatch):
    root, model, latents = setup
    import distill.prior

    monkeypatch.setattr(distill.prior, "person_latents", lambda cache, size="256x192": latents)
    out = tmp_path / "student-lp"
    assert distill_main(["light-prior", "--model", str(root / "model"), "--channels", "8,16,16", "--cache", "unused",
                         "--holdout", "64", "--train-steps", "20", "--batch", "8", "--dtype", "fp32",
                         "--out", str(out), "--share-with", str(root / "model")]) == 0
    shared = json.loads((out / "shared.json").read_text())
    assert "prior" not in shared and {"denoiser", "garmnet", "vae"} <= shared.keys()
    meta = json.loads((out / "prior.json").read_text())
    assert meta["channels"] == [8, 16, 16] and meta["source_model"] == str(root / "model")
    loaded = IGRModel.from_pretrained(out)
    person = torch.rand(1, 3, 64, 48) * 2 - 1
    a, b = sample(loaded, person, seed=0), sample(model, person, seed=0)
    assert a.shape == b.shape and not torch.equal(a, b)
    with pytest.raises(SystemExit):
        distill_main(["light-prior", "--model", str(root / "model"), "--channels", "8,0", "--cache", "x",
                      "--out", str(tmp_path / "bad")])
