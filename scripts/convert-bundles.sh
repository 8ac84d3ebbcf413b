#!/usr/bin/env bash
# Bundles of the shipped students (every variant, each gated), the SDK's default bundle and
# reports/convert.{md,json}. Bundles land in bundles/ (not committed: ~120 MB with every variant);
# the default bundle is copied into igr_edge/bundles/default (committed): the fastest CPU variant and, beside it,
# onnx-mobile-w8 for NNAPI and the Core ML EP (--with), within DEFAULT_MAX_BYTES together.
#
#   scripts/convert-bundles.sh [STUDENT...]      default: student-2 (the default bundle's source)
#   TAG: the students' folders are models/STUDENT-TAG (default small; the next teacher's: zsnr), their evaluations
#   reports/eval[-TAG]/STUDENT.json
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
VARIANTS=onnx-fp32,onnx-int8,onnx-qdq,onnx-w8,onnx-fp16,ort,onnx-mobile,onnx-mobile-w8,ort-mobile,coreml-fp16,coreml-8bit,coreml-6bit
STUDENTS=("${@:-student-2}")
TAG=${TAG:-small}
EVAL=reports/eval$([[ $TAG == small ]] || echo "-$TAG")
for s in "${STUDENTS[@]}"; do
    "$PY" -m convert bundle --model "models/$s-$TAG" --out "bundles/$s" --variants "$VARIANTS" \
        --quality "$EVAL/$s.json" --skip-failing --overwrite
done
# the zero-SNR student carries the aligned prior's UNet and the EfficientNet-Lite0 tower: 16 M parameters, 17.2 MB
# as onnx-w8 (int8 weights), over the 10 MB default; below it would take 4-bit weights or a smaller prior
# The shipped default is the light student (the full-VAE student's onnx-w8 was 17.2 MB and half as fast):
#   python -m convert bundle --model models/student-2-zsnr-light --out bundles/student-2-light \
#       --variants onnx-fp32,onnx-w8,onnx-mobile,onnx-mobile-w8 --quality reports/eval-zsnr/student-2-light.json \
#       --skip-failing
#   DEFAULT=bundles/student-2-light (16.2 MB as onnx-w8, 16.3 MB as onnx-mobile-w8)
# Since then the default is the light student of the warp prior teacher (scripts/warp-students.sh):
#   python -m convert bundle --model models/student-2-warp-light --out bundles/student-2-warp-light \
#       --variants onnx-fp32,onnx-w8,onnx-mobile,onnx-mobile-w8,coreml-fp16 \
#       --quality reports/eval-warp/student-2-light.json --skip-failing
#   DEFAULT=bundles/student-2-warp-light (18.2 MB as onnx-w8, 18.2 MB as onnx-mobile-w8)
"$PY" -m convert default --bundle "${DEFAULT:-bundles/${STUDENTS[0]}}" --with onnx-mobile-w8 \
    --max-bytes "${DEFAULT_MAX_BYTES:-40000000}"
"$PY" -m convert report "${STUDENTS[@]/#/bundles/}" --out reports/convert
