/**
 * `steadyframe controls <video> --out <dir>`: control maps of a video as PNG sequences (plus preview
 * videos) and a metrics.json. --out is checked before anything is decoded or loaded
 * (cli/output-path.ts); the folder is built under a hidden temporary name beside it and moved into
 * place only when everything is written (util/atomic-write.ts); on failure or Ctrl-C it is removed,
 * and an earlier output replaced with --overwrite is kept until the new one is in place.
 */
import { readFile, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { InvalidArgumentError } from "../../errors.js";
import { DepthEstimator, type DepthNormalization } from "../../control/depth.js";
import { resolveFarneback } from "../../control/flow.js";
import { probeVideo, rationalValue } from "../../video/probe.js";
import { readFrames } from "../../video/read.js";
import { writeVideo } from "../../video/write.js";
import { withAtomicDir } from "../../util/atomic-write.js";
import type { CliCommand } from "../command.js";
import { checkOutputPath } from "../output-path.js";
import { progressBar } from "../progress-bar.js";
import {
  VIDEO_OPTIONS,
  depthPresetOption,
  intOption,
  oneOf,
  parseCanny,
  parseCommandArgs,
  parseSize,
  resolveSize,
  singleVideoArg,
} from "./cli-options.js";
import { extractControls, type ControlsSettings, type ControlsStats } from "./controls-pipeline.js";

const usage = `Usage: steadyframe controls <video> --out <dir> [options]

Decodes the video (OpenCV-compatible colours), resizes every frame with cv2.INTER_AREA and writes
control maps as PNG sequences (<dir>/<name>/frame_000000.png ...), a preview video of each, and
<dir>/metrics.json. Without --canny, --depth or --flow (or with --interpolate and no --canny),
Canny 100,200 is computed.

Options:
  --out <dir>              output folder (required; refused if it exists, unless --overwrite)
  --canny <low,high>       Canny edge maps on the gray frame (default 100,200 when needed)
  --interpolate <N>        N in-between edge maps per frame pair (canny-interp/, N+1 times the rate)
  --interpolate-mode <m>   blend (default, cv2.addWeighted) or flow (edges moved along the flow)
  --flow                   Farneback flow (flow/, colour-coded) and consistency masks (occlusion/)
  --depth <model.onnx>     depth maps from a monocular depth ONNX model (depth/)
  --depth-preset <p>       depth-anything (default), dpt or midas input conventions
  --depth-normalize <n>    clip (default: one range for the whole clip) or frame
  --size <N|WxH>           control map size (default 512): N = short side, aspect ratio kept, both
                           sides rounded to multiples of 8 (854x480 -> 912x512); WxH = exactly
  --frames <N>             only the first N frames
  --preview <fmt>          preview videos: mp4 (default), webm, gif or none
  --overwrite              replace an earlier controls output folder at --out
  --json                   print one JSON object (paths, frames, size, timings) instead of the summary
`;

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

const seconds = (ms: number): number => Math.round(ms) / 1000;

/** Refuses an existing --out unless --overwrite and it is an earlier controls output. */
async function checkOut(out: string, overwrite: boolean): Promise<void> {
  if (!(await exists(out))) return;
  const hint = "choose another --out, or pass --overwrite to replace an earlier controls output";
  if (!overwrite) throw new InvalidArgumentError("--out", "a folder that does not exist yet", out, { hint });
  const text = await readFile(join(out, "metrics.json"), "utf8").catch(() => "");
  if (!text.includes('"steadyframe-controls/1"')) {
    throw new InvalidArgumentError(
      "--out",
      "an earlier controls output (with its metrics.json) to overwrite",
      out,
      {
        hint: "refusing to delete a folder this command did not write; choose another --out",
      },
    );
  }
}

function report(settings: ControlsSettings, stats: ControlsStats, extra: Record<string, unknown>): unknown {
  const mean = (xs: readonly number[]): number | null =>
    xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
  const flicker = stats.meanLuminance.slice(1).map((l, i) => Math.abs(l - (stats.meanLuminance[i] ?? l)));
  return {
    schema: "steadyframe-controls/1",
    ...extra,
    frames: stats.frames,
    size: [settings.width, settings.height],
    decode: "ffmpeg, OpenCV-compatible (BT.601) RGB, then cv2.resize INTER_AREA",
    sequences: stats.sequences.map((s) => ({ dir: `${s.name}/`, rateFactor: s.rateFactor })),
    source: {
      meanLuminance: stats.meanLuminance,
      flickerIndex: mean(flicker),
      ...(settings.flow
        ? { warpError: stats.sourceWarpError, meanWarpError: mean(stats.sourceWarpError) }
        : {}),
    },
    ...(settings.canny
      ? {
          canny: {
            ...settings.canny,
            apertureSize: 3,
            input: "gray (cv2.COLOR_RGB2GRAY)",
            edgePixelFraction: stats.edgePixelFraction,
            meanEdgePixelFraction: mean(stats.edgePixelFraction),
            edgeChangeFraction: stats.edgeChangeFraction,
            meanEdgeChangeFraction: mean(stats.edgeChangeFraction),
          },
        }
      : {}),
    ...(settings.interpolate > 0
      ? { interpolate: { n: settings.interpolate, mode: settings.interpolateMode } }
      : {}),
    ...(settings.flow
      ? {
          flow: {
            farneback: resolveFarneback(),
            consistency: { norm: "squared", alpha: 0.01, beta: 0.5, inBounds: true },
            meanMagnitude: stats.flowMeanMagnitude,
            maxMagnitude: stats.flowMaxMagnitude,
            consistentFraction: stats.consistentFraction,
          },
        }
      : {}),
  };
}

export const controlsCommand: CliCommand = {
  name: "controls",
  summary: "extract control maps (Canny, interpolated edges, flow, occlusion, depth) from a video",
  usage,
  async run(args, io) {
    const started = performance.now();
    const { values, positionals } = parseCommandArgs(args, {
      out: { type: "string" },
      canny: { type: "string" },
      interpolate: { type: "string" },
      "interpolate-mode": { type: "string" },
      flow: { type: "boolean", default: false },
      ...VIDEO_OPTIONS,
      "depth-normalize": { type: "string" },
      preview: { type: "string" },
      overwrite: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    });
    // 1. Every argument, then the output location, then the input: all before any work.
    const video = singleVideoArg(positionals, "controls");
    if (values.out === undefined) throw new InvalidArgumentError("--out", "an output folder", undefined);
    const out = values.out.replace(/[/\\]+$/, "") || values.out;
    const sizeOption = parseSize(values.size ?? "512");
    const interpolate = intOption("--interpolate", values.interpolate, 0) ?? 0;
    const noControl = values.canny === undefined && values.depth === undefined && !values.flow;
    // Edge maps are what --interpolate interpolates, so it implies the default thresholds too.
    const canny =
      values.canny !== undefined
        ? parseCanny(values.canny)
        : noControl || interpolate > 0
          ? parseCanny("100,200")
          : undefined;
    const interpolateMode = oneOf(
      "--interpolate-mode",
      values["interpolate-mode"],
      ["blend", "flow"],
      "blend",
    );
    const preset = depthPresetOption(values["depth-preset"]);
    const normalization = oneOf<DepthNormalization>(
      "--depth-normalize",
      values["depth-normalize"],
      ["clip", "frame"],
      "clip",
    );
    const preview = oneOf("--preview", values.preview, ["mp4", "webm", "gif", "none"], "mp4");
    const maxFrames = intOption("--frames", values.frames, 1);
    await checkOutputPath("--out", out, "folder");
    await checkOut(out, values.overwrite);

    // 2. The video's size and rate, then the depth model (the only model).
    const info = await probeVideo(video);
    const fps = rationalValue(info.fps);
    const size = resolveSize(sizeOption, info.width, info.height);
    const totalFrames =
      maxFrames === undefined ? info.frameCount : Math.min(maxFrames, info.frameCount ?? maxFrames);
    const estimator =
      values.depth === undefined
        ? undefined
        : await DepthEstimator.create(values.depth, { preset, flag: "--depth" });
    const settings: ControlsSettings = {
      video,
      ...size,
      ...(maxFrames === undefined ? {} : { maxFrames }),
      ...(canny ? { canny } : {}),
      flow: values.flow,
      interpolate,
      interpolateMode,
      ...(estimator ? { depth: { estimator, normalization } } : {}),
    };
    const onProgress = progressBar(io.stderr, io.interactive);
    const timings = { controls: 0, previews: 0 };
    try {
      // 3. Everything is written into a temporary folder that replaces --out at the end.
      const stats = await withAtomicDir(
        out,
        async (tmp) => {
          const t0 = performance.now();
          const result = await extractControls(settings, tmp, {
            onProgress,
            signal: io.signal,
            ...(totalFrames === undefined ? {} : { totalFrames }),
          });
          const t1 = performance.now();
          if (preview !== "none") {
            for (const s of result.sequences) {
              const rate = fps * s.rateFactor;
              const frames = readFrames(join(tmp, s.name), { sequenceFps: rate, signal: io.signal });
              await writeVideo(join(tmp, `${s.name}.${preview}`), frames, { fps: rate, signal: io.signal });
            }
          }
          timings.controls = t1 - t0;
          timings.previews = performance.now() - t1;
          const extra = {
            video,
            probe: {
              width: info.width,
              height: info.height,
              fps: info.fps,
              frameCount: info.frameCount,
              colorMatrix: info.colorMatrix,
            },
            ...(values.depth ? { depth: { model: values.depth, preset, normalization } } : {}),
            preview: preview === "none" ? null : preview,
          };
          await writeFile(
            join(tmp, "metrics.json"),
            `${JSON.stringify(report(settings, result, extra), null, 2)}\n`,
          );
          return result;
        },
        {
          durable: false,
          signal: io.signal,
          canReplace: () => checkOut(out, values.overwrite),
        },
      );
      if (values.json) {
        const folder = resolve(out);
        const summary = {
          schema: "steadyframe-controls-run/1",
          video,
          out: folder,
          frames: stats.frames,
          size: [settings.width, settings.height],
          fps,
          sequences: stats.sequences.map((s) => ({
            name: s.name,
            dir: join(folder, s.name),
            fps: fps * s.rateFactor,
            preview: preview === "none" ? null : join(folder, `${s.name}.${preview}`),
          })),
          metrics: join(folder, "metrics.json"),
          timings: {
            controls: seconds(timings.controls),
            previews: seconds(timings.previews),
            total: seconds(performance.now() - started),
          },
        };
        io.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      } else {
        io.stdout.write(
          `${stats.frames} frames -> ${out}/ (${settings.width}x${settings.height}: ${stats.sequences.map((s) => s.name).join(", ")}${preview === "none" ? "" : `; previews .${preview}`}, metrics.json)\n`,
        );
      }
      return 0;
    } finally {
      await estimator?.release();
    }
  },
};
