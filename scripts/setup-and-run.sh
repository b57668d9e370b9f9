#!/usr/bin/env bash
# Installs what Steadyframe needs on a fresh Debian machine (ffmpeg, npm packages), builds it, and runs
# the main job on bundled data: the conformance check of this build against the reference fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffmpeg >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi
export ONNXRUNTIME_NODE_INSTALL=skip
npm ci --no-audit --no-fund
npm run build
node dist/cli/main.js conformance test/fixtures/golden
