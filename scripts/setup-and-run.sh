#!/usr/bin/env bash
# Installs what Steadyframe needs (scripts/install.sh), builds it, and runs the main job on the
# bundled sample clip (test/fixtures/videos/car-turn-9f.mp4), no download:
#   1. its control maps (Canny, in-between edge maps, optical flow, occlusion masks) and metrics;
#   2. a controlled video of it with the video engine (shared noise, cross-frame attention);
#   3. the founding study's experiment: every strategy on the clip, with a side-by-side grid video,
#      a metrics table and a plot.
# Steps 2 and 3 use the tiny random-weight pipeline of the golden fixtures (64x64, its pictures are
# noise-like): they show the machinery and its measurements, not a pretty video. With a real model
# folder, pass it as MODEL=... CONTROLNET=... SIZE=512 (see docs/models.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
npm run build
MODEL=${MODEL:-test/fixtures/golden/tiny-sd}
CONTROLNET=${CONTROLNET:-test/fixtures/golden/tiny-sd/controlnet}
SIZE=${SIZE:-64x64}
CLIP=test/fixtures/videos/car-turn-9f.mp4
node dist/cli/main.js controls "$CLIP" \
  --canny 100,200 --interpolate 2 --flow --size 256 --out out/car-turn-controls --overwrite
node dist/cli/main.js metrics "$CLIP" --controls out/car-turn-controls \
  --out out/car-turn-metrics.json
rm -rf out/car-turn-video.mp4 out/car-turn-video.mp4.steadyframe-partial
node dist/cli/main.js video "$CLIP" --model "$MODEL" --controlnet "$CONTROLNET" --control canny \
  --prompt "a red sports car driving on a mountain road" --size "$SIZE" --steps 8 --seed 42 \
  --controls-from source --noise shared --attention first --out out/car-turn-video.mp4
rm -rf out/car-turn-study
node dist/cli/main.js study "$CLIP" --model "$MODEL" --controlnet "$CONTROLNET" \
  --prompt "a red sports car driving on a mountain road" --size "$SIZE" --steps 8 --seed 42 \
  --out out/car-turn-study
echo "main job done: out/car-turn-controls/, out/car-turn-metrics.json, out/car-turn-video.mp4 (+ .run.json, .metrics.json), out/car-turn-study/ (grid.mp4, table.md, metrics.csv, metrics.json, plot.svg)"
cat out/car-turn-study/table.md
