"""scripts/swap-warpnet.py: a new WarpNet into a model folder, and every folder that links it relinked."""
import json

import torch

from igr.model import IGRModel
from igr.warp import WarpNet
from tests.script_module import script_main
from tests.tiny_warp import tiny_warp_model


def test_a_swapped_warpnet_reaches_every_linking_folder_and_nothing_else_changes(tmp_path, capsys):
    main = script_main("swap-warpnet.py")
    teacher = tiny_warp_model(tmp_path)                                   # tmp_path/{base,warpnet,teacher}
    IGRModel.from_pretrained(teacher).save_pretrained(tmp_path / "student", share_with=teacher)
    torch.manual_seed(1)
    other = WarpNet()
    torch.nn.init.normal_(other.out.weight, std=0.1)
    other.save_pretrained(tmp_path / "new")
    files = lambda d: {p.name: p.read_bytes() for p in d.iterdir()}     # noqa: E731
    before = {d: files(tmp_path / d) for d in ("teacher", "student", "base")}

    assert main(["--model", str(teacher), "--warp", str(tmp_path / "new"), "--models", str(tmp_path)]) == 0
    assert "relinked: " + str(tmp_path / "student") in capsys.readouterr().out
    for folder in ("teacher", "student"):
        loaded = IGRModel.from_pretrained(tmp_path / folder).warpnet.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in other.state_dict().items())
    after = {d: files(tmp_path / d) for d in ("teacher", "student", "base")}
    assert after["base"] == before["base"]
    assert {k for k in after["teacher"] if after["teacher"][k] != before["teacher"][k]} == {"warpnet.safetensors"}
    assert {k for k in after["student"] if after["student"][k] != before["student"][k]} == {"shared.json"}
    old_links, new_links = (json.loads(x["student"]["shared.json"]) for x in (before, after))
    assert {k for k in old_links if old_links[k] != new_links[k]} == {"warpnet"}

    # the student's WarpNet is a link: refused; a stale link elsewhere: refused before anything is written
    assert main(["--model", str(tmp_path / "student"), "--warp", str(tmp_path / "new"), "--models", str(tmp_path)]) == 2
    assert "no warpnet.safetensors of its own" in capsys.readouterr().err
    new_links["warpnet"]["sha256"] = "0" * 64
    (tmp_path / "student" / "shared.json").write_text(json.dumps(new_links))
    kept = (teacher / "warpnet.safetensors").read_bytes()
    assert main(["--model", str(teacher), "--warp", str(tmp_path / "warpnet"), "--models", str(tmp_path)]) == 2
    assert "mend that folder first" in capsys.readouterr().err
    assert (teacher / "warpnet.safetensors").read_bytes() == kept
