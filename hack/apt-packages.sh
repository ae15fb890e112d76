#!/usr/bin/env bash
# Debian packages the tests need: Prometheus (+promtool), the distribution registry 2.8,
# htpasswd and openssl; for the real nodes: containerd (+ctr), runc, the CNI plugins, iproute2
# (to remove the nodes' bridge) and gcc with a static libc (the sandbox and helper binaries); for
# the operator image: mmdebstrap (Debian base images from packages), podman (builds the Dockerfile
# without a Docker engine), file, and the aarch64 cross compiler with its static libc (the arm64
# drop-noop). Installs only what is missing, then checks the runtime's release lines against
# hack/versions.env.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v openssl >/dev/null || need+=(openssl)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v ip >/dev/null || need+=(iproute2)
command -v gcc >/dev/null || need+=(gcc)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -f "/usr/lib/$(gcc -dumpmachine 2>/dev/null)/libc.a" ] || need+=(libc6-dev)
command -v file >/dev/null || need+=(file)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
# mmdebstrap verifies Debian's archive with it (present on Debian, not on other distributions).
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
command -v podman >/dev/null || need+=(podman)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.a ] || need+=(libc6-dev-arm64-cross)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> apt-get install ${need[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The real nodes were measured with these release lines; another one fails loudly, not strangely.
expect() {
  local package=$1 series=$2 version
  version=$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null || true)
  case "$version" in
    "$series".*) ;;
    *) echo "hack/apt-packages.sh: $package is '${version:-not installed}', expected the $series line (hack/versions.env)" >&2; exit 1 ;;
  esac
}
expect containerd "$CONTAINERD_SERIES"
expect runc "$RUNC_SERIES"
expect containernetworking-plugins "$CNI_PLUGINS_SERIES"
