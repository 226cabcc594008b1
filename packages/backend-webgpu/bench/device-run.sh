#!/usr/bin/env bash
# The H100 run (device machine, no Node, no node_modules): the whole conformance suite on the
# NVIDIA Vulkan driver, then the speed figures, with and without Dawn's robustness transform.
# Carried from the repo root: .carry/node.xz (Node 24), .carry/webgpu (node bench/bundle.mjs)
# and .gl/*.deb (the Vulkan loader, plus libglvnd's libraries: NVIDIA's Vulkan driver lives in
# libGLX_nvidia.so.0, which needs them). Logs and JSON go to $OUT.
#   bash packages/backend-webgpu/bench/device-run.sh [--sweep]
set -uo pipefail
OUT=${OUT:-/tmp/webgpu-out}
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
xz -dc .carry/node.xz >/tmp/node && chmod +x /tmp/node
W=.carry/webgpu
xz -dc $W/node_modules/webgpu/dist/linux-x64/dawn.node.xz >$W/node_modules/webgpu/dist/linux-x64/dawn.node
NV=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if ! ls /usr/share/vulkan/icd.d/*nvidia* /etc/vulkan/icd.d/*nvidia* >/dev/null 2>&1 && [ -f $NV ]; then
  export VK_DRIVER_FILES=$NV
fi
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-<default search>}"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv | tee "$OUT/gpu.txt"
cd $W
quiet() { grep -v 'artificially reduced'; }
echo "== conformance"
/tmp/node conformance.mjs --json="$OUT/conformance.json" 2>&1 | quiet | tee "$OUT/conformance.log" | tail -25
if grep -q 'no WebGPU adapter' "$OUT/conformance.log"; then
  echo "== no adapter: the Vulkan loader's view"
  VK_LOADER_DEBUG=error,warn,driver /tmp/node conformance.mjs --only=fill 2>&1 | grep -i -E 'driver|icd|error' | head -30
  exit 1
fi
echo "== speed (robustness on)"
/tmp/node speed.mjs "$@" --json="$OUT/speed.json" 2>&1 | quiet | tee "$OUT/speed.log" | tail -14
echo "== speed (robustness off: --dawn=enable-dawn-features=disable_robustness)"
/tmp/node speed.mjs "$@" --dawn=enable-dawn-features=disable_robustness --json="$OUT/speed-norobust.json" 2>&1 | quiet |
  tee "$OUT/speed-norobust.log" | tail -12
