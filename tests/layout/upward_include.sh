#!/usr/bin/env bash
# The layer check must be able to fail: a copy of the tree with one upward include (core
# including the proxy's server) and one relative include must be refused, naming both files.
set -euo pipefail
root=${SOURCE_DIR:?}
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
cp -r "$root"/{core,vault,proxy,sandbox,launcher} "$tree"/
echo '#include "proxy/http/server.hpp"' >>"$tree/core/file.hpp"
echo '#include "../core/file.hpp"' >>"$tree/vault/vault.hpp"
if out=$(bash "$root/scripts/check-layers" "$tree" 2>&1); then
  echo "FAIL: check-layers accepted an upward include" >&2
  exit 1
fi
grep -q 'core/file.hpp includes "proxy/http/server.hpp"' <<<"$out" || { echo "FAIL: upward include not named: $out" >&2; exit 1; }
grep -q 'vault/vault.hpp: includes "../core/file.hpp" by a relative path' <<<"$out" || { echo "FAIL: relative include not named: $out" >&2; exit 1; }
echo "ok: upward and relative includes refused"
