"""scripts/gpu-teacher-unpack.py: what a CUDA machine sends back (fp16 components of two runs, in parts) becomes
model folders over their starts; the frozen parts stay the start's; another architecture is refused."""
import io
import json
import tarfile
from pathlib import Path

import pytest
import torch

from tests.script_module import script_main

ROOT = Path(__file__).resolve().parents[1]


def _unpack():
    return script_main("gpu-teacher-unpack.py")


def _send_back(folder: Path, runs: dict[str, tuple[Path, dict]]) -> None:
    """The device side's pack: per run its config, changed components in fp16 and a log, tarred and split."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, (config, comps) in runs.items():
            files = {"config.json": config.read_bytes(), "log.jsonl": b'{"step": 1, "loss": 0.5}\n'}
            for comp, state in comps.items():
                files[f"{comp}.safetensors"] = _bytes({k: v.half() for k, v in state.items()})
            for fname, data in files.items():
                info = tarfile.TarInfo(f"pack/{name}/{fname}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    folder.mkdir()
    half = len(data) // 2
    (folder / "gpu-teacher.tar.gz.part00").write_bytes(data[:half])
    (folder / "gpu-teacher.tar.gz.part01").write_bytes(data[half:])


def _bytes(state):
    from safetensors.torch import save

    return save(state)


def test_unpack_puts_the_trained_parts_over_the_start(tmp_path):
    from igr.model import IGRModel
    from igr.warp import WarpNet, attach

    start = ROOT / "models/teacher-zsnr"
    net = WarpNet()
    torch.nn.init.normal_(net.out.weight, std=0.1)
    net.save_pretrained(tmp_path / "warpnet")
    attach(start, tmp_path / "warpnet", tmp_path / "warp-init")
    teacher = IGRModel.from_pretrained(start)
    moved = {k: v + 0.01 for k, v in teacher.denoiser.state_dict().items()}
    warped = IGRModel.from_pretrained(tmp_path / "warp-init")
    moved_w = {k: v - 0.01 for k, v in warped.denoiser.state_dict().items()}
    _send_back(tmp_path / "back", {"gpu-ctl": (start / "config.json", {"denoiser": moved}),
                                   "gpu-truewarp": (tmp_path / "warp-init" / "config.json",
                                                    {"denoiser": moved_w, "warpnet": {}})})
    logs = tmp_path / "logs"
    logs.mkdir()
    main = _unpack()
    assert main([str(tmp_path / "back"), "--runs", str(tmp_path / "runs"), "--warpnet", str(tmp_path / "warpnet"),
                 "--logs", str(logs)]) == 0
    ctl = IGRModel.from_pretrained(tmp_path / "runs/gpu-ctl/final")
    for k, v in ctl.denoiser.state_dict().items():
        assert torch.equal(v, moved[k].half().float()), k            # fp16 over the wire, fp32 again
    for comp in ("vae", "garmnet", "prior", "image_encoder"):        # not sent: the start's, bit for bit
        for k, v in ctl.component(comp).state_dict().items():
            assert torch.equal(v, teacher.component(comp).state_dict()[k]), (comp, k)
    tw = IGRModel.from_pretrained(tmp_path / "runs/gpu-truewarp/final")
    assert torch.equal(tw.warpnet.out.weight, net.out.weight)       # frozen: the attached WarpNet
    assert torch.equal(tw.denoiser.unet.conv_in.weight, moved_w["unet.conv_in.weight"].half().float())
    assert json.loads((logs / "gpu-ctl.jsonl").read_text())["loss"] == 0.5
    assert (tmp_path / "runs/gpu-truewarp/log.jsonl").is_file()

    _send_back(tmp_path / "other", {"gpu-ctl": (tmp_path / "warp-init" / "config.json", {})})
    with pytest.raises(SystemExit, match="config sent back differs"):
        main([str(tmp_path / "other"), "--runs", str(tmp_path / "runs2"), "--warpnet", str(tmp_path / "warpnet"),
              "--logs", str(logs)])
    with pytest.raises(SystemExit):
        main([str(tmp_path / "none"), "--runs", str(tmp_path / "runs3")])
