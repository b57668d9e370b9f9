/**
 * Tune-A-Video benchmark (issue 8, `--only tav`): seconds per tuning step of the inflated UNet3D
 * (showlab/Tune-A-Video `train_tuneavideo.py`; src/train/tune-a-video-graph.ts) built from the
 * full-size SD-1.5 UNet config with random weights, fp32, CPU: 8 frames at 256x256 (latents 32x32)
 * by default. One graph holds the forward over the frames, the MSE loss over all b*c*f*h*w elements
 * and the gradients of the release's trainable parameters only (attn1.to_q, attn2.to_q, attn_temp),
 * as `openTuneAVideoStepGraph` builds it, plus recompute (one checkpoint segment per UNet block) by
 * default. The new temporal layers start as the release starts them (`initialTemporalWeights`: torch
 * Linear defaults, attn_temp.to_out.0.weight zero, norm_temp 1/0); the 2D weights are `randomWeights`.
 *
 * The step runs in a child process (tav-session.ts) whose RSS this process watches: past the budget
 * (default 20 GiB), or when the machine's available memory falls under 1 GiB, the child is killed and
 * the part reports `outOfMemoryBudget` with the RSS reached instead of letting the machine swap.
 *
 * FLOPs: the forward count F of the 8-frame UNet (src/graph/flops.ts). The step computes the forward,
 * its recomputation (with recompute), the input gradients back to the first trainable layer and the
 * weight gradients of the trainable matrices only; `forwardGflopPerSecond` = F / step time is the
 * plain normalised rate, `stepGflopsEstimate` counts 2F (forward + input gradients) per step.
 */
import { spawn } from "node:child_process";
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { checkpointByScope, gradients } from "../src/graph/autodiff/index.js";
import { GraphBuilder } from "../src/graph/builder.js";
import { ConcreteDimsGraphBuilder, countFlops } from "../src/graph/flops.js";
import * as op from "../src/graph/ops/index.js";
import { writeModel } from "../src/graph/serialize.js";
import { contextWidth } from "../src/models/unet3d/build.js";
import { UNet3DConditionModel } from "../src/models/unet3d/model.js";
import { initialTemporalWeights } from "../src/models/unet3d/source.js";
import type { UNet2DConditionModelConfig } from "../src/models/unet/config.js";
import { type WeightStore, mapStore, randomWeights } from "../src/nn/weight-store.js";
import { WeightScope } from "../src/nn/weights.js";
import { TUNE_A_VIDEO_TRAINABLE_MODULES } from "../src/train/tune-a-video-graph.js";
import { makeTrainable, trackLayouts } from "../src/train/parameters.js";
import { numel } from "../src/tensor.js";
import type { TavParamSlot, TavRunJob, TavRunResult } from "./tav-session.js";
import { log, mib, round } from "./stats.js";
import { UNET_BLOCKS } from "./train.js";
import { TEXT_LENGTH, sd15Config } from "./unet.js";

export interface TavBenchOptions {
  readonly threads: number;
  /** Timed steps after the warm-up (the caller caps it at 2). */
  readonly runs: number;
  /** Folder for the model; created by the caller. */
  readonly dir: string;
  /** (optional, default 8) frames per video. */
  readonly frames?: number;
  /** (optional, default 256) square image size; latents are size / 8. */
  readonly imageSize?: number;
  /** (optional, default true) one recompute segment per UNet block. */
  readonly recompute?: boolean;
  /** (optional, default 20480) the child's RSS budget in MiB. */
  readonly rssLimitMiB?: number;
}

/** Seed of the temporal-layer init (the release's configs/*.yaml seed). */
const TEMPORAL_SEED = 33;

/** Stops watching when the machine has less than this available (MiB), whatever the child's RSS. */
const MIN_AVAILABLE_MIB = 1024;

/** SD-1.5 random 2D weights plus the release's initial temporal layers. */
function tavStore(config: UNet2DConditionModelConfig): WeightStore {
  const temporal = mapStore(initialTemporalWeights(config, TEMPORAL_SEED), "new temporal layers");
  const random = randomWeights({ seed: 0 });
  return {
    name: "random SD-1.5 weights + Tune-A-Video temporal init",
    keys: () => temporal.keys(),
    info: (key) => temporal.info(key),
    source: (key) => temporal.source(key),
    ...(random.synthesize ? { synthesize: random.synthesize.bind(random) } : {}),
  };
}

interface Shapes {
  readonly frames: number;
  readonly latent: number;
}

/** The inflated UNet's forward into `g`; returns the prediction and the latent shape. */
function buildForward(
  g: GraphBuilder,
  w: WeightScope,
  config: UNet2DConditionModelConfig,
  s: Shapes,
): { pred: ReturnType<UNet3DConditionModel["forward"]>; shape: [number, number, number, number, number] } {
  const shape: [number, number, number, number, number] = [1, 4, s.frames, s.latent, s.latent];
  const model = new UNet3DConditionModel(w, config, s.frames);
  const sample = g.input("sample", "float32", [...shape]);
  const timestep = g.input("timestep", "float32", [1]);
  const ehs = g.input("encoder_hidden_states", "float32", [1, TEXT_LENGTH, contextWidth(config)]);
  const pred = model.forward({ sample, timestep, encoderHiddenStates: ehs });
  w.finish();
  return { pred, shape };
}

interface BuiltStep {
  readonly nodes: number;
  readonly modelBytes: number;
  readonly trainableParameters: number;
  readonly trainableTensors: number;
  readonly params: readonly TavParamSlot[];
  readonly buildSeconds: number;
  readonly writeSeconds: number;
}

/**
 * The tuning step graph (as src/train/tune-a-video-graph.ts, plus the recompute option), written to
 * `modelPath`; the trainable parameters' initial values (graph layout) go to `paramsPath`.
 */
async function writeStep(
  store: WeightStore,
  config: UNet2DConditionModelConfig,
  s: Shapes,
  recompute: boolean,
  modelPath: string,
  paramsPath: string,
): Promise<BuiltStep> {
  const t0 = performance.now();
  const tracker = trackLayouts(store);
  const g = new GraphBuilder({ name: "tune_a_video_step" });
  const w = WeightScope.bind(g, tracker.store);
  const { pred, shape } = buildForward(g, w, config, s);
  const target = g.input("target", "float32", [...shape]);
  const diff = op.Sub(g, pred, target);
  const loss = op.ReduceMean(g, op.Mul(g, diff, diff), [0, 1, 2, 3, 4], { keepdims: false });
  const params = makeTrainable(g, tracker, TUNE_A_VIDEO_TRAINABLE_MODULES);
  const { grads } = gradients(
    g,
    loss,
    params.map((p) => p.value),
    recompute ? { checkpoint: checkpointByScope(UNET_BLOCKS) } : {},
  );
  g.output(pred, "model_pred");
  g.output(loss, "loss");
  grads.forEach((gr, i) => g.output(gr, `grad.${i}`));
  const buildSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const written = await writeModel(g, modelPath, { durable: false });
  const slots: TavParamSlot[] = [];
  const file = await open(paramsPath, "w");
  let offset = 0;
  try {
    for (const p of params) {
      const t = await p.initial();
      await file.write(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      slots.push({ name: p.name, shape: p.value.shape.map(Number), offset });
      offset += t.data.length;
    }
  } finally {
    await file.close();
  }
  return {
    nodes: g.nodes.length,
    modelBytes: written.dataBytes,
    trainableParameters: params.reduce((sum, p) => sum + numel(p.storedShape), 0),
    trainableTensors: params.length,
    params: slots,
    buildSeconds,
    writeSeconds: (performance.now() - t1) / 1000,
  };
}

/** Field of /proc/<pid>/status or /proc/meminfo in KiB (null when unreadable, e.g. not Linux). */
async function procKiB(path: string, field: string): Promise<number | null> {
  const text = await readFile(path, "utf8").catch(() => null);
  const m = text === null ? null : new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  return m?.[1] === undefined ? null : Number(m[1]);
}

type Watched =
  | { readonly ok: true; readonly result: TavRunResult; readonly peakRssMiB: number }
  | { readonly ok: false; readonly rssReachedMiB: number; readonly reason: string; readonly seconds: number };

/** Runs tav-session.ts with `job`, killing it past `limitMiB` of RSS or when the machine runs short. */
async function runWatched(job: TavRunJob, limitMiB: number): Promise<Watched> {
  const path = fileURLToPath(new URL("./tav-session.ts", import.meta.url));
  const child = spawn(process.execPath, [...process.execArgv, path, JSON.stringify(job)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const started = performance.now();
  const chunks: Buffer[] = [];
  child.stdout.on("data", (c: Buffer) => chunks.push(c));
  let peakMiB = 0;
  let killed: string | null = null;
  const watch = setInterval(() => {
    void (async () => {
      if (child.pid === undefined || killed !== null) return;
      const rss = await procKiB(`/proc/${child.pid}/status`, "VmRSS");
      const available = await procKiB("/proc/meminfo", "MemAvailable");
      if (rss !== null) peakMiB = Math.max(peakMiB, Math.round(rss / 1024));
      const why =
        rss !== null && rss / 1024 > limitMiB
          ? `RSS ${Math.round(rss / 1024)} MiB passed the ${limitMiB} MiB budget`
          : available !== null && available / 1024 < MIN_AVAILABLE_MIB
            ? `the machine's available memory fell to ${Math.round(available / 1024)} MiB (child RSS ${Math.round((rss ?? 0) / 1024)} MiB)`
            : null;
      if (why !== null && killed === null) {
        killed = why;
        log(`tav: killing the step process: ${why}`);
        child.kill("SIGKILL");
      }
    })();
  }, 200);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (c, signal) => resolve(signal === null ? c : -1));
  });
  clearInterval(watch);
  const seconds = (performance.now() - started) / 1000;
  if (killed !== null) return { ok: false, rssReachedMiB: peakMiB, reason: killed, seconds: round(seconds) };
  const out = Buffer.concat(chunks).toString("utf8");
  if (code !== 0)
    throw new Error(
      `tav-session.ts exited with ${code === -1 ? "a signal (out of memory?)" : `code ${code}`} after reaching ${peakMiB} MiB RSS${out ? `: ${out.slice(0, 300)}` : ""}`,
    );
  const result = JSON.parse(out) as TavRunResult;
  return { ok: true, result, peakRssMiB: Math.max(peakMiB, result.peakRssMiB) };
}

export interface TavReport {
  readonly config: string;
  readonly frames: number;
  readonly imageSize: number;
  readonly latentShape: readonly number[];
  readonly recompute: boolean;
  readonly trainableModules: readonly string[];
  readonly trainableParameters: number;
  readonly trainableTensors: number;
  /** Forward FLOPs of the inflated UNet over all frames (GFLOP). */
  readonly forwardGflop: number;
  readonly nodes: number;
  readonly modelMiB: number;
  readonly buildSeconds: number;
  readonly writeSeconds: number;
  readonly rssLimitMiB: number;
  /** Null when the step process was killed (see outOfMemoryBudget). */
  readonly secondsPerStep: number | null;
  readonly forwardGflopPerSecond: number | null;
  readonly stepGflopsEstimate: number | null;
  /** Peak RSS of the step process (MiB): the parent's /proc samples and the child's own, whichever is higher. */
  readonly peakRssMiB: number;
  readonly run: TavRunResult | null;
  readonly outOfMemoryBudget: {
    readonly rssReachedMiB: number;
    readonly reason: string;
    readonly afterSeconds: number;
  } | null;
}

export async function benchTav(options: TavBenchOptions): Promise<TavReport> {
  const frames = options.frames ?? 8;
  const imageSize = options.imageSize ?? 256;
  const recompute = options.recompute ?? true;
  const rssLimitMiB = options.rssLimitMiB ?? 20 * 1024;
  const s: Shapes = { frames, latent: imageSize / 8 };
  const config = sd15Config();
  const t0 = performance.now();
  const store = tavStore(config);
  log(`tav: temporal init in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const dims = { batch: 1, sequence: TEXT_LENGTH, height: s.latent, width: s.latent };
  const counter = new ConcreteDimsGraphBuilder(dims, { name: "unet3d" });
  buildForward(counter, WeightScope.bind(counter, store), config, s);
  const report = countFlops(counter, dims);
  if (report.unresolved.length > 0)
    throw new Error(
      `FLOP count left ${report.unresolved.length} nodes unresolved (first: ${report.unresolved[0]})`,
    );
  const flops = report.flops;
  log(`tav: forward ${round(flops / 1e9)} GFLOP over ${frames} frames at ${imageSize}x${imageSize}`);

  const modelPath = join(options.dir, "tune-a-video-step.onnx");
  const paramsPath = join(options.dir, "tune-a-video-params.f32");
  const built = await writeStep(store, config, s, recompute, modelPath, paramsPath);
  log(
    `tav: ${built.nodes} nodes, ${mib(built.modelBytes)} MiB, ${built.trainableTensors} trainable tensors ` +
      `(${round(built.trainableParameters / 1e6)} M parameters), written in ${built.writeSeconds.toFixed(1)} s`,
  );
  const job: TavRunJob = {
    label: `tav ${frames}f ${imageSize}${recompute ? " recompute" : ""}`,
    modelPath,
    paramsPath,
    params: built.params,
    threads: options.threads,
    runs: options.runs,
  };
  const watched = await runWatched(job, rssLimitMiB);
  const step = watched.ok ? watched.result.medianSeconds : null;
  return {
    config:
      "Tune-A-Video UNet3DConditionModel inflated from SD-1.5 (diffusers defaults, cross_attention_dim 768), random 2D weights, release temporal init, fp32, batch 1",
    frames,
    imageSize,
    latentShape: [1, 4, frames, s.latent, s.latent],
    recompute,
    trainableModules: [...TUNE_A_VIDEO_TRAINABLE_MODULES],
    trainableParameters: built.trainableParameters,
    trainableTensors: built.trainableTensors,
    forwardGflop: round(flops / 1e9),
    nodes: built.nodes,
    modelMiB: mib(built.modelBytes),
    buildSeconds: round(built.buildSeconds),
    writeSeconds: round(built.writeSeconds),
    rssLimitMiB,
    secondsPerStep: step,
    forwardGflopPerSecond: step === null ? null : round(flops / 1e9 / step),
    stepGflopsEstimate: step === null ? null : round((2 * flops) / 1e9 / step),
    peakRssMiB: watched.ok ? watched.peakRssMiB : watched.rssReachedMiB,
    run: watched.ok ? watched.result : null,
    outOfMemoryBudget: watched.ok
      ? null
      : { rssReachedMiB: watched.rssReachedMiB, reason: watched.reason, afterSeconds: watched.seconds },
  };
}
