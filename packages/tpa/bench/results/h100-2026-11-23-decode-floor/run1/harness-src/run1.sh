#!/usr/bin/env bash
# Run 1 on the H100: harness checks + kernel-bound timing of the variants, ncu of batch 1, SASS.
set -uo pipefail
cd "$(dirname "$0")"
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader | tee "$OUT/gpu.txt"
if ! ./h3 none . >/dev/null 2>&1; then echo "rebuilding on the device"; bash build.sh . . > "$OUT/build.txt" 2>&1 || cat "$OUT/build.txt"; fi
( ./h3 check . && ./h3 time . ) > "$OUT/harness.txt" 2>&1; echo "harness rc $?"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu: $NCU"
CUOBJ=$(command -v cuobjdump || ls /usr/local/cuda*/bin/cuobjdump 2>/dev/null | head -1)
for k in k_base k_s2 k_s3; do $CUOBJ -sass $k.cubin > /tmp/$k.sass 2>&1; echo "$k: $(grep -cE '^\s+/\*[0-9a-f]{4}\*/' /tmp/$k.sass) instrs, ATOMS $(grep -c ATOMS /tmp/$k.sass), LDGSTS $(grep -c LDGSTS /tmp/$k.sass), HMMA $(grep -c HMMA /tmp/$k.sass), BAR $(grep -c 'BAR.SYNC' /tmp/$k.sass)"; done | tee "$OUT/sass-summary.txt"
cp /tmp/k_base.sass "$OUT/k_base.sass.txt"
VARIANTS="base s2 s3 s4" timeout 200 "$NCU" --clock-control none --cache-control all -k regex:'tpa_decode|readk' \
  --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats \
  --section MemoryWorkloadAnalysis --section SourceCounters --section SchedulerStats ./h3 prof . > "$OUT/ncu.txt" 2>&1
echo "ncu rc $?"
grep -E "tpa_decode|readk|Duration|SM Frequency|DRAM Throughput|Memory Throughput|Achieved Occupancy|Warp Cycles Per Issued|Registers Per" "$OUT/ncu.txt" | head -150 > "$OUT/ncu-brief.txt"
grep -E "^(check|checks|copy|base)" "$OUT/harness.txt" | tail -40
grep -E "^time|^parts" "$OUT/harness.txt" | awk '{print}' | tail -90
