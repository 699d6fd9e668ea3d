#!/usr/bin/env bash
# One prepared run for the GPU machine (device tool), most important first, each stage under its
# own time limit (545 s in all, inside one device call's 600 s) so that a slow stage cannot starve the ones after it:
#   1. the CUDA and Triton tests;
#   2. the headline cell: batch 4096, length 100, float32, with DeepCTR-Torch beside it (when its
#      wheel was carried in .whl/), and its breakdown (kernels per step, GPU busy time, operators);
#   3. the layers against cuDNN's nn.GRU (pytest-benchmark);
#   4. bf16 at the headline shape, then the wider sweep (batch 1024 and 4096, T = 10..200, BST among them);
#   5. per-request serving latency on CUDA (CUDA events; batched, shared and shared-cudagraph, with
#      DeepCTR-Torch beside them) at K = 1, 100, 500 for T = 100 and K = 100 for T = 50, 200.
# Results land in $OUT (profile/<gpu>/ accumulates cells over the stages; breakdown/ and
# benchmarks/ each with their metadata.json; the serving folder packed as serving-cuda.tar.gz:
# 8 files, the most that come back). Installs nothing from
# the internet. Usage (from the device tool, carrying .whl if present): bash scripts/device_check.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
export DIEN_CORE_CPP=0  # the C++ loops are CPU-only; do not spend device time compiling them
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT/benchmarks"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:.
else
  export PYTHONPATH=.
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_triton.py tests/test_recurrent.py tests/test_models.py tests/test_serving.py \
  -m "not slow" 2>&1 | tail -n 15  # the tail comes back in the tool's output; $OUT holds at most 8 files
peers=""
python3 -c "import deepctr_torch" 2>/dev/null && peers="--peers"
profile=(python3 -m bench profile --devices cuda --lengths full --out "$OUT/profile")
timeout 120 "${profile[@]}" --batch-sizes 4096 --seq-lens 100 --models din,dien-augru,dien-augru+aux $peers 2>&1 | tail -n 12
timeout 60 python3 -m bench breakdown --device cuda --model dien-augru+aux --batch-size 4096 --seq-len 100 \
  --out "$OUT/breakdown/breakdown.md" 2>&1 | tail -n 3
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/benchmarks --benchmark-only -k cuda --benchmark-max-time 0.3 \
  --benchmark-json "$OUT/benchmarks/cuda.json" 2>&1 | tail -n 30
timeout 45 "${profile[@]}" --batch-sizes 4096 --seq-lens 100 --dtype bfloat16 --models din,dien-augru+aux 2>&1 | tail -n 6
timeout 60 "${profile[@]}" --batch-sizes 1024,4096 --seq-lens 10,50,200 \
  --models sum-pooling,din,bst,dien-gru,dien-augru+aux,dien-agru+aux $peers 2>&1 | tail -n 12
latency=(python3 -m bench latency --device cuda --out /tmp/serving --models din,dien-augru+aux --impls batched,shared,shared-cudagraph
         --requests 500 --warmup 50 --peer-requests 100 $peers)
timeout 100 bash -c "${latency[*]} --candidates 1,100,500 --seq-lens 100 && ${latency[*]} --candidates 100 --seq-lens 50,200" 2>&1 | tail -n 12
tar czf "$OUT/serving-cuda.tar.gz" -C /tmp serving 2>/dev/null  # latency.csv, .md, .png, metadata.json: one file back
# At most 8 files come back: the plots are remade here from timings.csv (bench.profile.report).
rm -f "$OUT"/profile/*/*.png
ls -R "$OUT"
