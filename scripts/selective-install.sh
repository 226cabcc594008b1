#!/usr/bin/env bash
# The selective-install test: pack every public package, then in empty folders outside the
# workspace install only what a user would (plain npm, from the tarballs) and run a short script:
#   core + mosa + backend-webgpu  -> a MoSA forward on WebGPU checked against the CPU
#   core + tpa                    -> TPA prefill/decode on the CPU
#   core + lte + backend-cuda     -> on a machine without CUDA: the clear error, not a crash
# Needs the packages built (pnpm build) and network access to the npm registry (webgpu, koffi).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d "${TMPDIR:-/tmp}/attnkit-selective.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tgz"
for p in core mosa tpa lte backend-webgpu backend-cuda; do
  (cd "packages/$p" && pnpm pack --pack-destination "$work/tgz" >/dev/null)
done
tgz() { ls "$work"/tgz/attnkit-"$1"-[0-9]*.tgz; }

check() { # name script packages...
  local name=$1 script=$2; shift 2
  local dir="$work/$name"; mkdir -p "$dir"; cd "$dir"
  echo '{ "name": "user-project", "private": true, "type": "module" }' > package.json
  local specs=(); for p in "$@"; do specs+=("$(tgz "$p")"); done
  npm install --no-audit --no-fund --loglevel=error "${specs[@]}" >/dev/null
  local installed; installed=$(ls node_modules/@attnkit | tr '\n' ' ')
  echo "[$name] installed: $installed($(du -sh node_modules | cut -f1))"
  cp "$root/scripts/selective-install/$script" .
  set +e; node "$script"; local rc=$?; set -e
  if [ $rc -ne 0 ]; then echo "[$name] FAILED (exit $rc)" >&2; exit 1; fi
  cd "$root"
}

check mosa-webgpu mosa-webgpu.mjs core mosa backend-webgpu
check tpa-cpu tpa-cpu.mjs core tpa
check lte-cuda lte-cuda.mjs core lte backend-cuda
echo "selective installs: all ok"
