/**
 * Child process of the LCM benchmark (lcm.ts). Prints one JSON object (LcmResult) on stdout.
 *
 * 1. LoRA fusing: the synthetic 144-layer kohya file is placed on the full-size SD-1.5 UNet's keys
 *    (src/weights/lora applyLoras) and every fused weight is computed once (what writing the fused
 *    model does), timed.
 * 2. The video: the UNet with that LoRA fused (ControlNet residual inputs), an SD-1.5-architecture
 *    ControlNet and the VAE (random weights), the LCM scheduler with `steps` steps and guidance
 *    `guidance` (1: no CFG batch, as LCM-LoRA is used), `generateVideo` over the synthetic clip with
 *    the given strategy and batch; fixed random prompt embeddings stand in for CLIP.
 */
import type { AnchorCacheStats } from "../src/engine/anchor-cache.js";
import { MemoryFrameStore } from "../src/engine/frame-store.js";
import { generateVideo } from "../src/engine/generate-video.js";
import { cannyAnnotator } from "../src/engine/methods/annotator.js";
import { SourceVideo } from "../src/engine/source.js";
import { type Strategy, strategyMethods, strategyName } from "../src/engine/strategies.js";
import { GraphBuilder } from "../src/graph/builder.js";
import { loadControlNetModel } from "../src/models/controlnet/index.js";
import { buildUNet2DConditionModel } from "../src/models/unet/build.js";
import { loadUNet2DConditionModel } from "../src/models/unet/runner.js";
import { AutoencoderKL } from "../src/models/vae/autoencoder-kl.js";
import { defaultAutoencoderTinyConfig } from "../src/models/vae-tiny/config.js";
import { AutoencoderTiny } from "../src/models/vae-tiny/runner.js";
import { type WeightStore, randomWeights } from "../src/nn/weight-store.js";
import { WeightScope } from "../src/nn/weights.js";
import { vaeLatentEncoder } from "../src/pipeline/stable-diffusion.js";
import { TorchGenerator } from "../src/random/torch-generator.js";
import { fromConfig } from "../src/schedulers/registry.js";
import { applyLoras } from "../src/weights/lora/index.js";
import { RssSampler, maxRssMiB, rssMiB } from "./rss.js";
import { SD15_SCHEDULER, SD15_VAE, sd15ControlNetConfig } from "./sd15-components.js";
import { log, round } from "./stats.js";
import { sd15Config } from "./unet.js";

export interface LcmJob {
  readonly threads: number;
  readonly dir: string;
  readonly lora: string;
  readonly source: string;
  readonly size: number;
  readonly frames: number;
  readonly steps: number;
  readonly guidance: number;
  readonly batch: number;
  readonly strategy: Strategy;
  /** Decode (and encode) with a TAESD-architecture AutoencoderTiny instead of the SD-1.5 VAE. */
  readonly tinyVae: boolean;
}

export interface LcmResult {
  readonly lora: { readonly modules: number; readonly placeSeconds: number; readonly fuseSeconds: number };
  readonly loadSeconds: number;
  readonly wallSeconds: number;
  readonly secondsPerFrame: number;
  readonly unetCalls: number;
  readonly unetSeconds: number;
  readonly controlnetSeconds: number;
  readonly vaeSeconds: number;
  readonly strategy: string;
  readonly vae: "AutoencoderKL" | "AutoencoderTiny";
  /** Frame-steps the UNet denoised (anchors the cache did not cover included). */
  readonly unetFrameSteps: number;
  readonly anchorCache: AnchorCacheStats | null;
  readonly peakRssMiB: number;
  readonly maxRssMiB: number;
}

/** Random SD-1.5 UNet weights with the key list the UNet graph asks for (LoRAs need keys to match). */
function keyedRandomUNet(): WeightStore {
  const random = randomWeights({ seed: 0 });
  const g = new GraphBuilder({ name: "keys" });
  buildUNet2DConditionModel(WeightScope.bind(g, random), sd15Config());
  const shapes = new Map<string, number[]>();
  for (const i of g.initializers) {
    // Linear weights (the UNet's only 2-D weights) are bound transposed: the checkpoint has [out, in].
    const linear = i.shape.length === 2;
    shapes.set(i.name, linear ? [Number(i.shape[1]), Number(i.shape[0])] : i.shape.map(Number));
  }
  return {
    name: "random SD-1.5 UNet (listed keys)",
    keys: () => shapes.keys(),
    info: (key) => {
      const shape = shapes.get(key);
      return shape ? { dtype: "float32", shape } : undefined;
    },
    source: (key) => random.synthesize!(key, shapes.get(key) ?? [], "float32"),
  };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? "{}") as LcmJob;
  const sampler = new RssSampler(100);
  const base = keyedRandomUNet();
  const t0 = performance.now();
  const applied = await applyLoras([{ path: job.lora, scale: 1 }], {
    unet: { store: base, weightsId: null },
  });
  const placeSeconds = (performance.now() - t0) / 1000;
  const fused = applied.models.unet!.store;
  const t1 = performance.now();
  const touched = [...new Set(applied.modules.map((m) => m.weightKey))];
  for (const key of touched) await fused.source(key).load();
  const fuseSeconds = (performance.now() - t1) / 1000;
  log(
    `lcm: ${applied.modules.length} LoRA modules placed in ${placeSeconds.toFixed(2)} s, fused in ${fuseSeconds.toFixed(2)} s`,
  );

  const common = { intraOpNumThreads: job.threads, cacheDir: job.dir };
  const t2 = performance.now();
  const unet = await loadUNet2DConditionModel(
    { config: sd15Config(), store: fused },
    { ...common, residuals: true, ...crossFrameOf(job) },
  );
  const controlnet = await loadControlNetModel(
    { config: sd15ControlNetConfig(), store: randomWeights({ seed: 3 }) },
    { ...common, broadcastPooled: true, ...crossFrameOf(job) },
  );
  const vae = job.tinyVae
    ? await AutoencoderTiny.load(
        {
          config: defaultAutoencoderTinyConfig(),
          configName: "AutoencoderTiny defaults",
          decoder: { store: randomWeights({ seed: 7 }), weightsId: null },
          encoder: { store: randomWeights({ seed: 8 }), weightsId: null },
        },
        common,
      )
    : await AutoencoderKL.load({ config: SD15_VAE, store: randomWeights({ seed: 2 }) }, common);
  const loadSeconds = (performance.now() - t2) / 1000;
  log(`lcm: models loaded in ${loadSeconds.toFixed(1)} s (rss ${rssMiB()} MiB)`);
  const timers = { unet: 0, unetCalls: 0, unetFrameSteps: 0, controlnet: 0, vae: 0 };
  const timed = async <T>(key: "unet" | "controlnet" | "vae", fn: () => Promise<T>): Promise<T> => {
    const s = performance.now();
    const r = await fn();
    timers[key] += (performance.now() - s) / 1000;
    if (key === "unet") timers.unetCalls++;
    return r;
  };
  const g = new TorchGenerator(7);
  const cond = g.randn([1, 77, 768]);
  const uncond = g.randn([1, 77, 768]);
  const source = await SourceVideo.open(job.source, {
    width: job.size,
    height: job.size,
    maxFrames: job.frames,
  });
  const methods = strategyMethods(job.strategy, {
    annotators: [cannyAnnotator()],
    videos: job.guidance > 1 ? 2 : 1,
    source,
  });
  const started = performance.now();
  let stats: AnchorCacheStats | null = null;
  try {
    const result = await generateVideo(
      {
        tokenizer: { tokenize: () => Promise.reject(new Error("no text encoder")) as never },
        textEncoder: { encode: () => Promise.reject(new Error("no text encoder")) },
        // the anchor cache is used when every model says it was built for it
        unet: {
          ...(unet.anchorCache === true ? { anchorCache: true } : {}),
          forward: (inputs) => {
            timers.unetFrameSteps += inputs.sample.shape[0] ?? 0;
            return timed("unet", () => unet.forward(inputs));
          },
        },
        controlnets: [
          {
            ...(controlnet.anchorCache === true ? { anchorCache: true } : {}),
            forward: (inputs) => timed("controlnet", () => controlnet.forward(inputs)),
          },
        ],
        vae: {
          scalingFactor: vae.scalingFactor,
          decode: (z) => timed("vae", () => vae.decode(z, { batchSize: 1 })),
        },
        encoder: vaeLatentEncoder(vae),
        makeScheduler: () => fromConfig("LCMScheduler", SD15_SCHEDULER),
        vaeScaleFactor: 8,
        latentChannels: 4,
      },
      {
        prompt: "a red car on a road",
        promptEmbeds: { cond, uncond },
        width: job.size,
        height: job.size,
        frames: job.frames,
        numInferenceSteps: job.steps,
        guidanceScale: job.guidance,
        seed: 0,
        methods,
        batch: job.batch,
        source,
        controls: [{ scale: 1 }],
        store: new MemoryFrameStore(),
        onFrame: (i) => log(`lcm: frame ${i} at ${((performance.now() - started) / 1000).toFixed(1)} s`),
      },
    );
    stats = result.anchorCache ?? null;
  } finally {
    await source.close();
  }
  const wall = (performance.now() - started) / 1000;
  await unet.release();
  await controlnet.release();
  await vae.release();
  const result: LcmResult = {
    lora: {
      modules: applied.modules.length,
      placeSeconds: round(placeSeconds),
      fuseSeconds: round(fuseSeconds),
    },
    loadSeconds: round(loadSeconds),
    wallSeconds: round(wall),
    secondsPerFrame: round(wall / job.frames),
    unetCalls: timers.unetCalls,
    unetSeconds: round(timers.unet),
    controlnetSeconds: round(timers.controlnet),
    vaeSeconds: round(timers.vae),
    strategy: strategyName(job.strategy),
    vae: job.tinyVae ? "AutoencoderTiny" : "AutoencoderKL",
    unetFrameSteps: timers.unetFrameSteps,
    anchorCache: stats,
    peakRssMiB: sampler.peakMiB(),
    maxRssMiB: maxRssMiB(),
  };
  await sampler.stop();
  process.stdout.write(JSON.stringify(result));
}

/** The strategy's cross-frame setting, built into the UNet and ControlNet graphs. */
function crossFrameOf(job: LcmJob): {
  crossFrame?: NonNullable<ReturnType<NonNullable<ReturnType<typeof strategyMethods>[number]["crossFrame"]>>>;
} {
  const methods = strategyMethods(job.strategy, {
    annotators: [cannyAnnotator()],
    videos: job.guidance > 1 ? 2 : 1,
  });
  const cf = methods.find((m) => m.crossFrame)?.crossFrame?.();
  return cf ? { crossFrame: cf } : {};
}

await main();
