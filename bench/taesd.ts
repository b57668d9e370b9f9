/**
 * The `taesd` part (issue 10, the VAE share of a video's time): one 512x512 frame decoded (and one
 * image encoded) by the SD-1.5 AutoencoderKL and by a Tiny AutoEncoder (TAESD, diffusers'
 * AutoencoderTiny default config = madebyollin/taesd's architecture), both with random weights, in
 * this process: seconds per call after one warm-up, median of `runs`.
 */
import { loadavg } from "node:os";
import { defaultAutoencoderTinyConfig } from "../src/models/vae-tiny/config.js";
import { AutoencoderTiny } from "../src/models/vae-tiny/runner.js";
import { randomWeights } from "../src/nn/weight-store.js";
import { TorchGenerator } from "../src/random/torch-generator.js";
import type { HostTensor } from "../src/tensor.js";
import { loadVae } from "./sd15-components.js";
import { log, round } from "./stats.js";

export interface TaesdBenchOptions {
  readonly threads: number;
  readonly runs: number;
  /** Square image size (default 512). */
  readonly size?: number;
}

async function timed(
  runs: number,
  fn: () => Promise<unknown>,
): Promise<{ seconds: number[]; median: number }> {
  await fn(); // warm-up: the first run at a shape pays for allocations
  const seconds: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await fn();
    seconds.push(round((performance.now() - started) / 1000, 4));
  }
  const sorted = [...seconds].sort((a, b) => a - b);
  return { seconds, median: sorted[Math.floor(sorted.length / 2)] ?? 0 };
}

export async function benchTaesd(options: TaesdBenchOptions): Promise<Record<string, unknown>> {
  const size = options.size ?? 512;
  const runs = Math.max(1, options.runs);
  const loadStart = loadavg();
  const generator = new TorchGenerator(0n);
  const latents = generator.randn([1, 4, size / 8, size / 8]) as HostTensor<"float32">;
  const image = generator.randn([1, 3, size, size]) as HostTensor<"float32">;

  const full = await loadVae(options.threads);
  let fullDecode;
  let fullEncode;
  try {
    log(`taesd: AutoencoderKL decode/encode at ${size}x${size}`);
    fullDecode = await timed(runs, () => full.decode(latents));
    fullEncode = await timed(runs, () => full.encode(image));
  } finally {
    await full.release();
  }
  const tiny = await AutoencoderTiny.load(
    {
      config: defaultAutoencoderTinyConfig(),
      configName: "AutoencoderTiny defaults",
      decoder: { store: randomWeights({ seed: 7 }), weightsId: null },
      encoder: { store: randomWeights({ seed: 8 }), weightsId: null },
    },
    { intraOpNumThreads: options.threads },
  );
  let tinyDecode;
  let tinyEncode;
  try {
    log(`taesd: AutoencoderTiny decode/encode at ${size}x${size}`);
    tinyDecode = await timed(runs, () => tiny.decode(latents));
    tinyEncode = await timed(runs, () => tiny.encode(image));
  } finally {
    await tiny.release();
  }
  return {
    size,
    runs,
    threads: options.threads,
    autoencoderKL: { decodeSeconds: fullDecode, encodeSeconds: fullEncode },
    autoencoderTiny: { decodeSeconds: tinyDecode, encodeSeconds: tinyEncode },
    decodeSpeedup: round(fullDecode.median / Math.max(1e-9, tinyDecode.median), 3),
    encodeSpeedup: round(fullEncode.median / Math.max(1e-9, tinyEncode.median), 3),
    loadAverage: { start: loadStart.map((x) => round(x, 3)), end: loadavg().map((x) => round(x, 3)) },
    notes: [
      "Random weights: the time does not depend on the values. The tiny decoder's images are close to the full VAE's, not equal (TAESD is distilled from it).",
      "AutoencoderKL encode = the posterior's mean and logvar (the sample is drawn outside the graph); AutoencoderTiny encode gives the latents directly.",
    ],
  };
}
