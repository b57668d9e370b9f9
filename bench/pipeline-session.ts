/**
 * Child process of the pipeline benchmark (prints one JSON object on stdout):
 * - "components": times the SD-1.5 text encoder (CFG batch 2) and VAE decode (one 512x512 image):
 *   the first call (graph write + session creation + run) and a warm call.
 * - "full": a real `textToImage` run (all components, 512x512, CFG, DDIM) with per-call times.
 */
import { textToImage } from "../src/pipeline/text-to-image.js";
import { tensor } from "../src/tensor.js";
import { RssSampler, maxRssMiB } from "./rss.js";
import { type CallTimes, loadComponents, loadTextEncoder, loadVae } from "./sd15-components.js";
import { log, round } from "./stats.js";

export interface PipelineJob {
  readonly mode: "components" | "full";
  readonly threads: number;
  readonly steps: number;
  readonly imageSize: number;
}

async function components(job: PipelineJob): Promise<Record<string, unknown>> {
  const ids = tensor("int64", [2, 77], new BigInt64Array(154).fill(49407n));
  const time = async (fn: () => Promise<unknown>): Promise<number> => {
    const t = performance.now();
    await fn();
    return round((performance.now() - t) / 1000);
  };
  const clip = await loadTextEncoder(job.threads);
  const clipFirst = await time(() => clip.encode(ids));
  const clipWarm = await time(() => clip.encode(ids));
  log(`text encoder: first call ${clipFirst} s, warm ${clipWarm} s`);
  await clip.release();
  const vae = await loadVae(job.threads);
  const latent = job.imageSize / 8;
  const z = tensor(
    "float32",
    [1, 4, latent, latent],
    new Float32Array(4 * latent * latent).map(() => Math.random() * 2 - 1),
  );
  const vaeFirst = await time(() => vae.decode(z));
  log(`VAE decode ${job.imageSize}: first call ${vaeFirst} s`);
  const vaeWarm = await time(() => vae.decode(z));
  log(`VAE decode ${job.imageSize}: warm ${vaeWarm} s`);
  await vae.release();
  return {
    textEncoderFirstSeconds: clipFirst,
    textEncoderWarmSeconds: clipWarm,
    vaeDecodeFirstSeconds: vaeFirst,
    vaeDecodeWarmSeconds: vaeWarm,
  };
}

async function full(job: PipelineJob): Promise<Record<string, unknown>> {
  const times: CallTimes = { textEncoder: [], unet: [], vae: [] };
  const started = performance.now();
  const c = await loadComponents(job.threads, times);
  const loadSeconds = (performance.now() - started) / 1000;
  const runStart = performance.now();
  await textToImage(c, {
    prompt: "a photograph of an astronaut riding a horse",
    width: job.imageSize,
    height: job.imageSize,
    numInferenceSteps: job.steps,
    guidanceScale: 7.5,
    seed: 0,
    onProgress: (e) => {
      if (e.status === "progress")
        log(
          `pipeline: step ${e.done}/${e.total} (${times.unet[times.unet.length - 1]?.toFixed(1) ?? "?"} s)`,
        );
    },
  });
  const runSeconds = (performance.now() - runStart) / 1000;
  await c.release();
  const sum = (xs: number[]): number => round(xs.reduce((a, b) => a + b, 0));
  return {
    loadSeconds: round(loadSeconds),
    runSeconds: round(runSeconds),
    textEncoderSeconds: sum(times.textEncoder),
    unetSeconds: sum(times.unet),
    unetStepSeconds: times.unet.map((s) => round(s)),
    vaeDecodeSeconds: sum(times.vae),
    otherSeconds: round(runSeconds - sum(times.textEncoder) - sum(times.unet) - sum(times.vae)),
  };
}

async function main(): Promise<void> {
  const job: PipelineJob = JSON.parse(process.argv[2] ?? "{}");
  const sampler = new RssSampler(200);
  try {
    const result = job.mode === "full" ? await full(job) : await components(job);
    process.stdout.write(
      JSON.stringify({ ...result, peakRssMiB: sampler.peakMiB(), maxRssMiB: maxRssMiB() }),
    );
  } finally {
    await sampler.stop();
  }
}

await main();
