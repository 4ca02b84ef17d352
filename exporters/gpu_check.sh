#!/usr/bin/env bash
# One run on a machine with an NVIDIA GPU: every CUDA path, checked against torch on the CPU, then timed.
#   env.txt      GPU, driver, torch / onnxruntime / tensorrt versions and providers
#   tests.txt    the engine and export tests (the CUDA and TensorRT ones run only here)
#   torch.json   torch on CUDA against torch on the CPU, every test image (score and map differences, AUROCs)
#   export.txt   onnx, onnx-fp16, onnx-int8 (and tensorrt-fp16/-int8 where tensorrt is installed), each verified on
#                the GPU (onnxruntime's CUDA provider; on the CPU where this onnxruntime has none)
#   bench.txt, bench.json   every engine side by side with torch eager, batches 1 and 8
# Results land in OUT (default ./gpu-check). After the GPU check in env.txt, a failing step does not stop the rest.
#
# Usage: exporters/gpu_check.sh CKPT DATA [OUT]
#   CKPT  checkpoint directory (e.g. a 256 px efficientnet-lite0 model)
#   DATA  MVTec-layout folder: its test set verifies, its train/good images calibrate INT8
# Env: PY (default .venv/bin/python, else python3), RUNS (timed runs per engine and batch, default 100)
set -uo pipefail
CKPT=${1:?usage: exporters/gpu_check.sh CKPT DATA [OUT]}
DATA=${2:?usage: exporters/gpu_check.sh CKPT DATA [OUT]}
OUT=${3:-gpu-check}
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
RUNS=${RUNS:-100}
if ! command -v nvidia-smi >/dev/null || ! "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  echo "exporters/gpu_check.sh: needs an NVIDIA GPU that torch ($PY) can use (nvidia-smi and torch.cuda.is_available()); run it on the GPU machine" >&2
  exit 1
fi
mkdir -p "$OUT"

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  "$PY" - <<'PY'
import onnxruntime, torch
assert torch.cuda.is_available(), "torch sees no CUDA GPU"
try:
    import tensorrt
    trt = tensorrt.__version__
except ImportError:
    trt = "not installed (pip install tensorrt: its engines are skipped)"
print("gpu", torch.cuda.get_device_name(), "torch", torch.__version__, "tensorrt", trt,
      "onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())
PY
} 2>&1 | tee "$OUT/env.txt"
[ "${PIPESTATUS[0]}" = 0 ] || exit 1

"$PY" -m pytest -q -rs tests/inspector/test_engines.py tests/exporters 2>&1 | tee "$OUT/tests.txt"

"$PY" - "$CKPT" "$DATA" "$OUT/torch.json" <<'PY' 2>&1 | tail -3
import json, sys
import numpy as np
from exporters.verify import compare
from inspector.engines import open_engine
from model.data import load_dataset

ckpt, data, out = sys.argv[1:]
test = load_dataset(data, require_train=False).test
report = compare(open_engine(ckpt, "cpu"), open_engine(ckpt, "cuda"), [s.path for s in test], np.array([s.is_defect for s in test]), "onnx")
json.dump(report, open(out, "w"), indent=1, default=str)
print("torch cuda against cpu:", {k: report[k] for k in ("images", "score_max_abs", "score_mean_abs", "map_max_abs", "auroc_change", "passed")})
PY

FORMATS=onnx,onnx-fp16,onnx-int8
"$PY" -c "import tensorrt" 2>/dev/null && FORMATS=$FORMATS,tensorrt-fp16,tensorrt-int8
DEVICE=$("$PY" -c "import onnxruntime as o; print('cuda' if 'CUDAExecutionProvider' in o.get_available_providers() else 'cpu')")
"$PY" -m inspector export "$CKPT" --format $FORMATS --out "$OUT/models" --force --calib "$DATA" --verify "$DATA" \
  --device "$DEVICE" 2>&1 | tee "$OUT/export.txt"
echo "export/verify ($FORMATS on $DEVICE) exit code: ${PIPESTATUS[0]}" | tee -a "$OUT/export.txt"

# every engine on this machine (torch eager cpu/cuda, onnxruntime CPU/CUDA/TensorRT EP, TensorRT), batch 1 and 8
"$PY" -m inspector bench "$CKPT" "$DATA" --exports "$OUT/models" --runs "$RUNS" --json > "$OUT/bench.json"
"$PY" -c "import json, sys; from inspector.commands.bench_model import print_table; print_table(json.load(open(sys.argv[1])))" \
  "$OUT/bench.json" | tee "$OUT/bench.txt"
echo "done: $OUT"
