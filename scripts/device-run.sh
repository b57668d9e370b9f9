#!/usr/bin/env bash
# Runs the packed benchmark (scripts/device-pack.sh) on a lent GPU machine: unpacks .device-pack,
# installs its Vulkan packages (as root, there), and runs `node bench/run.mjs "$@"`. The report goes
# to $OUT/bench.json and the log to $OUT/log (both come back from the device call).
#
# Locally, to check a pack on the CPU: OUT=/tmp/x bash scripts/device-run.sh --only video
#   --video-model sd15 --video-synthetic --video-no-rss ...  (DEVICE_RUN_NO_GL=1 skips the packages)
set -euo pipefail
cd "$(dirname "$0")/.."
pack=$PWD/.device-pack
: "${OUT:?OUT must name the folder for the report}"
mkdir -p "$OUT"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
xz -dc "$pack/pack.tar.xz" | tar -C "$root" -xf -
if [ -z "${DEVICE_RUN_NO_GL:-}" ]; then
  for f in "$pack"/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; fi
fi
cd "$root"
set -o pipefail
"$root/node" bench/run.mjs "$@" --out "$OUT/bench.json" 2>&1 | tee "$OUT/log"
