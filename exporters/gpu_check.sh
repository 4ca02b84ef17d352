#!/usr/bin/env bash
# One run on a machine with an NVIDIA GPU and `tensorrt` installed: build the TensorRT FP16 and INT8
# engines (plus the ONNX float32 reference), verify each against torch, run the TensorRT tests, and
# benchmark every engine side by side with torch eager. Results land in OUT (default ./gpu-check):
#   env.txt, export.txt (verify tables), tests.txt, bench.txt, bench.json
#
# Usage: exporters/gpu_check.sh CKPT DATA [OUT]
#   CKPT  checkpoint directory (e.g. a 256 px efficientnet-lite0 model)
#   DATA  MVTec-layout folder: its test set verifies, its train/good images calibrate INT8
# Env: PY (default .venv/bin/python, else python3), RUNS (timed runs per engine and batch, default 100)
set -euo pipefail
CKPT=${1:?usage: exporters/gpu_check.sh CKPT DATA [OUT]}
DATA=${2:?usage: exporters/gpu_check.sh CKPT DATA [OUT]}
OUT=${3:-gpu-check}
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
RUNS=${RUNS:-100}
mkdir -p "$OUT"

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
  "$PY" - <<'PY'
import onnxruntime, torch
try:
    import tensorrt
except ImportError:
    raise SystemExit("tensorrt is not installed: pip install tensorrt (needs an NVIDIA GPU)")
assert torch.cuda.is_available(), "torch sees no CUDA GPU"
print("gpu", torch.cuda.get_device_name(), "tensorrt", tensorrt.__version__, "torch", torch.__version__,
      "onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())
PY
} 2>&1 | tee "$OUT/env.txt"

# engines + float32 ONNX, each verified against torch (exit 1 past tolerance is reported, not fatal here)
set +e
"$PY" -m inspector export "$CKPT" --format onnx,tensorrt-fp16,tensorrt-int8 --out "$OUT/models" --force \
  --calib "$DATA" --verify "$DATA" 2>&1 | tee "$OUT/export.txt"
echo "export/verify exit code: ${PIPESTATUS[0]}" | tee -a "$OUT/export.txt"
"$PY" -m pytest -q -rs tests/inspector/test_engines.py tests/exporters 2>&1 | tee "$OUT/tests.txt"
set -e

# every engine on this machine (torch eager cpu/cuda, onnxruntime CPU/CUDA/TensorRT EP, TensorRT), batch 1 and 8
"$PY" -m inspector bench "$CKPT" "$DATA" --exports "$OUT/models" --runs "$RUNS" 2>&1 | tee "$OUT/bench.txt"
"$PY" -m inspector bench "$CKPT" "$DATA" --exports "$OUT/models" --runs "$RUNS" --no-rss --json > "$OUT/bench.json"
echo "done: $OUT"
