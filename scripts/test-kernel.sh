#!/usr/bin/env bash
# Prints the path of an uncompressed ELF guest kernel (vmlinux) that Firecracker
# v1.14 accepts, extracting it from Debian's linux-image-*-cloud-amd64-unsigned
# package on first use. Used by the real-Firecracker test suite and benchmarks:
# the kernel cannot boot here (no nested virtualization), but Firecracker loads
# it, so InstanceStart, pause and snapshots work.
set -euo pipefail
cache="${VMM_TOOLS_DIR:-$HOME/.cache/vmm-tools}/kernel"
out="$cache/vmlinux"
if [ -s "$out" ]; then echo "$out"; exit 0; fi
mkdir -p "$cache"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
pkg="$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$' | awk '{print $1}' | sort -V | tail -1)"
[ -n "$pkg" ] || { echo "test-kernel: no linux-image-6.1.0-*-cloud-amd64-unsigned package (run apt-get update)" >&2; exit 1; }
apt-get download -q "$pkg" >/dev/null
dpkg-deb -x ./*.deb root
vmlinuz="$(ls root/boot/vmlinuz-* | head -1)"
# The bzImage carries an lz4 (legacy frame) payload; find its magic and decompress.
off="$(grep -obUaP '\x02\x21\x4c\x18' "$vmlinuz" | head -1 | cut -d: -f1)"
tail -c +"$((off + 1))" "$vmlinuz" | lz4 -dc > vmlinux 2>/dev/null || true
head -c 4 vmlinux | grep -q 'ELF' || { echo "test-kernel: could not extract an ELF kernel from $vmlinuz" >&2; exit 1; }
mv vmlinux "$out"
echo "$out"
