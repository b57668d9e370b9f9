/**
 * UNet step benchmark: a full-size SD-1.5-architecture UNet (diffusers defaults, cross_attention_dim
 * 768) with random weights is built, FLOP-counted per latent size, written with external data to a
 * temporary folder and timed in a child process (unet-session.ts): warm-up 1, then the median of N
 * steps per size with CFG batch 2. Optionally: an ORT profile of the last step, and session creation
 * through the optimized-model cache (two more children: cache write, cache hit).
 */
import { statfs } from "node:fs/promises";
import { join } from "node:path";
import { GraphBuilder } from "../src/graph/builder.js";
import { ConcreteDimsGraphBuilder, countFlops } from "../src/graph/flops.js";
import { writeModel } from "../src/graph/serialize.js";
import { buildUNet2DConditionModel } from "../src/models/unet/build.js";
import {
  type UNet2DConditionModelConfig,
  parseUNet2DConditionModelConfig,
} from "../src/models/unet/config.js";
import { randomWeights } from "../src/nn/weight-store.js";
import { WeightScope } from "../src/nn/weights.js";
import { BYTES_PER_ELEMENT, numel } from "../src/tensor.js";
import { runChild } from "./child.js";
import { RssSampler, maxRssMiB } from "./rss.js";
import { log, mib, reasonOf, round } from "./stats.js";
import type { SessionJob, SessionResult } from "./unet-session.js";

export const CFG_BATCH = 2;
export const TEXT_LENGTH = 77;

export interface UNetBenchOptions {
  readonly imageSizes: readonly number[];
  readonly runs: number;
  readonly threads: number;
  readonly profile: boolean;
  readonly cacheTiming: boolean;
  /** Folder for the model (and cache); created by the caller. */
  readonly dir: string;
  /** Best MatMul GFLOP/s measured in this run (null when that part did not run). */
  readonly matmulGflops: number | null;
}

export interface UNetSizeReport {
  readonly imageSize: number;
  readonly latentSize: number;
  readonly batch: number;
  /** Median of the timed steps. */
  readonly secondsPerStep: number;
  readonly bestSeconds: number;
  readonly stepSeconds: readonly number[];
  readonly warmupSeconds: number;
  readonly tflopPerStep: number;
  readonly flopBreakdownG: {
    readonly conv: number;
    readonly matmul: number;
    readonly attention: number;
    readonly otherGElements: number;
  };
  /** FLOPs / median step time. */
  readonly achievedGflops: number;
  /** FLOPs / fastest step time. */
  readonly achievedGflopsBest: number;
  /** achievedGflops / the best measured MatMul GFLOP/s (goal >= 0.7). */
  readonly ratioToMatMul: number | null;
  readonly peakRssMiB: number;
}

export interface UNetReport {
  readonly config: string;
  readonly nodes: number;
  readonly weights: number;
  readonly weightsMiB: number;
  readonly buildSeconds: number;
  readonly writeSeconds: number;
  readonly writePeakRssMiB: number;
  readonly parentMaxRssMiB: number;
  readonly session: {
    readonly createSecondsCold: number;
    readonly rssAfterCreateMiB: number;
    readonly peakRssCreateMiB: number;
    readonly maxRssMiB: number;
    /** Peak RSS of the session process over the weights' size (goal <= 1.3). */
    readonly maxRssOverWeights: number;
    readonly cpuSeconds: number;
    readonly wallSeconds: number;
    /** CPU time over wall time x threads: well below 1 means the cores were shared (or idle in single-threaded phases). */
    readonly cpuUtilization: number;
    readonly profiled: boolean;
  };
  readonly sizes: readonly UNetSizeReport[];
  readonly cache: Record<string, unknown>;
  readonly profile: unknown;
}

export function sd15Config(): UNet2DConditionModelConfig {
  return parseUNet2DConditionModelConfig("sd15 (diffusers defaults + cross_attention_dim 768)", {
    cross_attention_dim: 768,
  }).config;
}

/** Builds the UNet into `g` with random weights; returns the weight bytes. */
export function buildRandomUNet(g: GraphBuilder, config: UNet2DConditionModelConfig): number {
  const w = WeightScope.bind(g, randomWeights({ seed: 0 }));
  buildUNet2DConditionModel(w, config);
  return g.initializers.reduce((sum, i) => sum + numel(i.shape) * BYTES_PER_ELEMENT[i.dtype], 0);
}

export function countFor(config: UNet2DConditionModelConfig, latent: number): ReturnType<typeof countFlops> {
  const dims = { batch: CFG_BATCH, sequence: TEXT_LENGTH, height: latent, width: latent };
  const g = new ConcreteDimsGraphBuilder(dims, { name: "unet" });
  buildRandomUNet(g, config);
  const report = countFlops(g, dims);
  if (report.unresolved.length > 0)
    throw new Error(
      `FLOP count left ${report.unresolved.length} nodes unresolved (first: ${report.unresolved[0]})`,
    );
  return report;
}

export async function benchUNet(options: UNetBenchOptions): Promise<UNetReport> {
  const config = sd15Config();
  const started = performance.now();
  const graph = new GraphBuilder({ name: "unet" });
  const weightBytes = buildRandomUNet(graph, config);
  const buildSeconds = (performance.now() - started) / 1000;
  log(
    `UNet built: ${graph.nodes.length} nodes, ${graph.initializers.length} weights, ${mib(weightBytes)} MiB`,
  );
  const free = await statfs(options.dir).then((s) => s.bavail * s.bsize);
  const needed = weightBytes * (options.cacheTiming ? 2.6 : 1.3);
  if (free < needed)
    throw new Error(
      `only ${mib(free)} MiB free in ${options.dir}; the model${options.cacheTiming ? " and its cache" : ""} need ~${mib(needed)} MiB`,
    );

  const sampler = new RssSampler(100);
  const modelPath = join(options.dir, "unet.onnx");
  const writeStart = performance.now();
  const written = await writeModel(graph, modelPath, { durable: false });
  const writeSeconds = (performance.now() - writeStart) / 1000;
  const writePeakRss = sampler.peakMiB();
  await sampler.stop();
  log(
    `model written in ${writeSeconds.toFixed(1)} s (${mib(written.dataBytes)} MiB data, parent peak RSS ${writePeakRss} MiB)`,
  );

  const latentSizes = [...options.imageSizes].sort((a, b) => a - b).map((s) => s / 8);
  const job: SessionJob = {
    mode: "steps",
    modelPath,
    threads: options.threads,
    latentSizes,
    batch: CFG_BATCH,
    runs: options.runs,
    contextShape: [TEXT_LENGTH, Number(config.cross_attention_dim)],
    ...(options.profile ? { profileDir: join(options.dir, "profile") } : {}),
  };
  // A child process keeps the parent's memory (graph, FLOP counting) out of the session's peak RSS.
  const session = (await runChild("./unet-session.ts", job)) as SessionResult;

  const sizes: UNetSizeReport[] = [];
  for (const step of session.steps) {
    const flops = countFor(config, step.latentSize);
    const achieved = flops.flops / 1e9 / step.medianSeconds;
    sizes.push({
      imageSize: step.latentSize * 8,
      latentSize: step.latentSize,
      batch: CFG_BATCH,
      secondsPerStep: step.medianSeconds,
      bestSeconds: step.bestSeconds,
      stepSeconds: step.stepSeconds,
      warmupSeconds: step.warmupSeconds,
      tflopPerStep: round(flops.flops / 1e12),
      flopBreakdownG: {
        conv: round(flops.conv / 1e9),
        matmul: round(flops.matmul / 1e9),
        attention: round(flops.attention / 1e9),
        otherGElements: round(flops.otherElements / 1e9),
      },
      achievedGflops: round(achieved),
      achievedGflopsBest: round(flops.flops / 1e9 / step.bestSeconds),
      ratioToMatMul: options.matmulGflops === null ? null : round(achieved / options.matmulGflops, 3),
      peakRssMiB: step.peakRssMiB,
    });
  }

  const cache = options.cacheTiming
    ? await cacheTiming(modelPath, options)
    : { result: null, reason: "skipped (--no-cache-timing)" };
  return {
    config: "SD-1.5 UNet2DConditionModel (diffusers defaults, cross_attention_dim 768), random weights, fp32",
    nodes: graph.nodes.length,
    weights: graph.initializers.length,
    weightsMiB: mib(weightBytes),
    buildSeconds: round(buildSeconds),
    writeSeconds: round(writeSeconds),
    writePeakRssMiB: writePeakRss,
    parentMaxRssMiB: maxRssMiB(),
    session: {
      createSecondsCold: session.createSeconds,
      rssAfterCreateMiB: session.rssAfterCreateMiB,
      peakRssCreateMiB: session.peakRssCreateMiB,
      maxRssMiB: session.maxRssMiB,
      maxRssOverWeights: round(session.maxRssMiB / mib(weightBytes), 3),
      cpuSeconds: session.cpuSeconds,
      wallSeconds: session.wallSeconds,
      cpuUtilization: round(session.cpuSeconds / (session.wallSeconds * options.threads), 3),
      profiled: options.profile,
    },
    sizes,
    cache,
    profile: session.profile ?? { result: null, reason: "run with --profile" },
  };
}

async function cacheTiming(modelPath: string, options: UNetBenchOptions): Promise<Record<string, unknown>> {
  const smallest = Math.min(...options.imageSizes) / 8;
  const job: SessionJob = {
    mode: "create",
    modelPath,
    threads: options.threads,
    latentSizes: [],
    batch: CFG_BATCH,
    runs: 0,
    contextShape: [TEXT_LENGTH, 768],
    cacheDir: join(options.dir, "ort-cache"),
  };
  try {
    const write = (await runChild("./unet-session.ts", job)) as SessionResult;
    // The cache hit also runs warm-up + 1 step: a cached model must run as fast as a fresh one.
    const hit = (await runChild("./unet-session.ts", {
      ...job,
      latentSizes: [smallest],
      runs: 1,
    })) as SessionResult;
    const step = hit.steps[0];
    return {
      firstCreateSeconds: write.createSeconds,
      firstStatus: write.cacheStatus ?? null,
      firstMaxRssMiB: write.maxRssMiB,
      cachedCreateSeconds: hit.createSeconds,
      cachedStatus: hit.cacheStatus ?? null,
      cachedRssAfterCreateMiB: hit.rssAfterCreateMiB,
      cachedMaxRssMiB: hit.maxRssMiB,
      cachedStep: step
        ? { latentSize: step.latentSize, warmupSeconds: step.warmupSeconds, seconds: step.medianSeconds }
        : null,
    };
  } catch (error) {
    return { result: null, reason: reasonOf(error) };
  }
}
