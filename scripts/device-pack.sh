#!/usr/bin/env bash
# Packs the benchmark for a lent GPU machine (the `device` tool, /work/.library/device): that machine
# has no Node.js and no npm registry, and one call carries at most 64 MiB. The pack holds esbuild
# bundles of bench/run.ts and its child processes, this machine's node binary, the Linux x64 files of
# onnxruntime-node (its WebGPU provider included), sharp and OpenCV.js, compressed into one file, and
# Debian's Vulkan loader packages beside it (WebGPU needs them next to the NVIDIA driver).
#
#   bash scripts/device-pack.sh [DIR]        # default DIR: .device-pack (git-ignored)
#
# Then, for one device call (the tracked tree travels too, so leave out what the run does not need,
# and put it back afterwards):
#
#   git sparse-checkout set --no-cone '/*' '!/test/fixtures/' '!/models/' '!/data/' '!/docs/images/'
#   run: command "bash scripts/device-run.sh --only video --video-device webgpu --video-synthetic
#        --video-no-rss --threads 16", carry [".device-pack"], timeout_s 600
#   git sparse-checkout disable
#
# scripts/device-run.sh unpacks the pack, installs the Vulkan packages, runs `node bench/run.mjs` with
# the arguments it was given and writes the JSON report to $OUT/bench.json (and the log to $OUT/log).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.device-pack}
stage="$out/stage"
rm -rf "$stage" "$out/pack.tar.xz"
mkdir -p "$stage/bench" "$stage/node_modules/@img" "$stage/node_modules/@opencvjs" "$out/gl"

# The benchmark and every child it spawns (bench/child.ts runs `<child>.mjs` when it lies beside it).
npx esbuild bench/run.ts bench/*-session.ts --bundle --platform=node --format=esm --target=node20 \
  --outdir="$stage/bench" --out-extension:.js=.mjs --log-level=warning \
  --external:onnxruntime-node --external:sharp --external:@opencvjs/node \
  --banner:js="import { createRequire as __steadyframeRequire } from 'node:module'; const require = __steadyframeRequire(import.meta.url);"

# Native and wasm packages, Linux x64 only.
copy() { cp -r "node_modules/$1" "$stage/node_modules/$1"; }
copy onnxruntime-common
mkdir -p "$stage/node_modules/onnxruntime-node/bin/napi-v6/linux"
cp -r node_modules/onnxruntime-node/{package.json,dist,lib} "$stage/node_modules/onnxruntime-node/"
cp -r node_modules/onnxruntime-node/bin/napi-v6/linux/x64 "$stage/node_modules/onnxruntime-node/bin/napi-v6/linux/"
for p in sharp detect-libc semver @img/colour @img/sharp-linux-x64 @img/sharp-libvips-linux-x64; do copy "$p"; done
mkdir -p "$stage/node_modules/@opencvjs/node"
cp -r node_modules/@opencvjs/node/{package.json,lib} "$stage/node_modules/@opencvjs/node/"
copy @opencvjs/types
cp "$(command -v node)" "$stage/node"

tar -C "$stage" -cf - . | xz -T0 -6 >"$out/pack.tar.xz"
rm -rf "$stage"

# Vulkan loader and GL dispatch (see the device README); skipped when apt cannot reach Debian.
if [ -z "$(ls "$out"/gl/*.deb 2>/dev/null)" ]; then
  (cd "$out/gl" && apt-get download libvulkan1 libglvnd0 libegl1 libopengl0 libgl1 libglx0 libgles2) ||
    echo "device-pack: apt-get download failed; WebGPU will need a Vulkan loader on the device" >&2
fi
du -sh "$out"/pack.tar.xz "$out"/gl
echo "device-pack: $(du -sm "$out" | cut -f1) MiB in $out (a call carries at most 64 MiB with the tree)"
