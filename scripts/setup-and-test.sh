#!/usr/bin/env bash
# Installs what the tests need (scripts/install.sh), type-checks, lints, and runs the suite.
# The suite's last line is "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
npm run typecheck
npm run lint
npm test
