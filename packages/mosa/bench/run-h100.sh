#!/usr/bin/env bash
# The H100 call, from the bundle (bench/bundle.sh): bash .carry/mosa/run.sh, carrying
# .carry/node.xz and the bundle folder. PyTorch before and after the attnkit part (its run-to-run
# spread), the table, the profile, then Nsight Compute on the T = 8192 attention kernels
# (skipped with NCU=0). Eight files land in $OUT (the device tool returns no more). PROFILE=0: no
# --profile rows; DTYPE=bfloat16 (or float16): both sides in that dtype.
set -u
profile=$([ "${PROFILE:-1}" = 0 ] || echo --profile)
dtype="--dtype ${DTYPE:-float32}"
here="$(cd "$(dirname "$0")" && pwd)"
xz -dc "$here/../node.xz" >/tmp/node && chmod +x /tmp/node
cd "$here"
export ATTNKIT_CUDA_KERNELS_DIR="$here/kernels"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv 2>&1
/tmp/node h100.mjs --cases-only --out "$OUT" $dtype
python3 torch_baseline.py --out "$OUT" >"$OUT/torch-log.txt" 2>&1 && mv "$OUT/torch.json" "$OUT/torch-first.json"
/tmp/node h100.mjs --backend cuda --out "$OUT" $dtype $profile >"$OUT/attnkit-log.txt" 2>&1
echo "attnkit rc $?"
python3 torch_baseline.py --out "$OUT" >>"$OUT/torch-log.txt" 2>&1
echo "torch rc $?"
rm -f "$OUT/cases.json" "$OUT/torch-check.safetensors"
/tmp/node h100.mjs --report --out "$OUT" | tee "$OUT/report.txt"
grep '^profile\|failed' "$OUT/attnkit-log.txt"
# SASS instruction mix of the loops with HMMA (bundle.sh's cubins), where cuobjdump exists.
cuobjdump=$(command -v cuobjdump || ls /usr/local/cuda*/bin/cuobjdump 2>/dev/null | head -1 || true)
if [ -d "$here/sass" ] && [ -n "$cuobjdump" ]; then
  for c in "$here"/sass/mosa64-*.cubin; do "$cuobjdump" -sass "$c" >"/tmp/$(basename "$c" .cubin).sass"; done
  python3 "$here/sass/sass_loops.py" /tmp/mosa64-*.sass >"$OUT/sass-log.txt" 2>&1
  grep -E 'mosa_attend(_part)?:' "$OUT/sass-log.txt" | head -12
fi
if [ "${NCU:-1}" != 0 ]; then
  ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1 || true)
  if [ -n "$ncu" ]; then
    timeout "${NCU_TIMEOUT:-90}" "$ncu" --target-processes all -k regex:mosa_attend -c 8 \
      --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
      --section SchedulerStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
      /tmp/node h100.mjs --ncu >"$OUT/ncu-log.txt" 2>&1
    echo "ncu rc $?"
    grep -E '^  [a-z_]+|Duration|Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Theoretical Occupancy|Warp Cycles Per Issued|Issue Slots Busy|Registers Per|Block Limit' "$OUT/ncu-log.txt" | head -100
  fi
fi
