"""The SDK's CPU restore latency through two bundles (and any variants), interleaved in one process in a shuffled
order, as ratios to the first: is a new default bundle slower than the one it replaces?

    git archive REV igr_edge/bundles/default | tar -x -C /tmp/old
    .venv/bin/python scripts/default-latency-ab.py /tmp/old/igr_edge/bundles/default igr_edge/bundles/default \
        igr_edge/bundles/default:onnx-mobile-w8 [--rounds 40]

Each argument is BUNDLE or BUNDLE:VARIANT (the variant the SDK would pick by default otherwise); batch 1, one
random person, 3 warm-up restores each."""
import argparse
import random
import statistics
import time

import numpy as np

from igr_edge import Restorer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundles", nargs="+", help="BUNDLE or BUNDLE:VARIANT; the first is the baseline")
    p.add_argument("--rounds", type=int, default=40)
    args = p.parse_args()
    restorers = {}
    for spec in args.bundles:
        folder, _, variant = spec.partition(":")
        restorers[spec] = Restorer(folder, backend="cpu", variant=variant or None)
    person = np.random.default_rng(0).integers(0, 256, (1, 256, 192, 3), dtype=np.uint8)
    for r in restorers.values():
        for _ in range(3):
            r.restore_arrays(person, [0])
    times: dict[str, list[float]] = {k: [] for k in restorers}
    rng = random.Random(0)
    for i in range(args.rounds):
        order = list(restorers.items())
        rng.shuffle(order)
        for k, r in order:
            t = time.perf_counter()
            r.restore_arrays(person, [i])
            times[k].append(time.perf_counter() - t)
    base = statistics.median(times[args.bundles[0]])
    for k, v in times.items():
        print(f"{k} ({restorers[k].variant}): p50 {statistics.median(v) * 1e3:.1f} ms, "
              f"{statistics.median(v) / base:.3f}x the first")


if __name__ == "__main__":
    main()
