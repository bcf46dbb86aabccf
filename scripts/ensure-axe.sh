#!/usr/bin/env bash
# The accessibility tests inject axe-core (from the npm registry, pinned) into pages from this file, never
# from a CDN; it lives in .cache/ (git-ignored) and only the tests use it.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.11.0
target=.cache/axe-core-$VERSION/axe.min.js
[ -s "$target" ] && exit 0
if ! command -v npm >/dev/null; then
  echo "npm is missing: the accessibility tests will be skipped (install Node.js and npm to run them)" >&2
  exit 0
fi
mkdir -p .cache
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && npm pack --silent "axe-core@$VERSION" >/dev/null && tar -xzf "axe-core-$VERSION.tgz"); then
  echo "axe-core $VERSION could not be fetched (offline?): the accessibility tests will be skipped" >&2
  exit 0
fi
mkdir -p "$(dirname "$target")"
cp "$work/package/axe.min.js" "$target"
echo "axe-core $VERSION in $target"
