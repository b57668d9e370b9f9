/**
 * `steadyframe controls <video> --out <dir>`: control maps of a video as PNG sequences (plus preview
 * videos) and a metrics.json. The output folder is built as `<out>.tmp-<pid>` and renamed into
 * place only when everything is written; on failure or Ctrl-C it is removed.
 */
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { InvalidArgumentError } from "../../errors.js";
import { DepthEstimator, type DepthNormalization } from "../../control/depth.js";
import { resolveFarneback } from "../../control/flow.js";
import { probeVideo, rationalValue } from "../../video/probe.js";
import { readFrames } from "../../video/read.js";
import { writeVideo } from "../../video/write.js";
import type { CliCommand } from "../command.js";
import { progressBar } from "../progress-bar.js";
import {
  VIDEO_OPTIONS,
  depthPresetOption,
  intOption,
  oneOf,
  parseCanny,
  parseCommandArgs,
  parseSize,
  singleVideoArg,
} from "./cli-options.js";
import { extractControls, type ControlsSettings, type ControlsStats } from "./controls-pipeline.js";

const usage = `Usage: steadyframe controls <video> --out <dir> [options]

Decodes the video (OpenCV-compatible colours), resizes every frame with cv2.INTER_AREA and writes
control maps as PNG sequences (<dir>/<name>/frame_000000.png ...), a preview video of each, and
<dir>/metrics.json. Without --canny, --depth or --flow, Canny 100,200 is computed.

Options:
  --out <dir>              output folder (required; refused if it exists, unless --overwrite)
  --canny <low,high>       Canny edge maps on the gray frame (e.g. 100,200)
  --interpolate <N>        N in-between edge maps per frame pair (canny-interp/, N+1 times the rate)
  --interpolate-mode <m>   blend (default, cv2.addWeighted) or flow (edges moved along the flow)
  --flow                   Farneback flow (flow/, colour-coded) and consistency masks (occlusion/)
  --depth <model.onnx>     depth maps from a monocular depth ONNX model (depth/)
  --depth-preset <p>       depth-anything (default), dpt or midas input conventions
  --depth-normalize <n>    clip (default: one range for the whole clip) or frame
  --size <N|WxH>           control map size (default 512; N means NxN, aspect not kept)
  --frames <N>             only the first N frames
  --preview <fmt>          preview videos: mp4 (default), webm, gif or none
  --overwrite              replace an earlier controls output folder at --out
`;

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

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
    });
    const video = singleVideoArg(positionals, "controls");
    if (values.out === undefined) throw new InvalidArgumentError("--out", "an output folder", undefined);
    const out = values.out.replace(/[/\\]+$/, "");
    const size = parseSize(values.size ?? "512");
    const noControl = values.canny === undefined && values.depth === undefined && !values.flow;
    const canny =
      values.canny !== undefined ? parseCanny(values.canny) : noControl ? parseCanny("100,200") : undefined;
    const interpolate = intOption("--interpolate", values.interpolate, 0) ?? 0;
    if (interpolate > 0 && !canny)
      throw new InvalidArgumentError(
        "--interpolate",
        "--canny as well (it interpolates edge maps)",
        interpolate,
      );
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
    await checkOut(out, values.overwrite);

    const info = await probeVideo(video);
    const fps = rationalValue(info.fps);
    const totalFrames =
      maxFrames === undefined ? info.frameCount : Math.min(maxFrames, info.frameCount ?? maxFrames);
    const estimator =
      values.depth === undefined ? undefined : await DepthEstimator.create(values.depth, { preset });
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
    const tmp = `${out}.tmp-${process.pid}`;
    const onProgress = progressBar(io.stderr, io.interactive);
    await rm(tmp, { recursive: true, force: true });
    try {
      await mkdir(tmp, { recursive: true });
      const stats = await extractControls(settings, tmp, {
        onProgress,
        signal: io.signal,
        ...(totalFrames === undefined ? {} : { totalFrames }),
      });
      if (preview !== "none") {
        for (const s of stats.sequences) {
          const rate = fps * s.rateFactor;
          const frames = readFrames(join(tmp, s.name), { sequenceFps: rate, signal: io.signal });
          await writeVideo(join(tmp, `${s.name}.${preview}`), frames, { fps: rate, signal: io.signal });
        }
      }
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
        `${JSON.stringify(report(settings, stats, extra), null, 2)}\n`,
      );
      await checkOut(out, values.overwrite);
      const old = `${out}.old-${process.pid}`;
      if (await exists(out)) await rename(out, old);
      await rename(tmp, out);
      await rm(old, { recursive: true, force: true });
      io.stdout.write(
        `${stats.frames} frames -> ${out}/ (${stats.sequences.map((s) => s.name).join(", ")}${preview === "none" ? "" : `; previews .${preview}`}, metrics.json)\n`,
      );
      return 0;
    } catch (error) {
      await rm(tmp, { recursive: true, force: true });
      throw error;
    } finally {
      await estimator?.release();
    }
  },
};
