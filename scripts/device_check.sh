#!/usr/bin/env bash
# One prepared run for the GPU machine (device tool): CUDA tests, then `bench profile` on cuda
# with the DeepCTR-Torch peers when the wheels were carried in .whl/. Results land in $OUT.
# Installs nothing from the internet. Usage (from the device tool, carrying .whl if present):
#   bash scripts/device_check.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
export DIEN_CORE_CPP=0  # the C++ loops are CPU-only; do not spend device time compiling them
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:.
else
  export PYTHONPATH=.
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_triton.py tests/test_recurrent.py tests/test_models.py -m "not slow" 2>&1 | tee "$OUT/cuda_tests.log"
# the layers against cuDNN's nn.GRU (Triton and Python loops), then the whole steps
mkdir -p "$OUT/benchmarks"
python3 -m pytest -q -p no:cacheprovider tests/benchmarks --benchmark-only -k cuda --benchmark-max-time 0.5 \
  --benchmark-json "$OUT/benchmarks/cuda.json" 2>&1 | tail -n 30
peers=""
python3 -c "import deepctr_torch" 2>/dev/null && peers="--peers"
python3 -m bench profile --devices cuda --batch-sizes 1024,4096 --seq-lens 10,20,50,100,200 --lengths full \
  --models sum-pooling,din,dien-gru,dien-augru,dien-augru+aux,dien-agru+aux $peers --out "$OUT/profile" 2>&1 | tail -n 20
python3 -m bench profile --devices cuda --batch-sizes 4096 --seq-lens 100 --lengths full --dtype bfloat16 \
  --models din,dien-augru+aux --out "$OUT/profile" 2>&1 | tail -n 5
