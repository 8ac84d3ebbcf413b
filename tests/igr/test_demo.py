"""`make demo`'s module writes its pictures (tiny models here, the shipped teacher in the demo itself)."""
import pytest
from PIL import Image

from igr.demo import main


def test_demo_restores_with_a_model_folder(tiny_model, tmp_path, capsys):
    folder = tiny_model.save_pretrained(tmp_path / "model")
    out = tmp_path / "out"
    assert main(["--out", str(out), "--model", str(folder), "--n", "2", "--steps", "2"]) == 0
    sheet = Image.open(out / "synthgarment-sheet.png")
    grid = Image.open(out / "teacher-restored.png")
    assert sheet.width == 3 * 192 and grid.width == 3 * 48 and grid.height > 2 * 64
    assert sorted(p.name for p in out.iterdir()) == ["synthgarment-sheet.png", "teacher-restored.png"]
    assert "random weights" not in capsys.readouterr().out


def test_demo_untrained_says_so(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--untrained", "--preset", "tiny", "--n", "1", "--steps", "1"]) == 0
    assert (tmp_path / "igr-untrained-sample.png").is_file() and "random weights" in capsys.readouterr().out


def test_demo_refuses_a_folder_without_a_model(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path / "o"), "--model", str(tmp_path)])
    assert e.value.code == 2 and "not a model folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
