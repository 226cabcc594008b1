#!/usr/bin/env bash
# One device call for the three mechanism packages' H100 checks and benchmarks: fused CUDA
# kernels against the portable path and the float64 CPU reference, then timings (MoSA vs its
# portable path, a dense layer of equal FLOPs and PyTorch; TPA factor-space decode vs flash
# MHA/GQA and the copy bandwidth; GDN chunked fwd+bwd and laLTE decode memory vs full attention).
# Each part runs under its own time cap so one slow part cannot starve the others.
# Carry: .carry/node.xz .carry/mosa .carry/tpa .carry/lte-bench (see each package's bench/ bundler).
#   bash scripts/device/mechanisms.sh [mosa_s tpa_s lte_s]
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/attnkit-out}"; mkdir -p "$OUT"; export OUT
xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node
export PATH=/tmp:$PATH NODE=/tmp/node
export ATTNKIT_CUDA_KERNELS_DIR="$PWD/packages/backend-cuda/kernels" ATTNKIT_CUDA_CACHE=/tmp/attnkit-cubins
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader | tee "$OUT/gpu.txt"
t_mosa="${1:-200}"; t_tpa="${2:-170}"; t_lte="${3:-170}"

part() { # name seconds command...
  local name=$1 secs=$2; shift 2
  local t0=$(date +%s)
  echo "=== $name (cap ${secs}s)"
  timeout --kill-after=5 "$secs" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "=== $name rc=$rc in $(( $(date +%s) - t0 ))s"
}

mkdir -p "$OUT/mosa"
part mosa "$t_mosa" bash -c "cd .carry/mosa && /tmp/node h100.mjs --backend cuda --out $OUT/mosa && timeout 45 python3 torch_baseline.py --out $OUT/mosa && /tmp/node h100.mjs --report --out $OUT/mosa"
part tpa "$t_tpa" /tmp/node .carry/tpa/h100.mjs --backend cuda --out "$OUT/tpa-bench.json"
part lte "$t_lte" .carry/lte-bench/run.sh --out "$OUT"
for f in mosa tpa lte; do echo "----- $f (tail)"; tail -n 28 "$OUT/$f.txt"; done
