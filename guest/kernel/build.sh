#!/usr/bin/env bash
# Builds the vmm guest kernel (an uncompressed x86_64 vmlinux for Firecracker) from Debian's
# linux-source-6.1 with guest/kernel/vmm-guest.config merged over x86_64_defconfig, and prints its path.
# Cached under $VMM_TOOLS_DIR/guest-kernel/<source version>-<fragment hash>/: a second call prints the
# path at once. Progress and an estimate go to stderr; only the path goes to stdout.
#
#   bash guest/kernel/build.sh [--check]     --check: print the cached path or exit 3, never build
#
# Needs Debian's linux-source-6.1 and a compiler toolchain; installs them when run as root.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fragment="$here/vmm-guest.config"
tools="${VMM_TOOLS_DIR:-$HOME/.cache/vmm-tools}"
root="$tools/guest-kernel"
tarball=/usr/src/linux-source-6.1.tar.xz
# Bump when the build procedure (not the fragment) changes what comes out.
recipe=1
# Compile steps ("  CC", "  AS", "  AR", "  LD" lines) of a full build of this fragment, measured here;
# used for the progress percentage until a build has recorded its own count.
default_steps=2400

die() { echo "guest-kernel: $*" >&2; exit 1; }
say() { echo "guest-kernel: $*" >&2; }

# Debian packages of the build: the source, and what building it needs.
packages=(linux-source-6.1 make gcc libc6-dev flex bison bc libelf-dev libssl-dev)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
if [ "${1:-}" != "--check" ]; then
  missing=()
  for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing Debian packages; run: apt-get install ${missing[*]}"
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
      die "apt-get install ${missing[*]} failed (apt-get update first?)"
  fi
fi
srcver="$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || true)"
if [ -z "$srcver" ] || [ ! -f "$tarball" ]; then
  [ "${1:-}" = "--check" ] && { say "linux-source-6.1 is not installed, so no kernel is cached for it"; exit 3; }
  die "Debian's kernel source is not installed: run apt-get install linux-source-6.1"
fi
hash="$( (echo "recipe=$recipe"; cat "$fragment") | sha256sum | cut -c1-12)"
key="6.1-$srcver-$hash"
out="$root/$key/vmlinux"

if [ -s "$out" ]; then echo "$out"; exit 0; fi
[ "${1:-}" = "--check" ] && { say "no cached kernel for $key (build it: bash guest/kernel/build.sh)"; exit 3; }

mkdir -p "$root"
# One build at a time (dev-images, start.sh and a test run may all ask); the others wait, then hit the cache.
exec 9>"$root/.lock"
if ! flock -n 9; then
  say "another build is running; waiting for it ($root/.lock)"
  flock 9
fi
if [ -s "$out" ]; then echo "$out"; exit 0; fi

tree="$root/src-$srcver"
if [ ! -f "$tree/Makefile" ]; then
  say "extracting $tarball (about a minute)"
  rm -rf "$tree" "$tree.partial"
  mkdir -p "$tree.partial"
  tar -xJf "$tarball" -C "$tree.partial" --strip-components=1
  mv "$tree.partial" "$tree"
fi

cd "$tree"
log="$root/$key.log"
: >"$log"
say "configuring: x86_64_defconfig + $(basename "$fragment") ($key)"
{
  make x86_64_defconfig
  scripts/kconfig/merge_config.sh -m .config "$fragment"
  make olddefconfig
} >>"$log" 2>&1 || die "configuration failed; see $log"

# merge_config.sh drops an option whose dependencies are unmet without failing: check each one landed.
missing=()
while IFS= read -r line; do
  if [[ "$line" =~ ^(CONFIG_[A-Z0-9_]+)=(.*)$ ]]; then
    grep -qx "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}" .config || missing+=("${BASH_REMATCH[1]}=${BASH_REMATCH[2]}")
  elif [[ "$line" =~ ^#\ (CONFIG_[A-Z0-9_]+)\ is\ not\ set$ ]]; then
    grep -q "^${BASH_REMATCH[1]}=" .config && missing+=("${BASH_REMATCH[1]} unset")
  fi
done <"$fragment"
[ "${#missing[@]}" -eq 0 ] || die "options of $(basename "$fragment") did not survive olddefconfig (unmet dependencies?): ${missing[*]}"

jobs="$(nproc)"
steps_file="$root/steps"
total="$(cat "$steps_file" 2>/dev/null || echo "$default_steps")"
say "building vmlinux with $jobs jobs under nice -n ${VMM_KERNEL_NICE:-5}; log: $log"
say "estimate: ~25 min from scratch on a 2-core host (load $(cut -d' ' -f1 /proc/loadavg)), ~1 min incremental"
start="$(date +%s)"
# Own process group, so that an interrupted build.sh stops the whole make tree.
setsid nice -n "${VMM_KERNEL_NICE:-5}" make -j"$jobs" vmlinux >>"$log" 2>&1 &
make_pid=$!
trap 'kill -- "-$make_pid" 2>/dev/null || true' EXIT
while kill -0 "$make_pid" 2>/dev/null; do
  sleep 30
  done_steps="$(grep -cE '^  (CC|AS|AR|LD)' "$log" || true)"
  elapsed=$(($(date +%s) - start))
  pct=$((done_steps * 100 / total)); [ "$pct" -gt 99 ] && pct=99
  eta=""
  if [ "$done_steps" -gt 50 ] && [ "$done_steps" -lt "$total" ]; then
    eta=", ~$(((total - done_steps) * elapsed / done_steps / 60 + 1)) min left"
  fi
  say "$done_steps/$total steps (~$pct%), $((elapsed / 60))m$((elapsed % 60))s elapsed$eta"
done
wait "$make_pid" || { tail -n 30 "$log" >&2; die "make vmlinux failed; full log: $log"; }
trap - EXIT
elapsed=$(($(date +%s) - start))
steps="$(grep -cE '^  (CC|AS|AR|LD)' "$log" || true)"
# Record a from-scratch step count only (an incremental build compiles a handful).
[ "$steps" -gt 1000 ] && echo "$steps" >"$steps_file"

mkdir -p "$root/$key"
cp .config "$root/$key/config"
cp vmlinux "$out.partial"
mv "$out.partial" "$out"
say "built in $((elapsed / 60))m$((elapsed % 60))s ($steps steps): $out"
echo "$out"
