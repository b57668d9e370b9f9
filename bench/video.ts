/**
 * The `video` part of the benchmark (issue 7, "Speed and memory"): the video engine
 * (src/engine/generate-video.ts with the methods of src/engine/strategies.ts), measured in one run.
 *
 * 1. Seconds per frame of each strategy family — per-frame attention, `first`, `first+previous`,
 *    `keyframes`, flow fusion, content-flow (no ControlNet) — with full-size SD-1.5 random weights
 *    (UNet + ControlNet + VAE; fixed random prompt embeddings instead of the text encoder) at each
 *    --video-size, with batch 1 and with --video-batch, and the ratio to per-frame attention.
 * 2. Cost linear in frames: the two --video-frames-linear counts with `first` attention (the cheapest
 *    cross-frame method: one anchor, keys/values one frame long) at --video-batch, smallest size.
 * 3. Peak RSS flat in frame count: the two --video-rss-frames counts rendered by `renderVideo` with
 *    the tiny pipeline at 64x64, each in its own process.
 *
 * One child process per attention method (the cross-frame setting is built into the UNet and
 * ControlNet graphs, so each method loads its own models); children keep the parent's memory out of
 * the figures. Sources: the bundled car-turn clip (9 frames) when it is long enough, else a synthetic
 * PNG sequence of moving shapes written at bench time.
 */
import { mkdir } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { writePngFile } from "../src/control/png.js";
import type { Strategy } from "../src/engine/strategies.js";
import type { VideoArgs, VideoFamily } from "./args.js";
import { runChild } from "./child.js";
import { log, round } from "./stats.js";
import type {
  RssJob,
  RssResult,
  TimingJob,
  TimingResult,
  VideoRunResult,
  VideoRunSpec,
} from "./video-session.js";

export const CLIP = "test/fixtures/videos/car-turn-9f.mp4";
export const CLIP_FRAMES = 9;
/** Key frames of the `keyframes` family (4 frames would make every frame a key frame). */
export const KEYFRAMES = 2;
export const RSS_SIZE = 64;
export const GOALS = { crossFrameRatio: 1.15, linear: 0.05, rss: 0.1 } as const;

export interface VideoBenchOptions {
  readonly video: VideoArgs;
  readonly threads: number;
  /** Folder for models, sources and outputs; created by the caller. */
  readonly dir: string;
}

const base: Strategy = { controlsFrom: "source", noise: "per-frame", attention: "per-frame", fusion: "none" };

/** The strategy families, grouped by the attention method whose graphs they run on. */
const FAMILIES: Record<
  VideoFamily,
  { readonly strategy: Strategy; readonly controlnet: boolean; readonly sequential: boolean }
> = {
  "per-frame": { strategy: base, controlnet: true, sequential: false },
  first: { strategy: { ...base, attention: "first" }, controlnet: true, sequential: false },
  "first+previous": {
    strategy: { ...base, attention: "first+previous" },
    controlnet: true,
    sequential: false,
  },
  keyframes: {
    strategy: { ...base, attention: "keyframes", keyframes: KEYFRAMES },
    controlnet: true,
    sequential: false,
  },
  "flow-fusion": { strategy: { ...base, fusion: "flow" }, controlnet: true, sequential: true },
  "content-flow": {
    strategy: { ...base, controlsFrom: "content-flow" },
    controlnet: false,
    sequential: true,
  },
};
const GROUPS: readonly (readonly VideoFamily[])[] = [
  ["per-frame", "flow-fusion", "content-flow"],
  ["first"],
  ["first+previous"],
  ["keyframes"],
];

/**
 * RSS strategies: carried state (`first` keeps frame 0's keys/values in the anchor cache; flow fusion keeps
 * the previous frame's per-step latents), and bounded key frames with batches. Both denoise about 2
 * frames per frame.
 */
const RSS_STRATEGIES: readonly {
  readonly name: string;
  readonly strategy: Strategy;
  readonly batch: number;
}[] = [
  { name: "first+flow-fusion", strategy: { ...base, attention: "first", fusion: "flow" }, batch: 1 },
  { name: "keyframes-4-batch-4", strategy: { ...base, attention: "keyframes", keyframes: 4 }, batch: 4 },
];

/** A PNG sequence of `frames` frames: a gradient, a disc moving right and a square moving down-left. */
export async function writeSyntheticClip(dir: string, frames: number, size: number): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (let f = 0; f < frames; f++) {
    const data = new Uint8Array(size * size * 3);
    const t = frames > 1 ? f / (frames - 1) : 0;
    const disc = { x: size * (0.2 + 0.6 * t), y: size * 0.4, r: size * 0.15 };
    const square = { x: size * (0.75 - 0.4 * t), y: size * (0.55 + 0.2 * t), h: size * 0.12 };
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const p = (y * size + x) * 3;
        let rgb = [Math.round((200 * x) / size) + 20, Math.round((120 * y) / size) + 40, 90];
        if ((x - disc.x) ** 2 + (y - disc.y) ** 2 <= disc.r ** 2) rgb = [230, 40, 40];
        if (Math.abs(x - square.x) <= square.h && Math.abs(y - square.y) <= square.h) rgb = [30, 30, 220];
        data.set(rgb, p);
      }
    }
    await writePngFile(join(dir, `${String(f).padStart(5, "0")}.png`), {
      width: size,
      height: size,
      channels: 3,
      data,
    });
  }
  return dir;
}

interface Row {
  readonly secondsPerFrame: number;
  readonly ratioToPerFrame: number | null;
  readonly secondsPerFrameStep: number;
  readonly frameStepRatioToPerFrame: number | null;
  /** (UNet + ControlNet seconds) / frames: the denoising part of secondsPerFrame (no VAE, controls, flows). */
  readonly denoiseSecondsPerFrame: number;
  readonly denoiseRatioToPerFrame: number | null;
  readonly slotsPerFrame: number;
  readonly frameSteps: number;
  readonly goalMet?: boolean;
  readonly run: VideoRunResult;
}

/** Per size, per batch, per family: seconds per frame and ratios to per-frame attention. */
function table(runs: readonly VideoRunResult[], batches: readonly number[]): Record<string, unknown> {
  const out: Record<string, Record<string, Record<string, Row>>> = {};
  const sizes = [...new Set(runs.map((r) => r.size))];
  for (const size of sizes) {
    const bySize: Record<string, Record<string, Row>> = {};
    for (const batch of batches) {
      const rows = runs.filter((r) => r.size === size && r.batch === batch);
      const ref = rows.find((r) => r.family === "per-frame");
      const byFamily: Record<string, Row> = {};
      const denoise = (r: VideoRunResult): number => (r.unet.seconds + r.controlnet.seconds) / r.frames;
      for (const run of rows) {
        const ratio = ref ? round(run.secondsPerFrame / ref.secondsPerFrame, 3) : null;
        const crossFrame = run.family === "first" || run.family === "first+previous";
        byFamily[run.family] = {
          secondsPerFrame: run.secondsPerFrame,
          ratioToPerFrame: ratio,
          secondsPerFrameStep: run.secondsPerFrameStep,
          frameStepRatioToPerFrame: ref ? round(run.secondsPerFrameStep / ref.secondsPerFrameStep, 3) : null,
          denoiseSecondsPerFrame: round(denoise(run)),
          denoiseRatioToPerFrame: ref ? round(denoise(run) / denoise(ref), 3) : null,
          slotsPerFrame: run.slotsPerFrame,
          frameSteps: run.frameSteps,
          ...(crossFrame && ratio !== null ? { goalMet: ratio <= GOALS.crossFrameRatio } : {}),
          run,
        };
      }
      if (rows.length > 0) bySize[`batch${batch}`] = byFamily;
    }
    out[String(size)] = bySize;
  }
  return out;
}

export async function benchVideo(options: VideoBenchOptions): Promise<Record<string, unknown>> {
  const v = options.video;
  const loadStart = loadavg();
  const started = performance.now();
  const batches = [...new Set([1, v.batch])];
  const linearSize = Math.min(...v.sizes);
  const models = join(options.dir, "video-models");
  await mkdir(models, { recursive: true });

  // Sources: the bundled clip when long enough (and not --video-synthetic), else synthetic PNG sequences.
  const clipFor = async (frames: number, size: number): Promise<string> =>
    frames <= CLIP_FRAMES && !v.synthetic
      ? CLIP
      : writeSyntheticClip(join(options.dir, `shapes-${size}-${frames}`), frames, size);
  const sources = new Map<number, string>();
  for (const size of v.sizes) sources.set(size, await clipFor(v.frames, size));
  const linearSource = await clipFor(Math.max(...v.linearFrames), linearSize);

  // 1 + 2: one child per attention method; the linearity runs go with `first`.
  const children: Record<string, TimingResult | { result: null; reason: string }> = {};
  const runs: VideoRunResult[] = [];
  const chosen = (f: VideoFamily): boolean => v.families?.includes(f) ?? true;
  for (const group of GROUPS.map((g) => g.filter(chosen)).filter((g) => g.length > 0)) {
    const specs: VideoRunSpec[] = [];
    for (const size of v.sizes) {
      const source = sources.get(size) ?? CLIP;
      const lead = FAMILIES[group[0]!]!;
      // Warm-up: one step at the largest batch of the size (ORT's first run at a shape pays for allocations).
      specs.push({
        family: group[0]!,
        strategy: lead.strategy,
        size,
        frames: Math.min(v.frames, Math.max(v.batch, KEYFRAMES)),
        steps: 1,
        batch: v.batch,
        controlnet: lead.controlnet,
        source,
        warmup: true,
      });
      for (const family of group) {
        const f = FAMILIES[family]!;
        for (const batch of f.sequential ? [1] : batches)
          specs.push({
            family,
            strategy: f.strategy,
            size,
            frames: v.frames,
            batch,
            controlnet: f.controlnet,
            source,
          });
      }
    }
    if (group.includes("first")) {
      for (const frames of v.linearFrames) {
        specs.push({
          family: "linear",
          strategy: FAMILIES["first"]!.strategy,
          size: linearSize,
          frames,
          batch: v.batch,
          controlnet: true,
          source: linearSource,
        });
      }
    }
    const job: TimingJob = {
      mode: "timing",
      model: v.model,
      device: v.device,
      threads: options.threads,
      dir: models,
      steps: v.steps,
      runs: specs,
    };
    log(`video: ${group.join(", ")} (${specs.length} runs)`);
    try {
      const result = (await runChild("./video-session.ts", job)) as TimingResult;
      children[group.join(",")] = { ...result, runs: [] };
      runs.push(...result.runs);
    } catch (error) {
      log(`video: ${group.join(", ")} FAILED ${String(error)}`);
      children[group.join(",")] = { result: null, reason: String(error).slice(0, 400) };
    }
  }

  const strategies = table(
    runs.filter((r) => r.family !== "linear"),
    batches,
  );
  const lin = runs.filter((r) => r.family === "linear");
  const [a, b] = [
    lin.find((r) => r.frames === v.linearFrames[0]),
    lin.find((r) => r.frames === v.linearFrames[1]),
  ];
  const linear =
    a && b
      ? {
          strategy: a.strategy,
          size: linearSize,
          batch: v.batch,
          frames: v.linearFrames,
          secondsPerFrame: [a.secondsPerFrame, b.secondsPerFrame],
          ratio: round(b.secondsPerFrame / a.secondsPerFrame, 4),
          goalMet: Math.abs(b.secondsPerFrame / a.secondsPerFrame - 1) <= GOALS.linear,
          slotsPerFrame: [a.slotsPerFrame, b.slotsPerFrame],
          /** The ratio the anchor share alone predicts (frames denoised per frame, long / short). */
          slotRatio: round(b.slotsPerFrame / a.slotsPerFrame, 4),
          /** Ratio of seconds per denoised frame-step: anchors taken out. */
          frameStepRatio: round(b.secondsPerFrameStep / a.secondsPerFrameStep, 4),
          frameStepGoalMet: Math.abs(b.secondsPerFrameStep / a.secondsPerFrameStep - 1) <= GOALS.linear,
          runs: [a, b],
        }
      : chosen("first")
        ? { result: null, reason: "the linearity runs did not finish (see children)" }
        : { result: null, reason: "not selected (--video-families without first)" };

  // 3: peak RSS on the tiny pipeline, one process per frame count (after one that fills the model cache).
  const rssClip = v.rss
    ? await writeSyntheticClip(
        join(options.dir, `shapes-${RSS_SIZE}-${Math.max(...v.rssFrames)}`),
        Math.max(...v.rssFrames),
        RSS_SIZE,
      )
    : "";
  const rss: Record<string, unknown> = {};
  for (const s of v.rss ? RSS_STRATEGIES : []) {
    const results: RssResult[] = [];
    try {
      for (const frames of [Math.min(4, v.rssFrames[0]), ...v.rssFrames]) {
        const job: RssJob = {
          mode: "rss",
          threads: options.threads,
          dir: join(options.dir, "rss-models"),
          steps: v.steps,
          strategy: s.strategy,
          batch: s.batch,
          frames,
          size: RSS_SIZE,
          source: rssClip,
          out: join(options.dir, `rss-${s.name}-${frames}`),
        };
        log(`video: peak RSS, ${s.name}, ${frames} frames`);
        results.push((await runChild("./video-session.ts", job)) as RssResult);
      }
      const [fill, small, large] = results as [RssResult, RssResult, RssResult];
      const ratio = large.maxRssMiB / small.maxRssMiB;
      rss[s.name] = {
        strategy: small.strategy,
        batch: s.batch,
        frames: v.rssFrames,
        maxRssMiB: [small.maxRssMiB, large.maxRssMiB],
        ratio: round(ratio, 4),
        goalMet: Math.abs(ratio - 1) <= GOALS.rss,
        cacheFillRun: fill,
        runs: [small, large],
      };
    } catch (error) {
      rss[s.name] = { result: null, reason: String(error).slice(0, 400) };
    }
  }

  return {
    model:
      v.model === "sd15"
        ? "SD-1.5 random weights, fp32: UNet2DConditionModel (with ControlNet residual inputs) + ControlNetModel (SD-1.5 canny architecture) + AutoencoderKL (decoder; encoder for content-flow's img2img)"
        : `tiny test pipeline (${"test/fixtures/golden/tiny-sd"}) with its ControlNet: a quick check, not the issue's figures`,
    device: `${v.device}: every timed model (UNet, ControlNet, VAE); the peak-RSS check runs on the CPU`,
    textEncoder:
      v.model === "sd15"
        ? "not run: fixed random prompt embeddings [1, 77, 768] through generateVideo's promptEmbeds (same for every strategy)"
        : "the tiny pipeline's CLIP text encoder",
    scheduler:
      "DDIMScheduler (SD-1.5 config), guidance 7.5 (CFG batch 2), canny control maps, per-frame noise",
    steps: v.steps,
    frames: v.frames,
    batches,
    keyframes: KEYFRAMES,
    sources: {
      strategies: Object.fromEntries(sources),
      linear: linearSource,
      rss: "synthetic moving shapes, 64x64 PNG sequence",
      synthetic: v.synthetic,
    },
    loadAverage: { start: loadStart.map((x) => round(x, 3)), end: loadavg().map((x) => round(x, 3)) },
    totalSeconds: round((performance.now() - started) / 1000),
    goals: {
      crossFrameRatio: `first and first+previous seconds/frame <= ${GOALS.crossFrameRatio} x per-frame`,
      linear: `seconds/frame at ${v.linearFrames[1]} frames within ${GOALS.linear * 100} % of ${v.linearFrames[0]} frames`,
      rss: `peak RSS at ${v.rssFrames[1]} frames within ${GOALS.rss * 100} % of ${v.rssFrames[0]} frames`,
    },
    strategies,
    linear,
    rss,
    children,
    notes: [
      "secondsPerFrame = generateVideo's wall time / frames, models loaded and warmed (per size and method, one 1-step run at the largest batch first; the VAE encoder is opened at load); it includes control maps, optical flow, the VAE decode (and encode for content-flow) and everything else the engine does per frame.",
      "Anchor frames: a batch starting after frame 0 needs the keys/values of frame 0 (`first`), frames 0 and i-1 (`first+previous`) or the key frames (`keyframes`). Frame 0 and the key frames attend only to themselves, so the engine records their keys/values once, while they are generated, and feeds them to every later batch (the anchor cache, src/engine/anchor-cache.ts); `first+previous`'s frame i-1 attends to i-2, so its keys/values from its own generation are kept in the store (`storedAnchors`: the run's work folder on disk, written step by step, read by the next batch) and it is not denoised again either. slotsPerFrame counts the frames denoised per output frame, anchors denoised again included (1.0 = none); anchorCache in each run says what was cached.",
      "With the cache, `first` and `keyframes` denoise each frame once at any batch size, and cross-frame attention costs what reading the anchors' keys/values costs (the attention over L more tokens and the copies of the cached keys/values). `first+previous` too, reading two frames' keys/values (one from disk).",
      "denoiseSecondsPerFrame = (UNet + ControlNet seconds) / frames and its ratio: the same comparison without the per-frame VAE decode, control maps and flows, which cost the same for every strategy and dilute the ratio.",
      "secondsPerFrameStep = (UNet + ControlNet seconds) / denoised frame-steps: the cost of the attention itself with the anchors taken out (first reads one frame's keys/values, as per-frame does; first+previous reads two; keyframes reads the key frames').",
      "flow fusion and content-flow are sequential (batch 1 whatever --batch). content-flow runs without a ControlNet (the UNet keeps its residual inputs, fed zeros) and starts frames after the first as img2img at strength 0.6, so they take fewer denoising steps plus a VAE encode: see frameSteps.",
      `Linearity: ${v.linearFrames.join(" vs ")} frames with \`first\` at batch ${v.batch}: frame 0's keys/values come from the anchor cache, so every frame is denoised once (slotsPerFrame 1.0) whatever the length; frameStepRatio compares seconds per denoised frame-step.`,
      "Peak RSS: renderVideo (work folder on disk, PNG output) with the tiny pipeline at 64x64, one process per frame count (maxrss of that process); a 4-frame run first writes the models into the cache so neither measured run pays for writing them. keyframes-4-batch-4 denoises 4 key frames + 4 new frames at once as soon as the video has more than 4 frames (fewer frames make smaller batches), so compare counts >= 8.",
      "Timings depend on other processes sharing the cores: compare loadAverage with the core count.",
    ],
  };
}
