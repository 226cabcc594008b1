#!/usr/bin/env bash
# The TPA H100 run: fused-kernel checks, copy bandwidth, KV-cache table, decode latency at
# 4K / 32K / 128K for batch 1 and 16 against flash MHA / GQA, decode steps, prefill.
# From the repo root, with .carry/node.xz and .carry/tpa (node packages/tpa/bench/bundle.mjs) carried:
#   bash packages/tpa/bench/run.sh [--dtypes float16,float32]
# The bundle also holds a copy of this script: bash .carry/tpa/run.sh runs that bundle (its own
# folder) and its copy of the CUDA backend's kernels, e.g. a worktree's bundled into .carry/tpa3.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
if [ -f "$HERE/h100.mjs" ]; then
  # A bundle's copy: the repo root is the folder above that holds .carry/node.xz.
  BUNDLE="$HERE"; ROOT="$HERE"
  while [ ! -f "$ROOT/.carry/node.xz" ] && [ "$ROOT" != / ]; do ROOT="$(dirname "$ROOT")"; done
  cd "$ROOT"
else
  cd "$HERE/../../.."; BUNDLE="$PWD/.carry/tpa"
fi
OUT="${OUT:-/tmp/attnkit-out}"; mkdir -p "$OUT"; export OUT
xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader | tee "$OUT/gpu.txt"
if [ -d "$BUNDLE/kernels" ]; then export ATTNKIT_CUDA_KERNELS_DIR="$BUNDLE/kernels"; else export ATTNKIT_CUDA_KERNELS_DIR="$PWD/packages/backend-cuda/kernels"; fi
export ATTNKIT_CUDA_CACHE=/tmp/attnkit-cubins
/tmp/node "$BUNDLE/h100.mjs" --backend cuda --out "$OUT/tpa-bench.json" "$@" 2>&1 | tee "$OUT/tpa-stdout.txt" | tail -80
