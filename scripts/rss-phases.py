"""Where the SDK's peak memory goes at batch 1: each row in its own process, VmRSS / VmHWM (Linux) after the
imports, after the session loads, after the first restore and after 8 more.

    python scripts/rss-phases.py [--fp32 BUNDLE] [--out reports/bench/rss-phases.md]

Rows: the default bundle through `igr_edge.Restorer` (CPU, 1 thread), the same with glibc's mmap threshold at
64 KiB (MALLOC_MMAP_THRESHOLD_=65536: large freed blocks go back to the system), and the bare ONNX Runtime session
on the default's graph at the optimization levels `all` (ORT's default) and `basic`; with --fp32, the same bare
session on that bundle's onnx-fp32 graph. Memory only: the host may be busy, no time is reported."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = r'''
import json, sys
def mem():
    d = {l.split(":")[0]: int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith(("VmRSS", "VmHWM"))}
    return [round(d["VmRSS"]), round(d["VmHWM"])]
spec = json.loads(sys.argv[1]); out = {}
import numpy as np
if spec["kind"] == "sdk":
    import igr_edge
    out["imports"] = mem()
    r = igr_edge.Restorer(backend="cpu", threads=1)
    person = np.random.default_rng(0).integers(0, 256, (1, 256, 192, 3), dtype=np.uint8)
    call = lambda: r.restore_arrays(person, [0])
else:
    import onnxruntime as ort
    out["imports"] = mem()
    o = ort.SessionOptions(); o.intra_op_num_threads = 1
    o.graph_optimization_level = getattr(ort.GraphOptimizationLevel, spec["level"])
    s = ort.InferenceSession(spec["graph"], o, providers=["CPUExecutionProvider"])
    kinds = {"tensor(uint8)": np.uint8, "tensor(int64)": np.int64}
    feeds = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], kinds.get(i.type, np.float32))
             for i in s.get_inputs()}
    call = lambda: s.run(None, feeds)
out["load"] = mem(); call(); out["first"] = mem()
for _ in range(8): call()
out["after 9"] = mem()
print(json.dumps(out))
'''


def measure(spec: dict, env: dict | None = None) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fp32", type=Path, help="a bundle with an onnx-fp32 variant of the same student")
    p.add_argument("--out", type=Path, default=ROOT / "reports/bench/rss-phases.md")
    args = p.parse_args(argv)
    default = ROOT / "igr_edge/bundles/default"
    manifest = json.loads((default / "manifest.json").read_text())
    w8 = default / manifest["default_variant"] / "student.onnx"
    mmap = {"MALLOC_MMAP_THRESHOLD_": "65536"}
    rows = [(f"Restorer, default bundle ({manifest['default_variant']})", measure({"kind": "sdk"})),
            ("the same, MALLOC_MMAP_THRESHOLD_=65536", measure({"kind": "sdk"}, mmap))]
    graphs = [(manifest["default_variant"], w8)]
    if args.fp32:
        graphs.append(("onnx-fp32", args.fp32 / "onnx-fp32" / "student.onnx"))
    for name, graph in graphs:
        for level in ("ORT_ENABLE_ALL", "ORT_ENABLE_BASIC"):
            for label, env in (("", None), (", MALLOC_MMAP_THRESHOLD_=65536", mmap)):
                rows.append((f"bare session, {name} ({graph.stat().st_size / 1e6:.1f} MB), {level}{label}",
                             measure({"kind": "ort", "graph": str(graph), "level": level}, env)))
    phases = list(rows[0][1])
    lines = ["# Peak memory of a restore at batch 1, by phase", "",
             "VmRSS / VmHWM (peak so far) in MB, each row in its own process, CPU, 1 thread, batch 1 "
             f"(`python scripts/rss-phases.py{' --fp32 ' + str(args.fp32) if args.fp32 else ''}`). "
             "The target is a peak of 200 MB.", "",
             "| row | " + " | ".join(phases) + " |", "|---|" + "---|" * len(phases)]
    for name, r in rows:
        lines.append(f"| {name} | " + " | ".join(f"{r[k][0]} / {r[k][1]}" for k in phases) + " |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
