#!/usr/bin/env bash
# Quick start, step 1: provision Node/pnpm, install, build what the daemon
# needs (bundles, guest agent, a guest kernel and rootfs for the dev images)
# and run the daemon in the foreground with config.dev.toml. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/provision.sh
pnpm install --frozen-lockfile --reporter=silent
bash scripts/dev-images.sh
# The dev config's network "host" side lives in its own namespace (see config.dev.toml).
if [ "$(id -u)" = 0 ] && ! ip netns list 2>/dev/null | grep -qw vmm-dev; then ip netns add vmm-dev; fi
# The daemon's Node options (a larger initial old space: docs/operations.md, "Node options").
mapfile -t node_args < <(node -p 'require("./packages/vmm-daemon/package.json").vmm.nodeArgs.join("\n")')
exec node "${node_args[@]}" packages/vmm-daemon/dist/vmm-daemon.mjs --config config.dev.toml "$@"
