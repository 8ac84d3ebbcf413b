"""scripts/tradeoff-plot.py: the points come from the reports' means; a report without the metrics is refused."""
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "tradeoff-plot.py"


@pytest.fixture(scope="module")
def tp():
    spec = importlib.util.spec_from_file_location("tradeoff_plot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(path: Path, ssim: float, fd: float, corr: float) -> Path:
    path.write_text(json.dumps({"metrics": {"ssim_mask": {"mean": ssim}, "fd": {"mean": fd},
                                            "print_corr": {"mean": corr}}}))
    return path


def test_points_and_the_plot(tp, tmp_path, capsys):
    a, b = _report(tmp_path / "a.json", 0.44, 3.0, 0.12), _report(tmp_path / "b.json", 0.47, 9.0, 0.10)
    ref = _report(tmp_path / "r.json", 0.46, 17.0, -0.02)
    assert tp.point(b) == {"fd": 9.0, "ssim_mask": 0.47, "print_corr": 0.10}
    out = tmp_path / "fig" / "curve.png"
    assert tp.main(["--eval", f"J 1={a}", "--eval", f"J 0.1={b}", "--ref", f"baseline={ref}", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_a_report_without_the_metrics_is_refused(tp, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"metrics": {"ssim_mask": {"mean": 0.4}}}))
    assert tp.main(["--eval", f"x={bad}", "--out", str(tmp_path / "o.png")]) == 2
    assert "has no fd, print_corr" in capsys.readouterr().err and not (tmp_path / "o.png").exists()
    with pytest.raises(SystemExit):
        tp.main(["--eval", "no-equals-sign", "--out", str(tmp_path / "o.png")])
