#!/usr/bin/env bash
# Release the public packages (independent versions, Changesets).
#   pnpm changeset            describe a change (per package, patch/minor/major)
#   pnpm changeset version    bump versions + write each package's CHANGELOG.md; commit that
#   bash scripts/release.sh             build, check everything, then a publish dry run
#   bash scripts/release.sh --publish   the same, then publish for real (needs npm auth)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/toolchain.sh

publish=false
[ "${1:-}" = "--publish" ] && publish=true

pnpm install --frozen-lockfile
pnpm run build
pnpm run typecheck
pnpm run lint
pnpm test
node scripts/check-packages.mjs
if [ -n "$(git status --porcelain)" ]; then
  echo "release: the working tree is not clean; commit first" >&2
  $publish && exit 1
fi
pnpm changeset status || true
if $publish; then
  pnpm changeset publish
else
  # What would be uploaded, package by package, without uploading anything.
  pnpm -r --filter './packages/*' publish --dry-run --no-git-checks --access public
fi
