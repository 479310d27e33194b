#!/usr/bin/env bash
# Quick start, step 1: provision Node/pnpm, install, build what the daemon
# needs (bundles, guest agent, a guest kernel and rootfs for the dev images)
# and run the daemon in the foreground with config.dev.toml. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/provision.sh
pnpm install --frozen-lockfile --reporter=silent
bash scripts/dev-images.sh
exec node packages/vmm-daemon/dist/vmm-daemon.mjs --config config.dev.toml "$@"
