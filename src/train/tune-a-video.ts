/**
 * One-shot tuning of Tune-A-Video (showlab/Tune-A-Video `train_tuneavideo.py`, `configs/*.yaml`,
 * `tuneavideo/data/dataset.py`) on one clip:
 *
 * - frames: `range(sample_start_idx, len(video), sample_frame_rate)[:n_sample_frames]`, each
 *   resized (stretched) to width x height, pixels / 127.5 - 1;
 * - each step: latents = VAE posterior sample * scaling_factor (a fresh sample per step, as the
 *   release encodes inside its loop), noise ~ N(0, 1), t ~ U{0, T-1}, noisy = add_noise, target =
 *   noise (epsilon) or get_velocity (v_prediction, from the scheduler config), loss = mse over all
 *   elements; gradients of attn1.to_q, attn2.to_q and attn_temp only; clip_grad_norm_ 1.0; AdamW
 *   lr 3e-5, betas (0.9, 0.999), weight decay 1e-2, eps 1e-8, constant lr; 500 steps;
 * - the result is saved as the release saves it: a pipeline folder (model_index.json, the base
 *   model's other components) whose unet/ holds the UNet3DConditionModel config.json and weights
 *   (diffusion_pytorch_model.safetensors: the 2D keys plus every `*_temp.*` key), written atomically.
 *
 * Release defaults: n_sample_frames 24, stride 2, 512x512, seed 33, 500 steps (configs/man-skiing.yaml).
 * Cancelling (AbortSignal) after at least one step saves the steps done so far and returns.
 */
import { copyFile, link, mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { CancelledError, InvalidArgumentError } from "../errors.js";
import { readJsonFile } from "../config/parse.js";
import { AutoencoderKL } from "../models/vae/autoencoder-kl.js";
import { CLIPTextModel } from "../models/clip/clip-text-model.js";
import { unet3dConfigJson } from "../models/unet3d/config.js";
import { type ResolvedUNet3D, resolveUNet3D } from "../models/unet3d/source.js";
import { readPipelineFolder } from "../pipeline/components.js";
import { videoTensor } from "../pipeline/animatediff.js";
import type { LongTaskOptions } from "../progress.js";
import { TorchGenerator } from "../random/torch-generator.js";
import { makeNoiseTables } from "../schedulers/betas.js";
import { parseSchedulerConfig } from "../schedulers/config.js";
import { type HostTensor, tensor, toFloat32 } from "../tensor.js";
import { CLIPTokenizer } from "../tokenizer/clip-tokenizer.js";
import { withAtomicDir } from "../util/atomic-write.js";
import { readAllFrames } from "../video/read.js";
import { writeSafetensors } from "../weights/safetensors.js";
import { TrainingDivergedError } from "./loop/errors.js";
import { TUNE_A_VIDEO_TRAINABLE_MODULES, TuneAVideoStepper } from "./tune-a-video-graph.js";

/** The release's configs/man-skiing.yaml values (train_data + top level). */
export const TUNE_A_VIDEO_DEFAULTS = {
  nSampleFrames: 24,
  sampleStartIdx: 0,
  sampleFrameRate: 2,
  width: 512,
  height: 512,
  maxTrainSteps: 500,
  learningRate: 3e-5,
  seed: 33,
} as const;

export interface TuneAVideoStepEvent {
  /** 1-based step just finished. */
  readonly step: number;
  readonly total: number;
  readonly loss: number;
}

export interface TuneAVideoOptions extends LongTaskOptions {
  /** A Stable Diffusion 1.x/2.x diffusers folder (or a Tune-A-Video checkpoint, to tune further). */
  readonly model: string;
  /** The clip to tune on (a video file or a PNG sequence folder). */
  readonly video: string;
  /** The clip's caption (train_data.prompt). */
  readonly prompt: string;
  /** Output folder (a new path; the release's `output_dir`). */
  readonly out: string;
  /** (optional, default 500) max_train_steps. */
  readonly maxTrainSteps?: number;
  /** (optional, default 24) n_sample_frames. */
  readonly nSampleFrames?: number;
  /** (optional, default 0) sample_start_idx. */
  readonly sampleStartIdx?: number;
  /** (optional, default 2) sample_frame_rate (take every n-th frame). */
  readonly sampleFrameRate?: number;
  /** (optional, default 512) multiples of 8 * the VAE factor are safest. */
  readonly width?: number;
  readonly height?: number;
  /** (optional, default 3e-5) */
  readonly learningRate?: number;
  /** (optional, default 33) seeds the temporal-layer init, the VAE samples, noise and timesteps. */
  readonly seed?: number;
  /** (optional, default the release's) module-name suffixes to train. */
  readonly trainableModules?: readonly string[];
  /** (optional) called after every step. */
  readonly onStep?: (event: TuneAVideoStepEvent) => void;
}

export interface TuneAVideoResult {
  readonly out: string;
  /** Steps done (fewer than asked when cancelled). */
  readonly steps: number;
  readonly losses: readonly number[];
  readonly cancelled: boolean;
  /** Frames of the clip tuned on, and the latent shape [1, C, F, h, w]. */
  readonly frames: number;
  readonly latentShape: readonly number[];
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new InvalidArgumentError(name, "a positive integer", v);
  return v;
}

/** [N, C, h, w] -> [1, C, N, h, w]. */
export function framesToVideo(t: HostTensor<"float32">): HostTensor<"float32"> {
  const [n = 0, c = 0, h = 0, w = 0] = t.shape;
  const hw = h * w;
  const out = new Float32Array(t.data.length);
  for (let f = 0; f < n; f++)
    for (let ch = 0; ch < c; ch++)
      out.set(t.data.subarray((f * c + ch) * hw, (f * c + ch + 1) * hw), (ch * n + f) * hw);
  return tensor("float32", [1, c, n, h, w], out);
}

/** Hard-links (or copies) every file of `from` into `to`, recursively. */
async function linkTree(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const src = join(from, entry.name);
    const dst = join(to, entry.name);
    if (entry.isDirectory()) await linkTree(src, dst);
    else if (entry.isFile()) await link(src, dst).catch(() => copyFile(src, dst));
  }
}

/** Every tensor of the tuned UNet in checkpoint layout: the source's, with the trained ones replaced. */
async function tunedTensors(
  unet: ResolvedUNet3D,
  trained: ReadonlyMap<string, HostTensor<"float32">>,
): Promise<Map<string, HostTensor>> {
  const out = new Map<string, HostTensor>();
  for (const key of unet.store.keys())
    out.set(key, trained.get(key) ?? (await unet.store.source(key).load()));
  return out;
}

/**
 * Writes a tuned pipeline folder: model_index.json (unet = UNet3DConditionModel), the base model's
 * other components (hard links where possible), unet/config.json + diffusion_pytorch_model.safetensors.
 */
export async function saveTunedPipeline(
  out: string,
  base: { readonly dir: string; readonly components: ReadonlyMap<string, { readonly dir: string }> },
  unet: ResolvedUNet3D,
  trained: ReadonlyMap<string, HostTensor<"float32">>,
  options: { readonly signal?: AbortSignal; readonly extra?: Readonly<Record<string, unknown>> } = {},
): Promise<void> {
  await withAtomicDir(
    out,
    async (temp) => {
      const index = await readJsonFile(join(base.dir, "model_index.json"), "model index");
      const indexJson: Record<string, unknown> =
        typeof index === "object" && index !== null ? { ...(index as Record<string, unknown>) } : {};
      indexJson["unet"] = ["tuneavideo.models.unet", "UNet3DConditionModel"];
      await writeFile(join(temp, "model_index.json"), `${JSON.stringify(indexJson, null, 2)}\n`);
      for (const [name, c] of base.components) if (name !== "unet") await linkTree(c.dir, join(temp, name));
      await mkdir(join(temp, "unet"));
      await writeFile(
        join(temp, "unet", "config.json"),
        `${JSON.stringify(unet3dConfigJson(unet.raw), null, 2)}\n`,
      );
      await writeSafetensors(
        join(temp, "unet", "diffusion_pytorch_model.safetensors"),
        await tunedTensors(unet, trained),
        {
          format: "pt",
        },
      );
      if (options.extra)
        await writeFile(join(temp, "tune_a_video.json"), `${JSON.stringify(options.extra, null, 2)}\n`);
    },
    options.signal ? { signal: options.signal } : {},
  );
}

/** Tunes the inflated UNet on one clip and saves the tuned pipeline (see the module comment). */
export async function tuneAVideo(options: TuneAVideoOptions): Promise<TuneAVideoResult> {
  const d = TUNE_A_VIDEO_DEFAULTS;
  const steps = positiveInt("maxTrainSteps", options.maxTrainSteps ?? d.maxTrainSteps);
  const nFrames = positiveInt("nSampleFrames", options.nSampleFrames ?? d.nSampleFrames);
  const stride = positiveInt("sampleFrameRate", options.sampleFrameRate ?? d.sampleFrameRate);
  const start = options.sampleStartIdx ?? d.sampleStartIdx;
  const width = positiveInt("width", options.width ?? d.width);
  const height = positiveInt("height", options.height ?? d.height);
  const lr = options.learningRate ?? d.learningRate;
  if (!(lr > 0)) throw new InvalidArgumentError("learningRate", "a positive number", lr);
  const seed = options.seed ?? d.seed;
  if ((await stat(options.out).catch(() => undefined)) !== undefined) {
    throw new InvalidArgumentError("out", "a path that does not exist yet", options.out, {
      hint: "choose a new output folder or remove the old one first",
    });
  }
  const signal = options.signal;
  const progress = (done: number, total: number, task: string): void =>
    options.onProgress?.({ status: "progress", task, done, total });

  // Components of the base model (tokenizer, text encoder, VAE, scheduler) and the inflated UNet.
  const folder = await readPipelineFolder(options.model, { requireWeights: false });
  const dirOf = (name: "vae" | "text_encoder" | "tokenizer" | "scheduler" | "unet"): string => {
    const c = folder.components.get(name);
    if (!c)
      throw new InvalidArgumentError("model", `a pipeline folder with a ${name} component`, options.model);
    return c.dir;
  };
  const schedulerPath = join(dirOf("scheduler"), "scheduler_config.json");
  const { config: sched } = parseSchedulerConfig(
    "DDPMScheduler",
    await readJsonFile(schedulerPath, "scheduler config"),
    {
      file: schedulerPath,
    },
  );
  // diffusers 0.11.1 (the release) has no rescale_betas_zero_snr: the betas as configured.
  const { alphasCumprod } = makeNoiseTables({ ...sched, rescale_betas_zero_snr: false }, schedulerPath);

  // The clip, as TuneAVideoDataset samples it.
  options.onProgress?.({ status: "start", task: "reading the clip" });
  const frames = await readAllFrames(options.video, {
    start,
    stride,
    maxFrames: nFrames,
    resize: { width, height },
    ...(signal ? { signal } : {}),
  });
  if (frames.length < nFrames) {
    throw new InvalidArgumentError(
      "video",
      `at least ${nFrames} frames from frame ${start} every ${stride} frames`,
      `${frames.length} frames in ${options.video}`,
      { hint: "lower --frames (n_sample_frames) or the sample stride, or give a longer clip" },
    );
  }
  options.onProgress?.({ status: "done", task: "reading the clip" });

  const tokenizer = await CLIPTokenizer.fromPretrained(dirOf("tokenizer"));
  const textEncoder = await CLIPTextModel.load(dirOf("text_encoder"));
  const vae = await AutoencoderKL.load(dirOf("vae"), { compile: "first-use" });
  let promptEmbeds: HostTensor<"float32">;
  let posterior: { mean: HostTensor<"float32">; std: HostTensor<"float32"> };
  try {
    promptEmbeds = toFloat32(
      (await textEncoder.encode(tokenizer.encodeBatch([options.prompt]))).promptEmbeds,
    );
    const dist = await vae.encode(videoTensor(frames), signal ? { signal } : {});
    const mean = toFloat32(dist.mean);
    const logvar = toFloat32(dist.logvar);
    posterior = {
      mean,
      std: tensor(
        "float32",
        mean.shape,
        Float32Array.from(logvar.data, (v) => Math.fround(Math.exp(0.5 * v))),
      ),
    };
  } finally {
    await textEncoder.release();
    await vae.release();
  }
  const scaling = vae.scalingFactor;
  const latentShape = framesToVideo(posterior.mean).shape as [number, number, number, number, number];

  const unet = await resolveUNet3D(dirOf("unet"), { temporalSeed: seed });
  const stepper = await TuneAVideoStepper.open(
    unet.store,
    unet.config,
    {
      latentShape,
      sequence: promptEmbeds.shape[1] ?? 77,
      trainableModules: options.trainableModules ?? TUNE_A_VIDEO_TRAINABLE_MODULES,
      configFile: unet.configName,
    },
    { learningRate: lr },
  );
  const generator = new TorchGenerator(seed);
  const T = sched.num_train_timesteps;
  const vPred = sched.prediction_type === "v_prediction";
  const losses: number[] = [];
  let cancelled = false;
  try {
    options.onProgress?.({ status: "start", task: "tuning", total: steps });
    for (let step = 1; step <= steps; step++) {
      if (signal?.aborted) {
        cancelled = true;
        break;
      }
      // latents = posterior sample * scaling_factor, [1, C, F, h, w]
      const eps = generator.randn([...posterior.mean.shape]);
      const z = Float32Array.from(posterior.mean.data, (m, i) =>
        Math.fround(
          Math.fround(m + Math.fround((posterior.std.data[i] ?? 0) * (eps.data[i] ?? 0))) * scaling,
        ),
      );
      const latents = framesToVideo(tensor("float32", posterior.mean.shape, z));
      const noise = generator.randn(latentShape);
      const t = Math.min(T - 1, Math.floor((generator.rand([1]).data[0] ?? 0) * T));
      const a = alphasCumprod[t] ?? 0;
      const sa = Math.fround(Math.sqrt(a));
      const sb = Math.fround(Math.sqrt(Math.fround(1 - a)));
      const noisy = new Float32Array(latents.data.length);
      const target = new Float32Array(latents.data.length);
      for (let i = 0; i < noisy.length; i++) {
        const x = latents.data[i] ?? 0;
        const n = noise.data[i] ?? 0;
        noisy[i] = Math.fround(Math.fround(sa * x) + Math.fround(sb * n));
        target[i] = vPred ? Math.fround(Math.fround(sa * n) - Math.fround(sb * x)) : n;
      }
      const inputs = {
        noisy: tensor("float32", latentShape, noisy),
        timesteps: [t],
        encoderHiddenStates: promptEmbeds,
        target: tensor("float32", latentShape, target),
      };
      const result = await stepper.step(inputs, undefined, (loss, norm) => {
        const bad = !Number.isFinite(loss)
          ? ("loss" as const)
          : !Number.isFinite(norm)
            ? ("gradient norm" as const)
            : null;
        if (bad)
          throw new TrainingDivergedError(step, bad, bad === "loss" ? loss : norm, undefined, {
            hint: "nothing was saved; lower --lr or check the clip and the model",
          });
      });
      losses.push(result.loss);
      options.onStep?.({ step, total: steps, loss: result.loss });
      progress(step, steps, "tuning");
    }
    options.onProgress?.({ status: "done", task: "tuning" });
    if (cancelled && losses.length === 0)
      throw new CancelledError("Tune-A-Video tuning (no step was done, nothing saved)");
    options.onProgress?.({ status: "start", task: "saving" });
    await saveTunedPipeline(options.out, folder, unet, stepper.trainedWeights(), {
      extra: {
        prompt: options.prompt,
        video: resolve(options.video),
        n_sample_frames: nFrames,
        sample_start_idx: start,
        sample_frame_rate: stride,
        width,
        height,
        learning_rate: lr,
        max_train_steps: steps,
        steps_done: losses.length,
        seed,
        trainable_modules: options.trainableModules ?? TUNE_A_VIDEO_TRAINABLE_MODULES,
        losses,
      },
    });
    options.onProgress?.({ status: "done", task: "saving" });
  } finally {
    await stepper.release();
  }
  return { out: options.out, steps: losses.length, losses, cancelled, frames: nFrames, latentShape };
}
