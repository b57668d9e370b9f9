#!/usr/bin/env bash
# Installs what Steadyframe needs on a fresh Debian machine: Debian's ffmpeg and redis-server, and the
# npm packages.
# onnxruntime-node's postinstall would download CUDA libraries: it is skipped (the CPU build ships in
# the package).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi
# Redis for the render farm (steadyframe worker / video --queue); the tests start their own
# redis-server on a free localhost port, so no service is configured here.
if ! command -v redis-server >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null
fi
# Chromium for the studio's browser tests (driven by playwright-core at /usr/bin/chromium; no browser
# download).
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export ONNXRUNTIME_NODE_INSTALL=skip
npm ci --no-audit --no-fund
