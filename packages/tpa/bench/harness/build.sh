#!/usr/bin/env bash
# The standalone H100 harness for the TPA tensor-core decode (see harness.cu).
#   bash build.sh gen <outDir>      here: kernel sources (k_*.cu) into outDir; needs node, esbuild, git
#   bash build.sh compile <dir>     cubins (sm_90a) for dir's k_*.cu, and the harness binary dir/h3
# e.g. gen into /work/main/.carry/tpa3/harness, copy harness.cu and build.sh there, compile, carry.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
case "${1:-}" in
gen)
  OUTD="$(mkdir -p "$2" && cd "$2" && pwd)"
  REPO="$(git -C "$HERE" rev-parse --show-toplevel)"
  # The decode as it was before the atomic-free warp merge (main at 2d4741b).
  git -C "$REPO" show 2d4741b:packages/tpa/src/kernels/tpa.cu.ts > "$OUTD/old-tpa.cu.ts"
  "$REPO/node_modules/.pnpm/node_modules/esbuild/bin/esbuild" "$HERE/gen.ts" --bundle --platform=node \
    --format=esm --log-level=warning --outfile="$OUTD/gen.mjs"
  node "$OUTD/gen.mjs" "$OUTD/old-tpa.cu.ts" "$OUTD"
  rm "$OUTD/gen.mjs" "$OUTD/old-tpa.cu.ts"
  ;;
compile)
  cd "$2"
  for f in k_*.cu; do
    b=$(basename "$f" .cu)
    nvcc -gencode=arch=compute_90a,code=sm_90a -cubin -Xptxas -v -o "$b.cubin" "$f" 2>&1 |
      grep -A2 "entry function 'tpa_decode" | grep -E "Used|spill" | sed "s/^/$b: /"
  done
  nvcc -gencode=arch=compute_90a,code=sm_90a -O2 -o h3 harness.cu
  ;;
*) echo "usage: build.sh gen <outDir> | compile <dir>" >&2; exit 2 ;;
esac
