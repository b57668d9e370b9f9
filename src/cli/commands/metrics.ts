/**
 * `steadyframe metrics <video> [--reference <video>] [--controls <dir>]`: temporal-consistency and
 * control-fidelity numbers of a (generated) video, printed and written as JSON.
 *
 * - warp error (l1, consistency-masked; flow and masks from the reference when there is one, as in
 *   Lai et al. 2018), also of the reference itself as a baseline;
 * - flicker index and per-pixel flicker;
 * - edge F1 against the Canny maps of a `steadyframe controls` folder (same thresholds);
 * - depth fidelity against the reference with --depth <model.onnx>;
 * - CLIP-F (consecutive-frame) and, with --prompt, CLIP-T (frame-prompt) cosines with --clip <CLIPModel
 *   folder> (src/metrics/clip-score.ts), on the compared frames.
 * With --controls and no --reference, the folder's source/ frames are the reference. Frames are
 * decoded OpenCV-compatibly and resized with cv2.INTER_AREA to --size, else the controls' size,
 * else kept.
 *
 * The JSON goes to --out, by default `<video name>.metrics.json` in the current folder (never beside
 * the input, which may be read-only or shared); --out is checked before any frame is decoded. A
 * video and a reference of different lengths or frame rates are refused unless --align says how to
 * pair their frames; the pairing is then printed as a warning and recorded in the JSON.
 */
import { readFile, stat } from "node:fs/promises";
import { basename, extname, join, resolve } from "node:path";
import { ConfigError, CorruptFileError, FileNotFoundError, InvalidArgumentError } from "../../errors.js";
import type { Image } from "../../image.js";
import { DepthEstimator } from "../../control/depth.js";
import { pairFlows } from "../../control/flow.js";
import { loadCv } from "../../control/opencv.js";
import { readImageFile } from "../../control/png.js";
import { resizeImageSync } from "../../control/resize.js";
import { ClipScorer } from "../../metrics/clip-score.js";
import { clipDepthFidelity } from "../../metrics/depth-fidelity.js";
import { clipEdgeFidelity } from "../../metrics/edge-fidelity.js";
import { flickerIndex, pixelFlicker } from "../../metrics/flicker.js";
import { clipWarpError } from "../../metrics/warp-error.js";
import { writeFileAtomic } from "../../util/atomic-write.js";
import { probeVideo, rationalValue } from "../../video/probe.js";
import { readFrames } from "../../video/read.js";
import type { CliCommand } from "../command.js";
import { checkOutputPath } from "../output-path.js";
import { progressBar } from "../progress-bar.js";
import {
  VIDEO_OPTIONS,
  type SizeOption,
  depthPresetOption,
  intOption,
  oneOf,
  parseCommandArgs,
  parseSize,
  resolveSize,
  singleVideoArg,
} from "./cli-options.js";

const usage = `Usage: steadyframe metrics <video> [--reference <video>] [--controls <dir>] [options]

Prints temporal consistency (warping error, flicker) and control fidelity (edge F1, depth) of a
video and writes them as JSON.

Options:
  --reference <video>    the input video: its flow and masks are used for the warping error
  --controls <dir>       a 'steadyframe controls' folder: edge F1 against its canny/ maps (and its
                         source/ frames as the reference when --reference is not given)
  --size <N|WxH>         compare at this size: N = short side, aspect ratio kept (multiples of 8);
                         WxH = exactly (default: the controls' size, else the video's)
  --frames <N>           only the first N frames (of the video and of the reference)
  --align <mode>         pair frames of clips with different lengths or frame rates (refused
                         otherwise): index (frame i with frame i, up to the shorter clip) or time
                         (each video frame with the reference frame nearest in time)
  --depth <model.onnx>   depth fidelity against the reference with this depth model
  --depth-preset <p>     depth-anything (default), dpt or midas
  --clip <dir>           CLIP-F (mean cosine of consecutive frames' image embeddings) with this
                         CLIPModel folder (e.g. openai/clip-vit-large-patch14: config.json,
                         model.safetensors, tokenizer files)
  --prompt <text>        with --clip: also CLIP-T (mean cosine of each frame with the prompt)
  --out <file.json>      where to write the JSON (default: <video name>.metrics.json in the
                         current folder)
`;

interface ControlsInfo {
  readonly dir: string;
  readonly size: { width: number; height: number };
  readonly frames: number | undefined;
  /** The frame rate of the video the controls were made from. */
  readonly fps: number | undefined;
  readonly canny: { threshold1: number; threshold2: number } | undefined;
}

const CONTROLS_HINT =
  "--controls expects the output folder of 'steadyframe controls' (metrics.json, source/, canny/)";

async function readControlsInfo(dir: string): Promise<ControlsInfo> {
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory()) {
    throw new FileNotFoundError(dir, info ? "--controls folder (this is a file)" : "--controls folder", {
      hint: CONTROLS_HINT,
    });
  }
  const file = join(dir, "metrics.json");
  const text = await readFile(file, "utf8").catch(() => null);
  if (text === null) throw new FileNotFoundError(file, "--controls metrics.json", { hint: CONTROLS_HINT });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new CorruptFileError(file, "not valid JSON", undefined, { cause, hint: CONTROLS_HINT });
  }
  const record = (v: unknown): Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v) ? Object.fromEntries(Object.entries(v)) : {};
  const root = record(json);
  const size = root["size"];
  const [w, h] = Array.isArray(size) ? size : [];
  if (typeof w !== "number" || typeof h !== "number")
    throw new ConfigError(file, "size", "[width, height]", size, { hint: CONTROLS_HINT });
  const canny = record(root["canny"]);
  const t1 = canny["threshold1"];
  const t2 = canny["threshold2"];
  const frames = root["frames"];
  const fps = record(record(root["probe"])["fps"]);
  const [num, den] = [fps["num"], fps["den"]];
  return {
    dir,
    size: { width: w, height: h },
    frames: typeof frames === "number" ? frames : undefined,
    fps: typeof num === "number" && typeof den === "number" && den > 0 ? num / den : undefined,
    canny: typeof t1 === "number" && typeof t2 === "number" ? { threshold1: t1, threshold2: t2 } : undefined,
  };
}

/** Decodes (OpenCV-compatible colours) and resizes with INTER_AREA, one frame at a time. */
async function loadClip(
  path: string,
  size: SizeOption | undefined,
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
  let target: { width: number; height: number } | undefined;
  for await (const frame of readFrames(path, options)) {
    if (size) target ??= resolveSize(size, frame.width, frame.height);
    const same = !target || (target.width === frame.width && target.height === frame.height);
    frames.push(same || !target ? frame : resizeImageSync(cv, frame, { ...target, interpolation: "area" }));
  }
  return frames;
}

/** The real frame rate of a clip: a video file's; a PNG folder has none (except a controls source/). */
async function clipRate(path: string, controls: ControlsInfo | undefined): Promise<number | undefined> {
  if (controls && resolve(path) === resolve(controls.dir, "source")) return controls.fps;
  const info = await probeVideo(path);
  return info.kind === "file" ? rationalValue(info.fps) : undefined;
}

async function isDir(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** `<video name>.metrics.json` in the current folder. */
export function defaultMetricsOut(video: string, cwd = process.cwd()): string {
  const trimmed = video.replace(/[/\\]+$/, "");
  const sequence = /%\d*d/.test(basename(trimmed));
  const name = sequence ? basename(resolve(trimmed, "..")) : basename(trimmed, extname(trimmed));
  return join(cwd, `${name || "video"}.metrics.json`);
}

type Align = "index" | "time";

interface Pairing {
  /** Reference frame index for each compared video frame (video frames 0..n-1). */
  readonly referenceIndex: readonly number[];
  readonly note: string | undefined;
}

/** Pairs video frames with reference frames; refuses a mismatch unless `align` says how. */
function pairFrames(
  videoFrames: number,
  referenceFrames: number,
  videoFps: number | undefined,
  referenceFps: number | undefined,
  align: Align | undefined,
): Pairing {
  const rate = (f: number | undefined): string => (f === undefined ? "an unknown rate" : `${round(f)} fps`);
  const describe = `the video has ${videoFrames} frames at ${rate(videoFps)}, the reference ${referenceFrames} at ${rate(referenceFps)}`;
  const ratesDiffer =
    videoFps !== undefined && referenceFps !== undefined && Math.abs(videoFps - referenceFps) > 1e-3;
  if (align === undefined) {
    if (videoFrames !== referenceFrames || ratesDiffer) {
      throw new InvalidArgumentError(
        "--reference",
        "a clip with the video's length and frame rate",
        `${videoFrames} vs ${referenceFrames} frames`,
        {
          hint: `${describe}; pass --align index (frame i with frame i, up to the shorter clip) or --align time (nearest in time), or --frames N to compare the first N frames of both`,
        },
      );
    }
    return { referenceIndex: Array.from({ length: videoFrames }, (_, i) => i), note: undefined };
  }
  if (align === "index") {
    const n = Math.min(videoFrames, referenceFrames);
    const ignored = `${videoFrames - n} video and ${referenceFrames - n} reference frames left out`;
    const apart =
      ratesDiffer && videoFps !== undefined && referenceFps !== undefined
        ? `; pairs drift apart in time by up to ${round(Math.abs((n - 1) / videoFps - (n - 1) / referenceFps))} s`
        : "";
    return {
      referenceIndex: Array.from({ length: n }, (_, i) => i),
      note: `--align index: compared frame i of the video with frame i of the reference for i < ${n} (${describe}; ${ignored}${apart})`,
    };
  }
  if (videoFps === undefined || referenceFps === undefined) {
    throw new InvalidArgumentError(
      "--align",
      "index when a clip is a PNG folder (it has no frame rate)",
      "time",
      {
        hint: describe,
      },
    );
  }
  const referenceIndex: number[] = [];
  for (let i = 0; i < videoFrames; i++) {
    const j = Math.round((i / videoFps) * referenceFps);
    if (j >= referenceFrames) break;
    referenceIndex.push(j);
  }
  return {
    referenceIndex,
    note: `--align time: compared each of the first ${referenceIndex.length} video frames with the reference frame nearest in time (frame i at i/${round(videoFps)} s with frame round(i*${round(referenceFps)}/${round(videoFps)})); ${describe}`,
  };
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
      align: { type: "string" },
      clip: { type: "string" },
      prompt: { type: "string" },
      out: { type: "string" },
    });
    // 1. Arguments, the output location and the input folders/files: all before any decoding.
    const video = singleVideoArg(positionals, "metrics");
    const maxFrames = intOption("--frames", values.frames, 2);
    const preset = depthPresetOption(values["depth-preset"]);
    const align =
      values.align === undefined
        ? undefined
        : oneOf<Align>("--align", values.align, ["index", "time"], "index");
    const sizeOption = values.size !== undefined ? parseSize(values.size) : undefined;
    const out = values.out ?? defaultMetricsOut(video);
    await checkOutputPath("--out", out, "file");
    const controls = values.controls === undefined ? undefined : await readControlsInfo(values.controls);
    const size = sizeOption ?? controls?.size;
    const referencePath =
      values.reference ??
      (controls !== undefined && (await isDir(join(controls.dir, "source")))
        ? join(controls.dir, "source")
        : undefined);
    if (values.depth !== undefined) {
      if (referencePath === undefined) {
        throw new InvalidArgumentError(
          "--depth",
          "a --reference (or --controls) video to compare depth with",
          values.depth,
        );
      }
      if (!(await stat(values.depth).catch(() => null))?.isFile())
        throw new FileNotFoundError(values.depth, "--depth model", {
          hint: "give the path of a depth ONNX model",
        });
    }
    if (values.prompt !== undefined && values.clip === undefined)
      throw new InvalidArgumentError("--prompt", "--clip <CLIPModel folder> to go with it", values.prompt);
    if (
      values.clip !== undefined &&
      !(await stat(join(values.clip, "config.json")).catch(() => null))?.isFile()
    ) {
      throw new FileNotFoundError(join(values.clip, "config.json"), "--clip model config", {
        hint: "give a transformers CLIPModel folder (config.json, model.safetensors, tokenizer files)",
      });
    }
    if (align !== undefined && referencePath === undefined) {
      throw new InvalidArgumentError("--align", "a --reference (or --controls) clip to align with", align);
    }
    const signal = io.signal;
    const onProgress = progressBar(io.stderr, io.interactive);

    // 2. Decode both clips at one size and pair their frames.
    let frames = await loadClip(video, size, maxFrames, signal);
    const first0 = frames[0];
    const loadedReference =
      referencePath === undefined
        ? undefined
        : await loadClip(referencePath, first0 ?? size, maxFrames, signal);
    let reference: Image[] | undefined;
    let alignment: Record<string, unknown> | undefined;
    let referenceIndex: readonly number[] | undefined;
    if (loadedReference && referencePath !== undefined && frames.length >= 2) {
      const [videoFps, referenceFps] = [
        await clipRate(video, controls),
        await clipRate(referencePath, controls),
      ];
      const pairing = pairFrames(frames.length, loadedReference.length, videoFps, referenceFps, align);
      referenceIndex = pairing.referenceIndex;
      frames = frames.slice(0, referenceIndex.length);
      reference = referenceIndex.map((j) => loadedReference[j] as Image);
      if (pairing.note !== undefined) io.stderr.write(`warning: ${pairing.note}\n`);
      alignment = {
        mode: align ?? "none",
        videoFrames: frames.length,
        referenceFrames: loadedReference.length,
        videoFps: videoFps ?? null,
        referenceFps: referenceFps ?? null,
        referenceIndex,
        ...(pairing.note === undefined ? {} : { note: pairing.note }),
      };
    }
    const n = frames.length;
    if (n < 2)
      throw new InvalidArgumentError("<video>", "a video with at least 2 frames (also in the reference)", n);
    const first = frames[0];
    if (!first) throw new InvalidArgumentError("<video>", "at least 2 frames", 0);

    // 3. The numbers.
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
      ...(alignment ? { alignment } : {}),
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
    if (controls?.canny) {
      // The Canny maps belong to the controls' source frames: pair them like the reference.
      const mapIndex = (i: number): number => referenceIndex?.[i] ?? i;
      const needed = mapIndex(n - 1) + 1;
      if (controls.frames !== undefined && controls.frames < needed) {
        throw new InvalidArgumentError(
          "--controls",
          `a controls folder with at least ${needed} frames`,
          controls.dir,
          {
            hint: `it has ${controls.frames}; pass --frames ${controls.frames} or make the controls from the whole clip`,
          },
        );
      }
      const maps: Image[] = [];
      for (let i = 0; i < n; i++) {
        const file = join(controls.dir, "canny", `frame_${String(mapIndex(i)).padStart(6, "0")}.png`);
        if (!(await stat(file).catch(() => null))?.isFile())
          throw new FileNotFoundError(file, "--controls Canny map", { hint: CONTROLS_HINT });
        maps.push(await readImageFile(file));
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
      const estimator = await DepthEstimator.create(values.depth, { preset, flag: "--depth" });
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
    if (values.clip !== undefined) {
      const scorer = await ClipScorer.load(values.clip, { signal });
      try {
        const clip = await scorer.score(frames, values.prompt, { signal });
        result["clip"] = {
          model: values.clip,
          definition:
            "cosines of L2-normalised CLIP image_embeds (and text_embeds) at the compared frame size; CLIP-F: consecutive frames, CLIP-T: each frame with the prompt",
          clipF: clip.clipF ?? null,
          consecutive: clip.consecutive ?? [],
          ...(values.prompt === undefined
            ? {}
            : { prompt: values.prompt, clipT: clip.clipT ?? null, frameText: clip.frameText ?? [] }),
        };
        lines.push(
          `  CLIP-F         ${round(clip.clipF ?? NaN)}${clip.clipT === undefined ? "" : `  CLIP-T ${round(clip.clipT)}`}`,
        );
      } finally {
        await scorer.release();
      }
    }
    // 4. Written atomically; parent folders of --out are created now (and removed if this fails).
    await writeFileAtomic(out, `${JSON.stringify(result, null, 2)}\n`, { signal });
    io.stdout.write(`${lines.join("\n")}\nwritten: ${out}\n`);
    return 0;
  },
};
