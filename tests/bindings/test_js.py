"""bindings/js: the JavaScript binding's own tests (node's test runner: noise vectors, bundle loader, onnxruntime-node
restores of the contract cases, and the demo page in headless Chromium, which skips itself without /usr/bin/chromium).
Needs `cd bindings/js && npm ci` first (`make test` does it)."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "bindings" / "js"
TIMEOUT_S = 900


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_js_binding_passes_its_node_tests():
    if not (JS / "node_modules").is_dir() and shutil.which("npm") is None:
        pytest.skip("npm is not installed, so bindings/js has no node_modules")
    assert (JS / "node_modules" / "onnxruntime-node").is_dir(), \
        "bindings/js has no node_modules: run `cd bindings/js && npm ci` (what `make test` does first)"
    try:
        out = subprocess.run(["node", "--test", "bindings/js/test/"], cwd=ROOT, capture_output=True, text=True,
                             timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        text = [s.decode(errors="replace") if isinstance(s, bytes) else (s or "") for s in (e.stdout, e.stderr)]
        pytest.fail(f"node --test bindings/js/test/ ran past {TIMEOUT_S} s\n{text[0]}\n{text[1]}")
    assert out.returncode == 0, f"node --test bindings/js/test/ exited {out.returncode}\n{out.stdout}\n{out.stderr}"
