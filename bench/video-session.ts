/**
 * Child process of the video benchmark (video.ts). Prints one JSON object on stdout.
 *
 * - mode "timing": loads the models once with one attention method's cross-frame setting (the
 *   setting is part of the UNet and ControlNet graphs) and runs `generateVideo` (src/engine) for each
 *   run of the job, timing the whole call and every UNet / ControlNet / VAE call inside it. Models:
 *   full-size SD-1.5 with random weights (unet.ts, sd15-components.ts: UNet with ControlNet residual
 *   inputs, a ControlNet of SD-1.5's architecture, the VAE; fixed random prompt embeddings replace
 *   the text encoder) or the tiny test pipeline (its own text encoder).
 * - mode "rss": one `renderVideo` of the tiny pipeline (work folder on disk, PNG output), as the
 *   `video` command runs it; the process's peak RSS (getrusage maxrss and worker-thread samples) is
 *   the figure, so each frame count gets its own process.
 */
import { join } from "node:path";
import type { AnchorCacheStats } from "../src/engine/anchor-cache.js";
import { generateVideo, planRender } from "../src/engine/generate-video.js";
import { cannyAnnotator } from "../src/engine/methods/annotator.js";
import { renderVideo } from "../src/engine/render.js";
import { SourceVideo } from "../src/engine/source.js";
import { WorkFolder } from "../src/engine/work-folder.js";
import { type Strategy, strategyMethods, strategyName } from "../src/engine/strategies.js";
import type { CrossFrameSetting } from "../src/models/unet/build.js";
import { loadControlNetModel } from "../src/models/controlnet/index.js";
import { loadUNet2DConditionModel } from "../src/models/unet/runner.js";
import { AutoencoderKL } from "../src/models/vae/autoencoder-kl.js";
import { randomWeights } from "../src/nn/weight-store.js";
import { StableDiffusionPipeline, vaeLatentEncoder } from "../src/pipeline/stable-diffusion.js";
import type { VideoComponents } from "../src/pipeline/types.js";
import { TorchGenerator } from "../src/random/torch-generator.js";
import type { ExecutionProvider } from "../src/runtime/session.js";
import { fromConfig } from "../src/schedulers/registry.js";
import { type HostTensor, tensor } from "../src/tensor.js";
import { RssSampler, maxRssMiB, rssMiB } from "./rss.js";
import { SD15_SCHEDULER, SD15_VAE, sd15ControlNetConfig } from "./sd15-components.js";
import { log, round } from "./stats.js";
import { sd15Config } from "./unet.js";

export const TINY_MODEL = "test/fixtures/golden/tiny-sd";
export const TINY_CONTROLNET = "test/fixtures/golden/tiny-sd/controlnet";
export const PROMPT = "a red car on a road";
export const GUIDANCE = 7.5;

export interface VideoRunSpec {
  /** Strategy family: per-frame, first, first+previous, keyframes, flow-fusion, content-flow. */
  readonly family: string;
  readonly strategy: Strategy;
  readonly size: number;
  readonly frames: number;
  readonly batch: number;
  /** False for content-flow (no ControlNet: the content replaces the control maps). */
  readonly controlnet: boolean;
  /** Video file or PNG folder. */
  readonly source: string;
  /** (optional, default: the job's) denoising steps. */
  readonly steps?: number;
  /** Not reported (warm-up of a new size). */
  readonly warmup?: boolean;
}

export interface TimingJob {
  readonly mode: "timing";
  readonly model: "sd15" | "tiny";
  /** Execution provider of every model (default cpu). */
  readonly device?: ExecutionProvider;
  readonly threads: number;
  /** Model cache folder (the random-weight models are written there and removed on release). */
  readonly dir: string;
  readonly steps: number;
  readonly runs: readonly VideoRunSpec[];
}

export interface RssJob {
  readonly mode: "rss";
  readonly threads: number;
  readonly dir: string;
  readonly steps: number;
  readonly strategy: Strategy;
  readonly batch: number;
  readonly frames: number;
  readonly size: number;
  readonly source: string;
  readonly out: string;
}

export type VideoSessionJob = TimingJob | RssJob;

/** Seconds and calls of one component during a run. */
export interface CallTotals {
  calls: number;
  seconds: number;
  /** Sum of the batch sizes of the calls. */
  items: number;
}

export interface VideoRunResult {
  readonly family: string;
  readonly strategy: string;
  readonly size: number;
  readonly frames: number;
  readonly batch: number;
  readonly steps: number;
  /** False for content-flow (run without the ControlNet). */
  readonly withControlNet: boolean;
  /** generateVideo's wall time (controls, flows, denoising, VAE; models already loaded). */
  readonly wallSeconds: number;
  /** wallSeconds / frames. */
  readonly secondsPerFrame: number;
  /** Wall time between finished frames (the first from the start of the call). */
  readonly frameSeconds: readonly number[];
  /** The engine's own per-frame figure (denoising of the frame's batch / its new frames; no VAE decode). */
  readonly engineDenoiseSecondsPerFrame: number;
  /** Frames denoised, anchors included (batch plan + the attention method's anchors). */
  /** Frames denoised, counted once per batch they were in (anchors denoised again included). */
  readonly slots: number;
  readonly slotsPerFrame: number;
  /** The engine's anchor cache at the end (cached frames, bytes), or null without one. */
  readonly anchorCache: AnchorCacheStats | null;
  /** Frames whose keys/values were kept in the store for later batches (first+previous), or null. */
  readonly storedKeyValues: readonly number[] | null;
  /** UNet calls x frames per call (the CFG batch halved): denoising work in frame-steps. */
  readonly frameSteps: number;
  readonly unet: CallTotals;
  readonly controlnet: CallTotals;
  readonly vaeDecode: CallTotals;
  readonly vaeEncode: CallTotals;
  /** (UNet + ControlNet seconds) / frameSteps: the cost of one frame-step, anchors included. */
  readonly secondsPerFrameStep: number;
  /** Wall time outside UNet, ControlNet and VAE (annotators, flows, warps, scheduler, copies). */
  readonly otherSeconds: number;
}

export interface TimingResult {
  readonly model: string;
  readonly crossFrame: CrossFrameSetting | null;
  readonly loadSeconds: number;
  readonly rssAfterLoadMiB: number;
  readonly warmups: readonly { readonly size: number; readonly seconds: number }[];
  readonly runs: readonly VideoRunResult[];
  readonly maxRssMiB: number;
  readonly cpuSeconds: number;
  readonly wallSeconds: number;
}

export interface RssResult {
  readonly frames: number;
  readonly strategy: string;
  readonly batch: number;
  readonly wallSeconds: number;
  readonly secondsPerFrame: number;
  /** RSS when the first frame was finished (models loaded and run once). */
  readonly rssAtFirstFrameMiB: number;
  readonly rssAtLastFrameMiB: number;
  /** Highest worker-thread RSS sample (100 ms). */
  readonly sampledPeakRssMiB: number;
  /** getrusage maxrss of the process: the figure compared across frame counts. */
  readonly maxRssMiB: number;
}

const totals = (): CallTotals => ({ calls: 0, seconds: 0, items: 0 });

interface Timers {
  unet: CallTotals;
  controlnet: CallTotals;
  vaeDecode: CallTotals;
  vaeEncode: CallTotals;
}

async function timedCall<T>(t: CallTotals, items: number, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await fn();
  t.calls++;
  t.items += items;
  t.seconds += (performance.now() - started) / 1000;
  return result;
}

/** The components with every model call timed into `timers` (read at the end of each run). */
function timedComponents(c: VideoComponents, timers: Timers): VideoComponents {
  return {
    ...c,
    unet: {
      ...(c.unet.anchorCache === true ? { anchorCache: true } : {}),
      forward: (inputs) => timedCall(timers.unet, inputs.sample.shape[0] ?? 0, () => c.unet.forward(inputs)),
    },
    controlnets: c.controlnets.map((net) => ({
      ...(net.anchorCache === true ? { anchorCache: true } : {}),
      forward: (inputs) =>
        timedCall(timers.controlnet, inputs.sample.shape[0] ?? 0, () => net.forward(inputs)),
    })),
    vae: {
      scalingFactor: c.vae.scalingFactor,
      decode: (z) => timedCall(timers.vaeDecode, z.shape[0] ?? 0, () => c.vae.decode(z)),
    },
    ...(c.encoder
      ? {
          encoder: {
            encode: (image, generator) =>
              timedCall(timers.vaeEncode, image.shape[0] ?? 0, () => c.encoder!.encode(image, generator)),
          },
        }
      : {}),
  };
}

interface Loaded {
  readonly components: VideoComponents;
  readonly promptEmbeds?: { cond: HostTensor<"float32">; uncond: HostTensor<"float32"> };
  release(): Promise<void>;
}

const noTextEncoder = (): never => {
  throw new Error("the video benchmark passes promptEmbeds: the text encoder is not loaded");
};

/** The session option that puts every model of the job on `job.device` (none for the CPU default). */
function providers(job: TimingJob): { executionProviders?: readonly ExecutionProvider[] } {
  return job.device && job.device !== "cpu" ? { executionProviders: [job.device] } : {};
}

async function loadSd15(job: TimingJob, crossFrame: CrossFrameSetting | undefined): Promise<Loaded> {
  const common = { intraOpNumThreads: job.threads, cacheDir: job.dir, ...providers(job) };
  const cf = crossFrame ? { crossFrame } : {};
  const unet = await loadUNet2DConditionModel(
    { config: sd15Config(), store: randomWeights({ seed: 0 }) },
    { ...common, ...cf, residuals: true },
  );
  log(`video: UNet loaded (rss ${rssMiB()} MiB)`);
  const controlnet = await loadControlNetModel(
    { config: sd15ControlNetConfig(), store: randomWeights({ seed: 3 }) },
    { ...common, ...cf, broadcastPooled: true },
  );
  log(`video: ControlNet loaded (rss ${rssMiB()} MiB)`);
  const vae = await AutoencoderKL.load({ config: SD15_VAE, store: randomWeights({ seed: 2 }) }, common);
  // Fixed random prompt embeddings [1, 77, 768] stand in for CLIP (same cost for every strategy).
  const g = new TorchGenerator(7);
  const cond = g.randn([1, 77, 768]);
  const uncond = g.randn([1, 77, 768]);
  return {
    components: {
      tokenizer: { tokenize: noTextEncoder },
      textEncoder: { encode: noTextEncoder },
      unet,
      controlnets: [controlnet],
      vae: { scalingFactor: vae.scalingFactor, decode: (z) => vae.decode(z, { batchSize: 1 }) },
      encoder: vaeLatentEncoder(vae),
      makeScheduler: () => fromConfig("DDIMScheduler", SD15_SCHEDULER),
      vaeScaleFactor: 8,
      latentChannels: 4,
    },
    promptEmbeds: { cond, uncond },
    release: async () => {
      await unet.release();
      await controlnet.release();
      await vae.release();
    },
  };
}

async function loadTiny(job: TimingJob, crossFrame: CrossFrameSetting | undefined): Promise<Loaded> {
  const sd = await StableDiffusionPipeline.load(TINY_MODEL, {
    controlnets: [TINY_CONTROLNET],
    intraOpNumThreads: job.threads,
    cacheDir: job.dir,
    ...providers(job),
    ...(crossFrame ? { crossFrame } : {}),
  });
  return { components: sd.videoComponents("ddim"), release: () => sd.release() };
}

/** Methods, plan and cross-frame setting of one run (checked before any model runs). */
async function prepare(run: VideoRunSpec, steps: number, c: Pick<VideoComponents, "vaeScaleFactor">) {
  const source = await SourceVideo.open(run.source, {
    width: run.size,
    height: run.size,
    maxFrames: run.frames,
  });
  const methods = strategyMethods(run.strategy, {
    annotators: run.controlnet ? [cannyAnnotator()] : [],
    videos: GUIDANCE > 1 ? 2 : 1,
    source,
  });
  const options = {
    prompt: PROMPT,
    width: run.size,
    height: run.size,
    frames: run.frames,
    numInferenceSteps: steps,
    guidanceScale: GUIDANCE,
    seed: 0,
    methods,
    batch: run.batch,
    source,
    controls: run.controlnet ? [{ scale: 1 }] : [],
  };
  const info = planRender(options, {
    vaeScaleFactor: c.vaeScaleFactor,
    latentChannels: 4,
    controlNets: run.controlnet ? 1 : 0,
  });
  const crossFrame = methods.find((m) => m.crossFrame)?.crossFrame?.() ?? null;
  return { source, options, info, crossFrame };
}

async function timing(
  job: TimingJob,
): Promise<Omit<TimingResult, "maxRssMiB" | "cpuSeconds" | "wallSeconds">> {
  const scaleFactor = job.model === "sd15" ? 8 : 2;
  // Every run of a job shares the graphs: their cross-frame settings must agree.
  let crossFrame: CrossFrameSetting | null | undefined;
  for (const run of job.runs) {
    const p = await prepare(run, run.steps ?? job.steps, { vaeScaleFactor: scaleFactor });
    await p.source.close();
    if (crossFrame !== undefined && JSON.stringify(crossFrame) !== JSON.stringify(p.crossFrame))
      throw new Error(
        `runs of one job need one cross-frame setting: ${JSON.stringify([crossFrame, p.crossFrame])}`,
      );
    crossFrame = p.crossFrame;
  }
  const started = performance.now();
  const loaded = await (job.model === "sd15" ? loadSd15 : loadTiny)(job, crossFrame ?? undefined);
  // The VAE encoder opens on first use: open it now, so content-flow's first img2img start does not pay for it.
  if (job.runs.some((r) => !r.controlnet) && loaded.components.encoder) {
    const s = loaded.components.vaeScaleFactor * 8;
    await loaded.components.encoder.encode(tensor("float32", [1, 3, s, s]), new TorchGenerator(0));
  }
  const loadSeconds = round((performance.now() - started) / 1000);
  const rssAfterLoadMiB = rssMiB();
  log(`video: models (${JSON.stringify(crossFrame)}) loaded in ${loadSeconds} s`);
  const warmups: { size: number; seconds: number }[] = [];
  const runs: VideoRunResult[] = [];
  try {
    for (const run of job.runs) {
      const p = await prepare(run, run.steps ?? job.steps, loaded.components);
      const timers: Timers = {
        unet: totals(),
        controlnet: totals(),
        vaeDecode: totals(),
        vaeEncode: totals(),
      };
      const base = timedComponents(loaded.components, timers);
      const components = run.controlnet ? base : { ...base, controlnets: [] };
      // The store a render uses (a work folder on disk): first+previous writes and reads keys/values there.
      const storePath = join(job.dir, `frames-${process.pid}`);
      const store = await WorkFolder.open(storePath, {}, false);
      const frameTimes: number[] = [];
      const runStarted = performance.now();
      let last = runStarted;
      const result = await generateVideo(components, {
        ...p.options,
        ...(loaded.promptEmbeds ? { promptEmbeds: loaded.promptEmbeds } : {}),
        store,
        onFrame: () => {
          const now = performance.now();
          frameTimes.push(round((now - last) / 1000));
          last = now;
        },
      });
      const wall = (performance.now() - runStarted) / 1000;
      await store.remove();
      await p.source.close();
      const label = `${run.family} ${run.size}x${run.size} batch ${run.batch} x${run.frames} frames`;
      if (run.warmup) {
        warmups.push({ size: run.size, seconds: round(wall) });
        log(`video: warm-up ${label}: ${wall.toFixed(1)} s`);
        continue;
      }
      const engine = [...result.secondsPerFrame.values()];
      const cfg = GUIDANCE > 1 ? 2 : 1;
      const frameSteps = timers.unet.items / cfg;
      const modelSeconds = timers.unet.seconds + timers.controlnet.seconds;
      const r = (t: CallTotals): CallTotals => ({
        calls: t.calls,
        seconds: round(t.seconds),
        items: t.items,
      });
      runs.push({
        family: run.family,
        strategy: strategyName(run.strategy),
        size: run.size,
        frames: run.frames,
        batch: run.batch,
        steps: run.steps ?? job.steps,
        withControlNet: run.controlnet,
        wallSeconds: round(wall),
        secondsPerFrame: round(wall / run.frames),
        frameSeconds: frameTimes,
        engineDenoiseSecondsPerFrame: round(engine.reduce((a, b) => a + b, 0) / Math.max(1, engine.length)),
        slots: result.denoisedSlots,
        slotsPerFrame: round(result.denoisedSlots / run.frames),
        anchorCache: result.anchorCache ?? null,
        storedKeyValues: result.storedKeyValues ?? null,
        frameSteps,
        unet: r(timers.unet),
        controlnet: r(timers.controlnet),
        vaeDecode: r(timers.vaeDecode),
        vaeEncode: r(timers.vaeEncode),
        secondsPerFrameStep: round(modelSeconds / Math.max(1, frameSteps)),
        otherSeconds: round(wall - modelSeconds - timers.vaeDecode.seconds - timers.vaeEncode.seconds),
      });
      log(`video: ${label}: ${(wall / run.frames).toFixed(2)} s/frame (${result.denoisedSlots} slots)`);
    }
  } finally {
    await loaded.release();
  }
  return {
    model: job.model,
    crossFrame: crossFrame ?? null,
    loadSeconds,
    rssAfterLoadMiB,
    warmups,
    runs,
  };
}

async function rss(job: RssJob): Promise<Omit<RssResult, "maxRssMiB" | "sampledPeakRssMiB">> {
  let first = 0;
  let last = 0;
  let count = 0;
  const started = performance.now();
  await renderVideo(
    {
      source: job.source,
      model: TINY_MODEL,
      controlnets: [{ path: TINY_CONTROLNET, control: "canny" }],
      prompt: PROMPT,
      width: job.size,
      height: job.size,
      frames: job.frames,
      steps: job.steps,
      scheduler: "ddim",
      guidanceScale: GUIDANCE,
      seed: 0n,
      strategy: job.strategy,
      batch: job.batch,
      out: join(job.out, "frames"),
      cacheDir: job.dir,
    },
    {
      onFrame: () => {
        count++;
        const now = rssMiB();
        if (count === 1) first = now;
        last = now;
      },
    },
  );
  const wall = (performance.now() - started) / 1000;
  return {
    frames: job.frames,
    strategy: strategyName(job.strategy),
    batch: job.batch,
    wallSeconds: round(wall),
    secondsPerFrame: round(wall / job.frames),
    rssAtFirstFrameMiB: first,
    rssAtLastFrameMiB: last,
  };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? "{}") as VideoSessionJob;
  const sampler = new RssSampler(100);
  const started = performance.now();
  const cpu = process.cpuUsage();
  try {
    if (job.mode === "rss") {
      const partial = await rss(job);
      const result: RssResult = { ...partial, sampledPeakRssMiB: sampler.peakMiB(), maxRssMiB: maxRssMiB() };
      process.stdout.write(JSON.stringify(result));
    } else {
      const partial = await timing(job);
      const used = process.cpuUsage(cpu);
      const result: TimingResult = {
        ...partial,
        maxRssMiB: maxRssMiB(),
        cpuSeconds: round((used.user + used.system) / 1e6),
        wallSeconds: round((performance.now() - started) / 1000),
      };
      process.stdout.write(JSON.stringify(result));
    }
  } finally {
    await sampler.stop();
  }
}

await main();
