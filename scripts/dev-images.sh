#!/usr/bin/env bash
# Builds the executables (esbuild bundles, the guest agent) and places a guest
# kernel and root filesystem in .dev/data/images for the dev config.
#
# The kernel: where a real Firecracker will run the guest (firecracker on PATH and
# /dev/kvm usable, the daemon's firecracker.binary = "auto" rule), ours from
# guest/kernel/build.sh (built on first use: tens of minutes, cached). fc-sim never
# boots the kernel, so there our cached build is used only if present, else the
# quick-to-fetch Debian cloud kernel (scripts/test-kernel.sh; it cannot boot a
# sandbox: its virtio drivers are modules). VMM_GUEST_KERNEL=build forces ours.
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/build.mjs
if [ -f guest/agent/Makefile ]; then make -s -C guest/agent all; fi
images=.dev/data/images
mkdir -p "$images"
if [ "${VMM_GUEST_KERNEL:-}" = build ] || { command -v firecracker >/dev/null && [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then
  kernel="$(bash guest/kernel/build.sh)"
else
  kernel="$(bash guest/kernel/build.sh --check 2>/dev/null)" || kernel="$(bash scripts/test-kernel.sh)"
fi
if ! cmp -s "$kernel" "$images/vmlinux"; then cp "$kernel" "$images/vmlinux"; fi
# Rebuilt when the agent is newer: fc-sim runs the guest from this image's /sbin/init.
agent=guest/agent/build/vmm-agent
if [ ! -s "$images/rootfs.ext4" ] || { [ -f "$agent" ] && [ "$agent" -nt "$images/rootfs.ext4" ]; }; then
  if [ -x guest/rootfs/build-rootfs.sh ]; then
    bash guest/rootfs/build-rootfs.sh --out .dev/rootfs >&2
    cp .dev/rootfs/rootfs.ext4 "$images/rootfs.ext4"
  else
    truncate -s 64M "$images/rootfs.ext4" && mkfs.ext4 -q -F "$images/rootfs.ext4"
  fi
fi
