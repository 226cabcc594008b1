#!/usr/bin/env bash
# Compiles the harness and the kernel variants' cubins (sources from gen.ts) for sm_90a.
set -euo pipefail
cd "$(dirname "$0")"
SRC="${1:-.}"; OUTD="${2:-.}"
for f in "$SRC"/k_*.cu; do
  b=$(basename "$f" .cu)
  nvcc -gencode=arch=compute_90a,code=sm_90a -cubin -Xptxas -v -o "$OUTD/$b.cubin" "$f" 2>&1 | grep -E "Compiling entry|Used|spill" | sed "s/^/$b: /"
done
nvcc -gencode=arch=compute_90a,code=sm_90a -O2 -o "$OUTD/h3" harness.cu
