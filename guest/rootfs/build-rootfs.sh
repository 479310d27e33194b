#!/usr/bin/env bash
# Builds rootfs.ext4 for vmm guests without mounting anything (mkfs.ext4 -d).
#   build-rootfs.sh [--busybox PATH] [--agent PATH] [--size MiB] [--out DIR] [--debian [SUITE]]
# Defaults: busybox /bin/busybox (Debian busybox-static), agent guest/agent/build/vmm-agent,
# size 64 MiB, out guest/rootfs/out. --debian uses debootstrap (needs network; see README.md).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
busybox=/bin/busybox
agent="$here/../agent/build/vmm-agent"
size=64
out="$here/out"
debian=""

die() { echo "build-rootfs: $*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --busybox) busybox="${2:?--busybox needs a path}"; shift 2 ;;
    --agent) agent="${2:?--agent needs a path}"; shift 2 ;;
    --size) size="${2:?--size needs MiB}"; shift 2 ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --debian) debian="bookworm"; if [[ "${2:-}" != "" && "${2:0:2}" != "--" ]]; then debian="$2"; shift; fi; shift ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ "$size" =~ ^[0-9]+$ && "$size" -ge 8 ]] || die "--size must be a number of MiB >= 8, got '$size'"
[[ -x "$agent" ]] || die "agent binary not found at $agent; run 'make -C guest/agent all' first"
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 not found: install e2fsprogs"

mkdir -p "$out"
staging="$(mktemp -d "${TMPDIR:-/tmp}/vmm-rootfs.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

if [[ -n "$debian" ]]; then
  command -v debootstrap >/dev/null || die "--debian needs debootstrap (apt-get install debootstrap)"
  debootstrap --variant=minbase --include=ca-certificates,iproute2 "$debian" "$staging" \
    https://deb.debian.org/debian || die "debootstrap $debian failed (needs network to deb.debian.org)"
else
  [[ -x "$busybox" ]] || die "busybox not found at $busybox (apt-get install busybox-static, or --busybox PATH)"
  mkdir -p "$staging"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,proc,sys,dev,tmp,run,var/tmp}
  install -m 0755 "$busybox" "$staging/bin/busybox"
  # One symlink per applet, at the path busybox itself lists (it knows bin vs sbin).
  while read -r applet; do
    [[ "$applet" == /sbin/init || "$applet" == /bin/busybox ]] && continue
    mkdir -p "$staging$(dirname "$applet")"
    [[ -e "$staging$applet" ]] || ln -s /bin/busybox "$staging$applet"
  done < <("$busybox" --list-full | sed 's|^|/|')
  cat >"$staging/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
sandbox:x:1000:1000:sandbox:/home/sandbox:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
  cat >"$staging/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
sandbox:x:1000:
nogroup:x:65534:
GROUP
fi

install -m 0755 "$agent" "$staging/sbin/vmm-agent"
rm -f "$staging/sbin/init"
ln -s vmm-agent "$staging/sbin/init"
grep -q '^sandbox:' "$staging/etc/passwd" || echo 'sandbox:x:1000:1000:sandbox:/home/sandbox:/bin/sh' >>"$staging/etc/passwd"
grep -q '^sandbox:' "$staging/etc/group" || echo 'sandbox:x:1000:' >>"$staging/etc/group"
mkdir -p "$staging/home/sandbox"
chown 1000:1000 "$staging/home/sandbox"
chmod 1777 "$staging/tmp" "$staging/var/tmp"
echo sandbox >"$staging/etc/hostname"
printf 'nameserver 1.1.1.1\nnameserver 8.8.8.8\n' >"$staging/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tsandbox\n' >"$staging/etc/hosts"

img="$out/rootfs.ext4"
rm -f "$img"
mkfs.ext4 -q -F -L vmm-rootfs -E root_owner=0:0 -d "$staging" "$img" "${size}M" \
  || die "mkfs.ext4 failed (image too small? try --size $((size * 2)))"
echo "rootfs: $img (${size} MiB, agent $(stat -c %s "$agent") bytes at /sbin/vmm-agent, /sbin/init -> vmm-agent)"
