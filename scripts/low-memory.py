"""What `low_memory` trades on this machine: peak memory and latency of the default bundle, normal and low-memory.

    python scripts/low-memory.py [--bundle DIR] [--variant NAME] [--runs 30] [--out reports/bench/low-memory.md]

Peak RSS (VmHWM, Linux): each mode in its own process, `igr_edge.Restorer(backend="cpu", threads=T, low_memory=...)`,
after load and ten restores of a sample photo, at T = 1 and 2. Latency: both Restorers in one process, calls
alternated (normal, low, normal, ...) so that a busy host slows both alike; the ratio of medians is the figure,
not the milliseconds."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHILD = r'''
import json, sys
import numpy as np
import igr_edge
from igr_edge.bench import peak_rss_mb
spec = json.loads(sys.argv[1])
r = igr_edge.Restorer(spec["bundle"], backend="cpu", threads=spec["threads"], variant=spec["variant"],
                      low_memory=spec["low"])
person = np.load(spec["persons"])[:1]
for _ in range(10): r.restore_arrays(person, [0])
print(json.dumps({"peak_rss_mb": peak_rss_mb(), "variant": r.variant}))
'''


def peak(bundle: str | None, variant: str | None, threads: int, low: bool, persons: Path) -> dict:
    spec = {"bundle": bundle, "variant": variant, "threads": threads, "low": low, "persons": str(persons)}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def interleaved(bundle: str | None, variant: str | None, threads: int, persons: np.ndarray, runs: int) -> dict:
    import igr_edge

    pair = {low: igr_edge.Restorer(bundle, backend="cpu", threads=threads, variant=variant, low_memory=low)
            for low in (False, True)}
    times: dict[bool, list[float]] = {False: [], True: []}
    out = {low: r.restore_arrays(persons, [0]) for low, r in pair.items()}
    for _ in range(3):
        for r in pair.values():
            r.restore_arrays(persons, [0])
    for _ in range(runs):
        for low, r in pair.items():
            t = time.perf_counter()
            r.restore_arrays(persons, [0])
            times[low].append(time.perf_counter() - t)
    normal, low = (float(np.median(times[k])) * 1e3 for k in (False, True))
    diff = np.abs(out[False].astype(int) - out[True].astype(int))
    return {"normal_ms": normal, "low_ms": low, "ratio": low / normal, "max_level_diff": int(diff.max()),
            "pixels_differing": float((diff > 0).any(axis=-1).mean())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default=None, help="bundle folder (default: the SDK's default bundle)")
    p.add_argument("--variant", default=None, help="bundle variant (default: the one the cpu backend picks)")
    p.add_argument("--runs", type=int, default=30, help="timed calls per mode (default 30)")
    p.add_argument("--out", type=Path, default=ROOT / "reports/bench/low-memory.md")
    args = p.parse_args(argv)
    import tempfile

    from igr_edge import Bundle
    from igr_edge.images import letterbox, load_image

    width, height = Bundle.load(args.bundle).size
    person = letterbox(load_image(ROOT / "samples/persons/test-00.png"), width, height)[None]
    with tempfile.TemporaryDirectory() as tmp:
        stock = Path(tmp) / "person.npy"
        np.save(stock, person)
        rows = []
        for threads in (1, 2):
            mem = {low: peak(args.bundle, args.variant, threads, low, stock) for low in (False, True)}
            lat = interleaved(args.bundle, args.variant, threads, person, args.runs)
            rows.append({"threads": threads, "variant": mem[False]["variant"],
                         "peak_normal_mb": mem[False]["peak_rss_mb"], "peak_low_mb": mem[True]["peak_rss_mb"], **lat})
    cmd = "python scripts/low-memory.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    lines = ["# `low_memory`: peak memory against latency", "",
             f"`{cmd}`, {time.strftime('%Y-%m-%d')}: the default bundle unless named, CPU, batch 1. Peak RSS: each mode "
             "in its own process after load and ten restores. Latency: the two modes' calls alternated in one process "
             f"({args.runs} each after 4 untimed calls, the first of which gives the garments compared), medians; "
             "read the ratio, the host is shared. The target is a peak of 200 MB.", "",
             "| threads | variant | peak RSS MB, normal | peak RSS MB, low_memory | p50 ms, normal | p50 ms, low_memory "
             "| low / normal | garment: max level difference | pixels differing |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['variant']} | {r['peak_normal_mb']:.0f} | {r['peak_low_mb']:.0f} "
                     f"| {r['normal_ms']:.1f} | {r['low_ms']:.1f} | {r['ratio']:.2f}× | {r['max_level_diff']} "
                     f"| {100 * r['pixels_differing']:.2f}% |")
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
