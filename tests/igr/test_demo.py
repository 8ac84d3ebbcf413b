"""`make demo`'s module writes its two pictures (tiny preset here, small in the demo itself)."""
from PIL import Image

from igr.demo import main


def test_demo_writes_the_sample_sheet_and_a_sampling_pass(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--preset", "tiny", "--n", "2", "--steps", "2"]) == 0
    sheet = Image.open(tmp_path / "synthgarment-sheet.png")
    grid = Image.open(tmp_path / "igr-untrained-sample.png")
    assert sheet.width == 3 * 192 and grid.width == 3 * 48 and grid.height > 2 * 64
    assert "random weights" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["igr-untrained-sample.png", "synthgarment-sheet.png"]
