#!/usr/bin/env bash
# Build the Go-built tools the tests and the local control plane need, once, into a cache
# outside the repository: ${DROP_TOOLS_DIR:-~/.cache/drop-operator/tools}/<name>-<version>/.
# A tool that is already there is not rebuilt. Versions come from hack/versions.env.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# The Kubernetes commands built from one wrapper module; the kubelet runs the real nodes.
KUBERNETES_COMMANDS="kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet"
cache=${DROP_TOOLS_DIR:-$HOME/.cache/drop-operator/tools}
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
export GOPATH=${GOPATH:-$HOME/go}
work=$cache/.build
mkdir -p "$cache" "$work"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
have() { [ -x "$1" ]; }
elapsed() { printf '%ss' "$(( $(date +%s) - $1 ))"; }

build_kubernetes() {
  local dir=$cache/kubernetes-$KUBERNETES_VERSION
  local cmd missing=0
  for cmd in $KUBERNETES_COMMANDS; do have "$dir/$cmd" || missing=1; done
  [ "$missing" -eq 1 ] || return 0
  local t0; t0=$(date +%s)
  say "kubernetes v$KUBERNETES_VERSION: $KUBERNETES_COMMANDS (cold: ~1 GB of modules, 15-25 min on 2 cores)"
  local K=$KUBERNETES_VERSION V=v0.${KUBERNETES_VERSION#1.} mod=$work/k8s-$KUBERNETES_VERSION
  rm -rf "$mod" && mkdir -p "$mod" && cd "$mod"
  go mod init example.local/k8sbin >/dev/null 2>&1
  go mod edit -require=k8s.io/kubernetes@v$K
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@v$K" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  for m in $(grep -oE '^\s+k8s.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk '{print $1}'); do
    go mod edit "-replace=$m=$m@$V"
  done
  say "  resolving modules"
  local pkgs=()
  for cmd in $KUBERNETES_COMMANDS; do pkgs+=("k8s.io/kubernetes/cmd/$cmd@v$K"); done
  go get "${pkgs[@]}" 2>&1 | tail -n 3 >&2 || true
  local minor=${K#1.}; minor=${minor%%.*}
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$K -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  # Keep what an earlier build left, so adding a command builds only that command.
  mkdir -p "$dir"
  for cmd in $KUBERNETES_COMMANDS; do
    have "$dir/$cmd" && continue
    say "  go build $cmd"
    go build -ldflags "$ld" -o "$dir/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
    mv "$dir/$cmd.tmp" "$dir/$cmd"
  done
  say "kubernetes done in $(elapsed "$t0")"
}

build_etcd() {
  local dir=$cache/etcd-$ETCD_VERSION
  if have "$dir/etcd"; then return; fi
  local t0; t0=$(date +%s)
  say "etcd v$ETCD_VERSION"
  local mod=$work/etcd-$ETCD_VERSION
  rm -rf "$mod" && mkdir -p "$mod" && cd "$mod"
  go mod init example.local/etcdbin >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" 2>&1 | tail -n 3 >&2 || true
  mkdir -p "$dir.tmp"
  go build -ldflags "-s -w" -o "$dir.tmp/etcd" go.etcd.io/etcd/server/v3
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  say "etcd done in $(elapsed "$t0")"
}

# go install for modules without replace directives: name, version, package, binary.
install_simple() {
  local name=$1 version=$2 pkg=$3 bin=$4
  local dir=$cache/$name-$version
  if have "$dir/$bin"; then return; fi
  local t0; t0=$(date +%s)
  say "$name v$version"
  mkdir -p "$dir.tmp"
  GOBIN="$dir.tmp" go install -ldflags "-s -w" "$pkg@v$version"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  say "$name done in $(elapsed "$t0")"
}

only=${1:-all}
case "$only" in
  all)
    build_etcd
    install_simple kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok kwok
    install_simple helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm helm
    install_simple distribution "$DISTRIBUTION_VERSION" github.com/distribution/distribution/v3/cmd/registry registry
    install_simple actionlint "$ACTIONLINT_VERSION" github.com/rhysd/actionlint/cmd/actionlint actionlint
    build_kubernetes
    ;;
  kubernetes) build_kubernetes ;;
  etcd) build_etcd ;;
  kwok) install_simple kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok kwok ;;
  helm) install_simple helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm helm ;;
  distribution) install_simple distribution "$DISTRIBUTION_VERSION" github.com/distribution/distribution/v3/cmd/registry registry ;;
  actionlint) install_simple actionlint "$ACTIONLINT_VERSION" github.com/rhysd/actionlint/cmd/actionlint actionlint ;;
  *) echo "usage: $0 [all|kubernetes|etcd|kwok|helm|distribution|actionlint]" >&2; exit 2 ;;
esac
say "tools ready in $cache"
