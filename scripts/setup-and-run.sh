#!/usr/bin/env bash
# Installs what Steadyframe needs (scripts/install.sh), builds it, and runs
# the main job on the bundled sample clip: control maps (Canny, in-between edge maps, optical flow,
# occlusion masks) with consistency metrics, then the metrics of the source clip itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
npm run build
node dist/cli/main.js controls test/fixtures/videos/car-turn-9f.mp4 \
  --canny 100,200 --interpolate 2 --flow --size 256 --out out/car-turn-controls --overwrite
node dist/cli/main.js metrics test/fixtures/videos/car-turn-9f.mp4 --controls out/car-turn-controls \
  --out out/car-turn-metrics.json
