#!/usr/bin/env bash
# Bundles the MoSA H100 bench into .carry/mosa (git-ignored; MOSA_CARRY_DIR=<dir> writes elsewhere,
# e.g. the main checkout's /work/main/.carry/mosa from a worktree) for the device machine: h100.mjs (core +
# backend-cuda + mosa, koffi external), koffi with its linux-x64 binary, backend-cuda's .cu
# kernels (point ATTNKIT_CUDA_KERNELS_DIR at <dir>/kernels), the PyTorch baseline and run.sh (the
# whole H100 call: bash <dir>/run.sh, with node.xz beside <dir>). Run from
# anywhere; builds core and backend-cuda first.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$root"
export PATH=/opt/node24/package/bin:/opt/pnpm1242/bin:$PATH
pnpm --filter @attnkit/core build >/dev/null
pnpm --filter @attnkit/backend-cuda build >/dev/null
esbuild="$(ls -d node_modules/.pnpm/esbuild@*/node_modules/esbuild/bin/esbuild | head -1)"
out="${MOSA_CARRY_DIR:-.carry/mosa}"
rm -rf "$out"
mkdir -p "$out/node_modules/@koromix"
"$esbuild" packages/mosa/bench/h100.ts --bundle --platform=node --format=esm --target=node22 \
  --outfile="$out/h100.mjs" --external:koffi --external:webgpu --external:@attnkit/backend-webgpu --log-level=warning
cp -rL "$(ls -d node_modules/.pnpm/koffi@*/node_modules/koffi | head -1)" "$out/node_modules/koffi"
cp -rL "$(ls -d node_modules/.pnpm/@koromix+koffi-linux-x64@*/node_modules/@koromix/koffi-linux-x64 | head -1)" \
  "$out/node_modules/@koromix/koffi-linux-x64"
cp packages/mosa/bench/torch_baseline.py packages/mosa/bench/trace_sum.py "$out/"
cp packages/mosa/bench/run-h100.sh "$out/run.sh"
cp -r packages/backend-cuda/kernels "$out/kernels"
# SASS of the GEMM/attention loops of the sources.ts variants (D = 64), where nvcc is here.
if command -v nvcc >/dev/null; then
  mkdir -p "$out/sass"
  "$esbuild" packages/mosa/bench/sources.ts --bundle --platform=node --format=esm --outfile="$out/sass/sources.mjs" --log-level=warning
  node "$out/sass/sources.mjs" "$out/sass" && rm "$out/sass/sources.mjs"
  # ptxas's registers and spills of each variant's kernels beside the cubins (ptxas.txt).
  for src in "$out"/sass/mosa64-*.cu; do
    v="$(basename "$src" .cu)"
    echo "== $v" >>"$out/sass/ptxas.txt"
    nvcc -gencode=arch=compute_90a,code=sm_90a -cubin -Xptxas -v -o "$out/sass/$v.cubin" "$src" 2>>"$out/sass/ptxas.txt"
    rm "$src"
  done
  cp packages/mosa/bench/sass_loops.py "$out/sass/"
fi
du -sh "$out"
