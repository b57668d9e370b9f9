#!/usr/bin/env bash
# Installs what the tests need (scripts/install.sh), type-checks, lints, and runs the suite.
# The last line printed is "N passed, N failed" (test/helpers/summary-reporter.ts), repeated after
# vitest's own summary so that it closes the output.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
npm run typecheck
npm run lint
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
npm test 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
echo "${summary:-0 passed, 1 failed}"
exit "$status"
