#!/usr/bin/env bash
# The H100 run: wgmma self-test, conformance suite + flash checks + speed vs PyTorch, in one process.
# From the repo root, with .carry/node.xz and the bundle (node device/bundle.mjs [out]) carried:
#   bash packages/backend-cuda/device/run.sh            (bundle in .carry/cuda, kernels from the tree)
#   ATTNKIT_CARRY=.carry/fa bash .carry/fa/run.sh       (bundle, kernels and scripts all from the carry)
set -uo pipefail
cd "${ATTNKIT_REPO_ROOT:-$(dirname "$0")/../../..}"
CARRY="${ATTNKIT_CARRY:-.carry/cuda}"
OUT="${OUT:-/tmp/attnkit-out}"; mkdir -p "$OUT"; export OUT
xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader | tee "$OUT/gpu.txt"
# Where the libraries are on this image (the backend searches these folders itself too).
for lib in libcuda.so.1 libnvrtc.so.13 libcublasLt.so.13; do
  found=$(ldconfig -p | grep -m1 "$lib" | awk '{print $NF}')
  [ -z "$found" ] && found=$(find /usr /opt -name "$lib" -print -quit 2>/dev/null)
  echo "$lib: ${found:-not found}" | tee -a "$OUT/gpu.txt"
done
if [ -d "$CARRY/kernels" ]; then export ATTNKIT_CUDA_KERNELS_DIR="$PWD/$CARRY/kernels"
else export ATTNKIT_CUDA_KERNELS_DIR="$PWD/packages/backend-cuda/kernels"; fi
if [ -f "$CARRY/torch_reference.py" ]; then export ATTNKIT_TORCH_SCRIPT="$PWD/$CARRY/torch_reference.py"
else export ATTNKIT_TORCH_SCRIPT="$PWD/packages/backend-cuda/bench/torch_reference.py"; fi
export ATTNKIT_CUDA_CACHE=/tmp/attnkit-cubins
export PYTHONUNBUFFERED=1
if [ -x "$CARRY/wgmma_selftest" ]; then "$CARRY/wgmma_selftest" 2>&1 | tee "$OUT/selftest.txt"; fi
/tmp/node "$CARRY/runner.mjs" 2>&1 | tee -a "$OUT/stdout.txt"

# Profile the flash kernels once (Nsight Compute): speed of light, warp stalls, occupancy, memory.
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1 || true)
if [ -n "$NCU" ] && [ "${ATTNKIT_SKIP_NCU:-0}" != 1 ]; then
  ATTNKIT_RUNNER_PROFILE=1 timeout "${ATTNKIT_NCU_TIMEOUT:-240}" "$NCU" --target-processes all -k regex:flash_ --launch-skip 6 --launch-count 2 \
    --section SpeedOfLight --section WarpStateStats --section Occupancy --section MemoryWorkloadAnalysis \
    --section ComputeWorkloadAnalysis /tmp/node "$CARRY/runner.mjs" > "$OUT/ncu.txt" 2>&1
  grep -E "flash_|Duration|Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Stall|Issue Slots|Executed Ipc|L2 Hit|Warp Cycles Per Issued" "$OUT/ncu.txt" | head -80
fi
