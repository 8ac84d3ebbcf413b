"""The shell scripts the docs run: each parses, stops on the first error, and every one the docs name exists."""
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses_and_stops_on_errors(script):
    assert os.access(script, os.X_OK), f"{script.name} is not executable"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_every_script_the_docs_name_exists():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {m for doc in docs for m in re.findall(r"scripts/[\w.-]+\.(?:sh|py)\b", doc.read_text())}
    assert named, "the docs name no script: the pattern is wrong"
    missing = sorted(n for n in named if not (ROOT / n).is_file())
    assert not missing, f"named in the docs but not in the tree: {missing}"


def test_the_sourced_run_helpers_skip_finished_work_resume_and_name_their_files(tmp_path):
    """scripts/lib/runs.sh: train_stage trains only what has no final folder and resumes a checkpoint; evaluate_run
    evaluates a finished run once; compare_args names each run's evaluation, swap test, log folder and model."""
    (tmp_path / "done" / "final").mkdir(parents=True)
    (tmp_path / "done" / "final" / "config.json").write_text("{}")
    (tmp_path / "half" / "checkpoint").mkdir(parents=True)
    (tmp_path / "ev").mkdir()
    fake = tmp_path / "py"                                  # stands in for python: records its arguments
    fake.write_text(f'#!/usr/bin/env bash\necho "$@" >> {tmp_path}/calls\n')
    fake.chmod(0o755)

    def bash(commands):
        script = f"set -euo pipefail; . {ROOT}/scripts/lib/runs.sh; PY={fake} RUNS=. EVALS=ev N=7; {commands}"
        return subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True, capture_output=True, text=True).stdout

    out = bash("train_stage done --steps 5; train_stage half --steps 5 --set lr=1; evaluate_run done --guidance 2; "
               "compare_args a b")
    assert "[done] done" in out and "[half]" in out
    assert (tmp_path / "calls").read_text().splitlines() == [
        "-m igr.train --preset small --out ./half --steps 5 --set lr=1 --resume",
        "-m igr.eval --model ./done/final --features models/teacher-small --split test --n 7 --guidance 2 --out ev/done",
        "-m igr.probe --model ./done/final --n 64 --out ev/probe-done"]
    assert out.splitlines()[-2:] == [f"--eval {r}=ev/{r}.json --probe {r}=ev/probe-{r}.json --run {r}=./{r} "
                                     f"--model {r}=./{r}/final" for r in ("a", "b")]
    (tmp_path / "calls").unlink()
    (tmp_path / "ev" / "done.json").touch()                 # evaluated after the run finished: not again
    (tmp_path / "ev" / "probe-done.json").touch()
    bash("evaluate_run done")
    assert not (tmp_path / "calls").exists()
    (tmp_path / "have").mkdir()
    (tmp_path / "have" / "meta.json").write_text("{}")
    bash("warp_cache M have")                                # a cache that exists: nothing made
    assert not (tmp_path / "calls").exists()
    bash("warp_cache M new 64")
    assert (tmp_path / "calls").read_text().splitlines() == [
        "-m igr.train.cache --model M --out ./cache-base --sizes 256x192 --n 64 --workers 1",
        "-m igr.train.cache --model M --warp-from ./cache-base --out new --workers 1"]
