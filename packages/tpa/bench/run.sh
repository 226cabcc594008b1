#!/usr/bin/env bash
# The TPA H100 run: fused-kernel checks, copy bandwidth, KV-cache table, decode latency at
# 4K / 32K / 128K for batch 1 and 16 against flash MHA / GQA, decode steps, prefill.
# From the repo root, with .carry/node.xz and .carry/tpa (node packages/tpa/bench/bundle.mjs) carried:
#   bash packages/tpa/bench/run.sh [--dtypes float16,float32]
set -uo pipefail
cd "$(dirname "$0")/../../.."
OUT="${OUT:-/tmp/attnkit-out}"; mkdir -p "$OUT"; export OUT
xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader | tee "$OUT/gpu.txt"
export ATTNKIT_CUDA_KERNELS_DIR="$PWD/packages/backend-cuda/kernels"
export ATTNKIT_CUDA_CACHE=/tmp/attnkit-cubins
/tmp/node .carry/tpa/h100.mjs --backend cuda --out "$OUT/tpa-bench.json" "$@" 2>&1 | tee "$OUT/tpa-stdout.txt" | tail -80
