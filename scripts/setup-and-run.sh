#!/usr/bin/env bash
# Installs what Steadyframe needs (scripts/install.sh), builds it, and runs the main job on a
# bundled clip with the bundled demo model, no download:
#   1. the clip's control maps (Canny, in-between edge maps, optical flow, occlusion masks) and metrics;
#   2. a controlled video of it with the video engine and the demo model (models/steadyframe-demo: a
#      small latent diffusion model + Canny ControlNet that Steadyframe trained itself on four other
#      bundled clips; it never saw this one — docs/demo-model.md), with the best strategy of the study;
#   3. the founding study's experiment: every strategy on the clip, with a side-by-side grid video,
#      a metrics table and a plot.
# The demo model paints at 128x128. With a real model folder, pass MODEL=... CONTROLNET=... SIZE=512
# PROMPT="..." (see docs/models.md); CLIP=... renders another clip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
npm run build
MODEL=${MODEL:-models/steadyframe-demo}
CONTROLNET=${CONTROLNET:-$MODEL/controlnet}
SIZE=${SIZE:-128x128}
CLIP=${CLIP:-data/demo-clips/man-skiing-128.mp4}
PROMPT=${PROMPT:-a man skiing down a snowy slope}
FRAMES=${FRAMES:-12}
STEPS=${STEPS:-15}
NAME=$(basename "$CLIP" .mp4)
node dist/cli/main.js controls "$CLIP" --frames "$FRAMES" \
  --canny 100,200 --interpolate 2 --flow --out "out/$NAME-controls" --overwrite
node dist/cli/main.js metrics "$CLIP" --frames "$FRAMES" --controls "out/$NAME-controls" \
  --out "out/$NAME-metrics.json"
rm -rf "out/$NAME-video.mp4" "out/$NAME-video.mp4.steadyframe-partial"
node dist/cli/main.js video "$CLIP" --model "$MODEL" --controlnet "$CONTROLNET" --control canny \
  --prompt "$PROMPT" --size "$SIZE" --frames "$FRAMES" --steps "$STEPS" --guidance 3 --seed 42 \
  --controls-from source --noise shared --attention first --fusion none --out "out/$NAME-video.mp4"
rm -rf "out/$NAME-study"
node dist/cli/main.js study "$CLIP" --model "$MODEL" --controlnet "$CONTROLNET" \
  --prompt "$PROMPT" --size "$SIZE" --frames "$FRAMES" --steps "$STEPS" --guidance 3 --seed 42 \
  --out "out/$NAME-study"
echo "main job done: out/$NAME-controls/, out/$NAME-metrics.json, out/$NAME-video.mp4 (+ .run.json, .metrics.json), out/$NAME-study/ (grid.mp4, table.md, metrics.csv, metrics.json, plot.svg)"
cat "out/$NAME-study/table.md"
