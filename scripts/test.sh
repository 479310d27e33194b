#!/usr/bin/env bash
# Quick start, step 2: provision Node/pnpm, install, and run every test
# (`pnpm test`). Suites that need a real Firecracker run when FIRECRACKER_BIN
# is set and say they were skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/provision.sh
pnpm install --frozen-lockfile --reporter=silent
pnpm test
