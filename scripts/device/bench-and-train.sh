#!/usr/bin/env bash
# One device call: the bench app's paper preset on CUDA and WebGPU (NVIDIA Vulkan through
# Dawn), then one training experiment on CUDA, each under a time cap; outputs packed as tarballs.
# Carry: .carry/node.xz .carry/bench-bundle .gl   (node apps/bench/dist/cli.js bundle; the device README's .gl recipe)
#   bash scripts/device/bench-and-train.sh [bench_minutes train_seconds experiment]
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/attnkit-out}"; mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
export PATH=/tmp:$PATH ATTNKIT_CUDA_CACHE=/tmp/attnkit-cubins
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
bench_min="${1:-4}"; train_s="${2:-250}"; exp="${3:-mosa-vs-dense}"
t0=$(date +%s)
timeout --kill-after=5 $(( bench_min * 60 + 40 )) .carry/bench-bundle/run.sh run --preset paper --backend cuda,webgpu \
  --max-minutes "$bench_min" --cell-timeout 60 --quiet --out "$OUT/paper" > "$OUT/paper.txt" 2>&1
echo "=== bench rc=$? in $(( $(date +%s) - t0 ))s"; t0=$(date +%s)
timeout --kill-after=5 "$train_s" .carry/bench-bundle/run.sh train --experiment "$exp" --backend cuda --out "$OUT/train" > "$OUT/train.txt" 2>&1
echo "=== train rc=$? in $(( $(date +%s) - t0 ))s"
tar czf "$OUT/paper.tgz" -C "$OUT" paper 2>/dev/null; tar czf "$OUT/train.tgz" -C "$OUT" train 2>/dev/null
rm -rf "$OUT/paper" "$OUT/train"
tail -n 25 "$OUT/paper.txt"; echo -----; tail -n 25 "$OUT/train.txt"
