#!/usr/bin/env bash
# The H100 run: conformance suite + flash checks + speed vs PyTorch, in one process.
# From the repo root, with .carry/node.xz and .carry/cuda (node device/bundle.mjs) carried:
#   bash packages/backend-cuda/device/run.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
OUT="${OUT:-/tmp/attnkit-out}"; mkdir -p "$OUT"; export OUT
xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader | tee "$OUT/gpu.txt"
# Where the libraries are on this image (the backend searches these folders itself too).
for lib in libcuda.so.1 libnvrtc.so.13 libcublasLt.so.13; do
  found=$(ldconfig -p | grep -m1 "$lib" | awk '{print $NF}')
  [ -z "$found" ] && found=$(find /usr /opt -name "$lib" -print -quit 2>/dev/null)
  echo "$lib: ${found:-not found}" | tee -a "$OUT/gpu.txt"
done
export ATTNKIT_CUDA_KERNELS_DIR="$PWD/packages/backend-cuda/kernels"
export ATTNKIT_TORCH_SCRIPT="$PWD/packages/backend-cuda/bench/torch_reference.py"
export ATTNKIT_CUDA_CACHE=/tmp/attnkit-cubins
export PYTHONUNBUFFERED=1
/tmp/node .carry/cuda/runner.mjs 2>&1 | tee -a "$OUT/stdout.txt"

# Profile the flash kernels once (Nsight Compute): speed of light, warp stalls, occupancy, memory.
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1 || true)
if [ -n "$NCU" ] && [ "${ATTNKIT_SKIP_NCU:-0}" != 1 ]; then
  ATTNKIT_RUNNER_PROFILE=1 timeout 240 "$NCU" --target-processes all -k regex:flash_ --launch-skip 6 --launch-count 2 \
    --section SpeedOfLight --section WarpStateStats --section Occupancy --section MemoryWorkloadAnalysis \
    --section ComputeWorkloadAnalysis /tmp/node .carry/cuda/runner.mjs > "$OUT/ncu.txt" 2>&1
  grep -E "flash_|Duration|Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Stall|Issue Slots|Executed Ipc|L2 Hit|Warp Cycles Per Issued" "$OUT/ncu.txt" | head -80
fi
