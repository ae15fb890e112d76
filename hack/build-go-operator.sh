#!/usr/bin/env bash
# Build the Go operator of the same API (corewire/drop) for `benchmarks/compare_bench.py --go-operator`.
#
#   bash hack/build-go-operator.sh SOURCE_DIR [COMMIT]
#
# SOURCE_DIR is a checkout (or an exported tree) of corewire/drop that you obtained yourself; this
# script fetches nothing but Go modules (from the module proxy). COMMIT names the build when
# SOURCE_DIR has no .git (default: its `git rev-parse --short=7 HEAD`). The manager lands in
# $DROP_TOOLS_DIR (default ~/.cache/drop-operator/tools) as drop-go-<commit>/manager, with the
# operator's CRDs beside it in crds/; the path of the manager is printed last.
set -euo pipefail
src=${1:?usage: build-go-operator.sh SOURCE_DIR [COMMIT]}
src=$(cd "$src" && pwd)
commit=${2:-$(git -C "$src" rev-parse --short=7 HEAD 2>/dev/null || true)}
[ -n "$commit" ] || { echo "no git metadata in $src: pass the commit as the second argument" >&2; exit 2; }
[ -f "$src/cmd/main.go" ] && [ -d "$src/config/crd/bases" ] || { echo "$src is not a corewire/drop tree" >&2; exit 2; }
out="${DROP_TOOLS_DIR:-$HOME/.cache/drop-operator/tools}/drop-go-$commit"
if [ ! -x "$out/manager" ]; then
  mkdir -p "$out"
  echo "building the Go operator $commit into $out (module downloads and ~3 min of CPU on 2 cores the first time)" >&2
  (cd "$src" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -o "$out/manager.tmp" ./cmd)
  mv "$out/manager.tmp" "$out/manager"
fi
rm -rf "$out/crds" && mkdir -p "$out/crds" && cp "$src"/config/crd/bases/*.yaml "$out/crds/"
echo "$out/manager"
