#!/usr/bin/env bash
# One device call: the bench app's paper preset on all three backends (the CPU reference
# alongside CUDA and WebGPU on NVIDIA Vulkan through Dawn), and/or training experiments on CUDA,
# each under a time cap; outputs packed as tarballs under $OUT.
# Carry: .carry/node.xz .carry/bench-bundle .gl   (attnkit-bench bundle; the device README's .gl recipe)
#   bash scripts/device/bench-and-train.sh BENCH_MINUTES TRAIN_SECONDS [EXPERIMENT ...]
#   BENCH_MINUTES 0 skips the bench; TRAIN_SECONDS caps each experiment.
# To go on with a paper run an earlier call stopped, also carry .carry/paper-resume (its paper/
# folder, journal.jsonl inside: the run continues with --resume) and .carry/cubins.tgz (the CUDA
# kernel cache that call left in $OUT, so kernels are not compiled again).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/attnkit-out}"; mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
export PATH=/tmp:$PATH ATTNKIT_CUDA_CACHE=/tmp/attnkit-cubins
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
bench_min="${1:-7}"; train_s="${2:-250}"; shift 2 || true
mkdir -p "$ATTNKIT_CUDA_CACHE"
[ -f .carry/cubins.tgz ] && tar xzf .carry/cubins.tgz -C "$ATTNKIT_CUDA_CACHE"
if [ "$bench_min" != 0 ]; then
  t0=$(date +%s)
  resume=()
  if [ -f .carry/paper-resume/journal.jsonl ]; then
    mkdir -p "$OUT/paper" && cp -r .carry/paper-resume/. "$OUT/paper/" && chmod -R u+w "$OUT/paper"
    resume=(--resume)
  fi
  # Cells start until bench_min; a cell may then run up to --cell-timeout, and the reports follow.
  timeout --kill-after=5 $(( bench_min * 60 + 75 )) .carry/bench-bundle/run.sh run --preset paper \
    --backend cpu,cuda,webgpu --cpu-alongside on --max-minutes "$bench_min" --cell-timeout 60 \
    --cpu-cell-timeout 45 --quiet --out "$OUT/paper" "${resume[@]}" > "$OUT/paper.txt" 2>&1
  echo "=== bench rc=$? in $(( $(date +%s) - t0 ))s"
  tar czf "$OUT/paper.tgz" -C "$OUT" paper 2>/dev/null; rm -rf "$OUT/paper"
  head -n 3 "$OUT/paper.txt"; grep -E "cells:|Wall time|^Wrote|left out|Resuming" "$OUT/paper.txt"
fi
tar czf "$OUT/cubins.tgz" -C "$ATTNKIT_CUDA_CACHE" . 2>/dev/null
for exp in "$@"; do
  t0=$(date +%s)
  timeout --kill-after=5 "$train_s" .carry/bench-bundle/run.sh train --experiment "$exp" --backend cuda \
    --out "$OUT/train-$exp" > "$OUT/train-$exp.txt" 2>&1
  echo "=== train $exp rc=$? in $(( $(date +%s) - t0 ))s"
  tar czf "$OUT/train-$exp.tgz" -C "$OUT" "train-$exp" 2>/dev/null; rm -rf "$OUT/train-$exp"
  grep -E "done in|wrote|Error|error" "$OUT/train-$exp.txt" | tail -n 12
done
