/**
 * `steadyframe metrics <video> [--reference <video>] [--controls <dir>]`: temporal-consistency and
 * control-fidelity numbers of a (generated) video, printed and written as JSON.
 *
 * - warp error (l1, consistency-masked; flow and masks from the reference when there is one, as in
 *   Lai et al. 2018), also of the reference itself as a baseline;
 * - flicker index and per-pixel flicker;
 * - edge F1 against the Canny maps of a `steadyframe controls` folder (same thresholds);
 * - depth fidelity against the reference with --depth <model.onnx>.
 * With --controls and no --reference, the folder's source/ frames are the reference. Frames are
 * decoded OpenCV-compatibly and resized with cv2.INTER_AREA to --size, else the controls' size,
 * else kept.
 */
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";
import { ConfigError, InvalidArgumentError } from "../../errors.js";
import type { Image } from "../../image.js";
import { DepthEstimator } from "../../control/depth.js";
import { pairFlows } from "../../control/flow.js";
import { loadCv } from "../../control/opencv.js";
import { readImageFile } from "../../control/png.js";
import { resizeImageSync } from "../../control/resize.js";
import { clipDepthFidelity } from "../../metrics/depth-fidelity.js";
import { clipEdgeFidelity } from "../../metrics/edge-fidelity.js";
import { flickerIndex, pixelFlicker } from "../../metrics/flicker.js";
import { clipWarpError } from "../../metrics/warp-error.js";
import { readFrames } from "../../video/read.js";
import type { CliCommand } from "../command.js";
import { progressBar } from "../progress-bar.js";
import {
  VIDEO_OPTIONS,
  depthPresetOption,
  intOption,
  parseCommandArgs,
  parseSize,
  singleVideoArg,
} from "./cli-options.js";

const usage = `Usage: steadyframe metrics <video> [--reference <video>] [--controls <dir>] [options]

Prints temporal consistency (warping error, flicker) and control fidelity (edge F1, depth) of a
video and writes them as JSON.

Options:
  --reference <video>    the input video: its flow and masks are used for the warping error
  --controls <dir>       a 'steadyframe controls' folder: edge F1 against its canny/ maps (and its
                         source/ frames as the reference when --reference is not given)
  --size <N|WxH>         compare at this size (default: the controls' size, else the video's)
  --frames <N>           only the first N frames
  --depth <model.onnx>   depth fidelity against the reference with this depth model
  --depth-preset <p>     depth-anything (default), dpt or midas
  --out <file.json>      where to write the JSON (default: <video>.metrics.json next to the video)
`;

interface ControlsInfo {
  readonly size: { width: number; height: number };
  readonly canny: { threshold1: number; threshold2: number } | undefined;
}

async function readControlsInfo(dir: string): Promise<ControlsInfo> {
  const file = join(dir, "metrics.json");
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, "utf8"));
  } catch (cause) {
    throw new ConfigError(file, "(file)", "the metrics.json of a 'steadyframe controls' folder", undefined, {
      cause,
    });
  }
  const record = (v: unknown): Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v) ? Object.fromEntries(Object.entries(v)) : {};
  const root = record(json);
  const size = root["size"];
  const [w, h] = Array.isArray(size) ? size : [];
  if (typeof w !== "number" || typeof h !== "number")
    throw new ConfigError(file, "size", "[width, height]", size);
  const canny = record(root["canny"]);
  const t1 = canny["threshold1"];
  const t2 = canny["threshold2"];
  return {
    size: { width: w, height: h },
    canny: typeof t1 === "number" && typeof t2 === "number" ? { threshold1: t1, threshold2: t2 } : undefined,
  };
}

/** Decodes (OpenCV-compatible colours) and resizes with INTER_AREA, one frame at a time. */
async function loadClip(
  path: string,
  size: { width: number; height: number } | undefined,
  maxFrames: number | undefined,
  signal: AbortSignal,
): Promise<Image[]> {
  const cv = await loadCv();
  const frames: Image[] = [];
  const options = {
    colorMatrix: "opencv",
    signal,
    ...(maxFrames === undefined ? {} : { maxFrames }),
  } as const;
  for await (const frame of readFrames(path, options)) {
    frames.push(size ? resizeImageSync(cv, frame, { ...size, interpolation: "area" }) : frame);
  }
  return frames;
}

async function isDir(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

const round = (x: number): number => Number(x.toPrecision(6));

export const metricsCommand: CliCommand = {
  name: "metrics",
  summary: "temporal consistency and control fidelity of a video (warp error, flicker, edge F1, depth)",
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {
      reference: { type: "string" },
      controls: { type: "string" },
      ...VIDEO_OPTIONS,
      out: { type: "string" },
    });
    const video = singleVideoArg(positionals, "metrics");
    const maxFrames = intOption("--frames", values.frames, 2);
    const preset = depthPresetOption(values["depth-preset"]);
    const controls = values.controls === undefined ? undefined : await readControlsInfo(values.controls);
    const size = values.size !== undefined ? parseSize(values.size) : controls?.size;
    const referencePath =
      values.reference ??
      (values.controls !== undefined && (await isDir(join(values.controls, "source")))
        ? join(values.controls, "source")
        : undefined);
    if (values.depth !== undefined && referencePath === undefined) {
      throw new InvalidArgumentError(
        "--depth",
        "a --reference (or --controls) video to compare depth with",
        values.depth,
      );
    }
    const signal = io.signal;
    const onProgress = progressBar(io.stderr, io.interactive);

    let frames = await loadClip(video, size, maxFrames, signal);
    let reference =
      referencePath === undefined
        ? undefined
        : await loadClip(referencePath, size ?? frames[0], maxFrames, signal);
    const n = Math.min(frames.length, reference?.length ?? frames.length);
    if (n < 2)
      throw new InvalidArgumentError("<video>", "a video with at least 2 frames (also in the reference)", n);
    frames = frames.slice(0, n);
    reference = reference?.slice(0, n);
    const first = frames[0];
    if (!first) throw new InvalidArgumentError("<video>", "at least 2 frames", 0);

    const flows = await pairFlows(reference ?? frames, { backward: true, signal, onProgress });
    const warp = await clipWarpError(frames, { flows, signal, ...(reference ? { reference } : {}) });
    const referenceWarp = reference ? await clipWarpError(reference, { flows, signal }) : undefined;
    const result: Record<string, unknown> = {
      schema: "steadyframe-metrics/1",
      video,
      reference: referencePath ?? null,
      controls: values.controls ?? null,
      frames: n,
      size: [first.width, first.height],
      warpError: {
        definition:
          "l1, consistency-masked (squared test, alpha 0.01, beta 0.5, in bounds), flow of the reference",
        mean: warp.mean,
        pairs: warp.pairs.map((p) => p.error),
        ...(referenceWarp ? { reference: referenceWarp.mean } : {}),
      },
      flickerIndex: {
        video: flickerIndex(frames),
        ...(reference ? { reference: flickerIndex(reference) } : {}),
      },
      pixelFlicker: {
        video: pixelFlicker(frames),
        ...(reference ? { reference: pixelFlicker(reference) } : {}),
      },
    };
    const lines = [
      `${video}: ${n} frames at ${first.width}x${first.height}${referencePath ? `, reference ${referencePath}` : ""}`,
      `  warp error     ${round(warp.mean)}${referenceWarp ? `  (reference ${round(referenceWarp.mean)})` : ""}`,
      `  flicker index  ${round(flickerIndex(frames))}${reference ? `  (reference ${round(flickerIndex(reference))})` : ""}`,
      `  pixel flicker  ${round(pixelFlicker(frames))}${reference ? `  (reference ${round(pixelFlicker(reference))})` : ""}`,
    ];
    if (values.controls !== undefined && controls?.canny) {
      const maps: Image[] = [];
      for (let i = 0; i < n; i++) {
        maps.push(
          await readImageFile(join(values.controls, "canny", `frame_${String(i).padStart(6, "0")}.png`)),
        );
      }
      const edges = await clipEdgeFidelity(frames, maps, { canny: controls.canny });
      result["edgeF1"] = {
        canny: controls.canny,
        tolerance: 2,
        mean: edges.meanF1,
        frames: edges.frames.map((f) => f.f1),
      };
      lines.push(
        `  edge F1        ${round(edges.meanF1)}  (Canny ${controls.canny.threshold1},${controls.canny.threshold2}, 2 px tolerance)`,
      );
    }
    if (values.depth !== undefined && reference) {
      const estimator = await DepthEstimator.create(values.depth, { preset });
      try {
        const depth = await clipDepthFidelity(frames, reference, estimator);
        result["depth"] = {
          model: values.depth,
          preset,
          meanAlignedMse: depth.meanAlignedMse,
          meanPearson: depth.meanPearson,
        };
        lines.push(
          `  depth          pearson ${round(depth.meanPearson)}, aligned MSE ${round(depth.meanAlignedMse)}`,
        );
      } finally {
        await estimator.release();
      }
    }
    const sequence = (await isDir(video)) || /%\d*d/.test(basename(video));
    const stem = sequence
      ? video.replace(/[/\\]+$/, "")
      : join(dirname(video), basename(video, extname(video)));
    const out = values.out ?? `${stem}.metrics.json`;
    const tmp = `${out}.tmp-${process.pid}`;
    try {
      await writeFile(tmp, `${JSON.stringify(result, null, 2)}\n`);
      await rename(tmp, out);
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    }
    io.stdout.write(`${lines.join("\n")}\nwritten: ${out}\n`);
    return 0;
  },
};
