#!/usr/bin/env bash
# Builds the executables (esbuild bundles, the guest agent) and places a guest
# kernel and root filesystem in .dev/data/images for the dev config.
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/build.mjs
if [ -f guest/agent/Makefile ]; then make -s -C guest/agent all; fi
images=.dev/data/images
mkdir -p "$images"
if [ ! -s "$images/vmlinux" ]; then cp "$(bash scripts/test-kernel.sh)" "$images/vmlinux"; fi
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
