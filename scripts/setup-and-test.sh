#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine (ffmpeg, npm packages), then runs the suite.
# The suite's last line is "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffmpeg >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi
# onnxruntime-node's postinstall downloads CUDA libraries: skip it (the CPU build ships in the package).
export ONNXRUNTIME_NODE_INSTALL=skip
npm ci --no-audit --no-fund
npm run typecheck
npm test
