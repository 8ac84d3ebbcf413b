"""Which int8 weights cost an `onnx-w8` graph its distance from fp32: each top-level part of the graph's weights
quantized alone (the rest float32), and every part but one, against the fp32 graph on the bundle gate's images.

    .venv/bin/python scripts/w8-sensitivity.py --model models/student-2-warp-light \
        --fp32 bundles/student-2-warp-light/onnx-fp32/student.onnx [--n 16] [--out reports/w8-sensitivity.json]

Prints one row per part: its float32 megabytes, PSNR (dB) of the graph with only that part in int8, and of the
graph with every part but that one in int8."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convert.gates import gate_images, psnr, run, session  # noqa: E402
from convert.onnx_export import W8_MIN_ELEMENTS, quantize_weights_int8  # noqa: E402


def groups(path: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Each weight's part (model.<part>, the exporter's module path; a Linear weight behind a Transpose, which
    `quantize_weights_int8` folds and renames, by its source; one the exporter renamed, by the named weights of
    the nodes before it) -> (name -> part, part -> float32 bytes)."""
    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    source = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Transpose" and n.input[0] in inits}
    part = lambda name: ".".join(name.split(".")[:2]) if name.startswith("model.") else None
    of = {name: part(name) for name in inits} | {out: part(src) for out, src in source.items()}
    current = "(unnamed)"          # weights the exporter renamed (val_N): the part of the nodes around them
    for node in graph.node:        # (nodes come in module order)
        named = [of[i] for i in node.input if of.get(i)]
        current = named[0] if named else current
        for i in node.input:
            if i in of and of[i] is None:
                of[i] = current
    sizes: dict[str, int] = {}
    for name, init in inits.items():
        n = int(np.prod(init.dims)) if init.dims else 1
        if init.data_type == onnx.TensorProto.FLOAT and n >= W8_MIN_ELEMENTS:
            sizes[of[name]] = sizes.get(of[name], 0) + 4 * n
    return of, sizes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--fp32", required=True, type=Path)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--out", type=Path)
    p.add_argument("--within", metavar="PART", help="one row per weight of this part (e.g. model.warpnet) instead")
    p.add_argument("--keep", action="append", default=[], metavar="PART",
                   help="a part left float32 in every row (repeatable): what is left to find with it kept")
    args = p.parse_args(argv)

    from igr.model import IGRModel

    cfg = IGRModel.from_pretrained(args.model).config
    persons, _, noise = gate_images(cfg, args.n)
    names = [i.name for i in session(args.fp32).get_inputs()]
    reference = run(session(args.fp32), names, (persons, noise))[0]
    of, sizes = groups(args.fp32)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        def db(keep) -> float:
            q = quantize_weights_int8(args.fp32, Path(tmp) / "w8.onnx", keep_float=keep)
            return round(psnr(run(session(q), names, (persons, noise))[0], reference, 255.0), 2)

        kept = lambda name: of.get(name, "(unnamed)") in args.keep
        rows["(all int8)"] = {"mb": round(sum(v for k, v in sizes.items() if k not in args.keep) / 1e6, 2),
                              "alone_db": db(kept), "all_but_db": None}
        if args.within:                  # the part's own weights, one by one
            graph = onnx.load(str(args.fp32)).graph
            sizes = {i.name: 4 * int(np.prod(i.dims)) for i in graph.initializer
                     if of.get(i.name) == args.within and int(np.prod(i.dims)) >= W8_MIN_ELEMENTS}
            of = {name: name if name in sizes else part for name, part in of.items()}
        for part in sorted((k for k in sizes if k not in args.keep), key=sizes.get, reverse=True):
            rows[part] = {"mb": round(sizes[part] / 1e6, 2),
                          "alone_db": db(lambda name, part=part: of.get(name, "(unnamed)") != part),
                          "all_but_db": db(lambda name, part=part: of.get(name, "(unnamed)") == part or kept(name))}
            print(f"{part:40s} {rows[part]['mb']:7.2f} MB  alone {rows[part]['alone_db']:6.2f} dB  "
                  f"all but it {rows[part]['all_but_db']:6.2f} dB", flush=True)
    print(f"all int8: {rows['(all int8)']['alone_db']} dB over {args.n} gate images")
    if args.out:
        args.out.write_text(json.dumps({"model": args.model, "fp32": str(args.fp32), "n": args.n, "rows": rows,
                                        "command": "scripts/w8-sensitivity.py " + " ".join(sys.argv[1:])}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
