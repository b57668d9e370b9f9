#!/usr/bin/env bash
# Installs what Steadyframe needs on a fresh Debian machine: Debian's ffmpeg and the npm packages.
# onnxruntime-node's postinstall would download CUDA libraries: it is skipped (the CPU build ships in
# the package).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi
export ONNXRUNTIME_NODE_INSTALL=skip
npm ci --no-audit --no-fund
