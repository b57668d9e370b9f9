/**
 * Child process of the Uni-ControlNet benchmark (uni.ts): the full-size uni_v15 model with random
 * weights (src/models/uni-controlnet loadUniControlNet with a synthesizing store), one step at the given
 * size with CFG batch 2 — local adapter on [2, 21, S, S] maps then the UNet with its 13 residuals —
 * against the plain UNet step (the same UNet, no residuals fed: zeros), alternated, warm-up 1, N each.
 * Prints one JSON object (UniResult).
 */
import { UNI_V15_CONFIG } from "../src/models/uni-controlnet/config.js";
import { loadUniControlNet } from "../src/models/uni-controlnet/runner.js";
import { randomWeights } from "../src/nn/weight-store.js";
import { tensor } from "../src/tensor.js";
import { RssSampler, maxRssMiB } from "./rss.js";
import { log, median, round } from "./stats.js";

export interface UniJob {
  readonly threads: number;
  readonly dir: string;
  readonly size: number;
  readonly runs: number;
}

export interface UniResult {
  readonly loadSeconds: number;
  readonly plainUNetSeconds: readonly number[];
  readonly uniSeconds: readonly number[];
  readonly localAdapterSeconds: readonly number[];
  readonly plainMedian: number;
  readonly uniMedian: number;
  readonly localAdapterMedian: number;
  /** uniMedian / plainMedian. */
  readonly ratio: number;
  readonly peakRssMiB: number;
  readonly maxRssMiB: number;
}

const rand = (shape: number[], scale = 1): ReturnType<typeof tensor<"float32">> => {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (Math.random() * 2 - 1) * scale;
  return tensor("float32", shape, data);
};

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? "{}") as UniJob;
  const sampler = new RssSampler(100);
  const t0 = performance.now();
  const uni = await loadUniControlNet(
    { store: randomWeights({ seed: 0 }) },
    { config: UNI_V15_CONFIG, intraOpNumThreads: job.threads, cacheDir: job.dir },
  );
  const loadSeconds = (performance.now() - t0) / 1000;
  log(`uni: loaded in ${loadSeconds.toFixed(1)} s`);
  const latent = job.size / 8;
  const sample = rand([2, 4, latent, latent]);
  const timestep = tensor("float32", [2], new Float32Array([500, 500]));
  const context = rand([2, 81, 768], 0.5);
  const maps = rand([2, 21, job.size, job.size]);
  const plain = async (): Promise<number> => {
    const t = performance.now();
    await uni.unet.forward({ sample, timestep, encoderHiddenStates: context });
    return (performance.now() - t) / 1000;
  };
  const full = async (): Promise<[number, number]> => {
    const t = performance.now();
    const r = await uni.localAdapter.forward({
      sample,
      timestep,
      encoderHiddenStates: context,
      controlnetCond: maps,
      conditioningScale: 1,
    });
    const local = (performance.now() - t) / 1000;
    await uni.unet.forward({
      sample,
      timestep,
      encoderHiddenStates: context,
      downBlockAdditionalResiduals: r.downBlockResSamples,
      midBlockAdditionalResidual: r.midBlockResSample,
    });
    return [(performance.now() - t) / 1000, local];
  };
  await plain();
  await full();
  const p: number[] = [];
  const u: number[] = [];
  const l: number[] = [];
  for (let i = 0; i < job.runs; i++) {
    p.push(await plain());
    const [total, local] = await full();
    u.push(total);
    l.push(local);
    log(
      `uni: run ${i + 1}: plain UNet ${p[i]?.toFixed(2)} s, Uni step ${total.toFixed(2)} s (local adapter ${local.toFixed(2)} s)`,
    );
  }
  await uni.release();
  const result: UniResult = {
    loadSeconds: round(loadSeconds),
    plainUNetSeconds: p.map((x) => round(x)),
    uniSeconds: u.map((x) => round(x)),
    localAdapterSeconds: l.map((x) => round(x)),
    plainMedian: round(median(p)),
    uniMedian: round(median(u)),
    localAdapterMedian: round(median(l)),
    ratio: round(median(u) / median(p), 3),
    peakRssMiB: sampler.peakMiB(),
    maxRssMiB: maxRssMiB(),
  };
  await sampler.stop();
  process.stdout.write(JSON.stringify(result));
}

await main();
