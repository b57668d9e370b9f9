/**
 * `trainDiffusion(options)`: fine-tunes the UNet of a diffusers pipeline folder on video frames with
 * the denoising objective (objective.ts), as diffusers' examples/text_to_image/train_text_to_image.py
 * (0.26.3) does, or (`train: "controlnet"`) a ControlNet on the frames' Canny edges with the UNet
 * frozen, as examples/controlnet/train_controlnet.py, or (`train: "unet+controlnet"`) both together: AdamW (decoupled weight decay), gradient clipping by global norm, an lr schedule of
 * optimization.get_scheduler, one optimiser step per batch. Data: data.ts (latents cached on disk);
 * randomness: rng.ts (noise, timesteps and shuffles derived from the seed and the step, so a run
 * resumed from a checkpoint equals the uninterrupted run bit for bit); checkpoints: checkpoint.ts.
 *
 * Output folder: `checkpoints/step-N/` (the last `keepCheckpoints`), `loss.svg` (updated at every
 * save) and, when the run completes, a diffusers pipeline folder (model_index.json, the base model's
 * components, `unet/` and/or `controlnet/` with the trained weights) that every pipeline of Steadyframe
 * loads.
 * Cancellation (AbortSignal) saves a checkpoint of the steps done and throws CancelledError; a loss
 * or gradient norm that is not finite throws TrainingDivergedError and writes nothing.
 */
import { createHash } from "node:crypto";
import { cp, readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { CancelledError, InvalidArgumentError, throwIfAborted } from "../../errors.js";
import type { ParameterPattern } from "../../graph/autodiff/index.js";
import type { ModelLoadOptions } from "../../models/compiled-graph.js";
import { readCLIPTextConfig } from "../../models/clip/config.js";
import { readUNet2DConditionModelConfig } from "../../models/unet/config.js";
import { readAutoencoderKLConfig } from "../../models/vae/config.js";
import { findWeightsFile, readPipelineFolder } from "../../pipeline/components.js";
import { readControlNetModelConfig } from "../../models/controlnet/config.js";
import type { UNet2DConditionModelConfig } from "../../models/unet/config.js";
import type { TensorFileLike } from "../../nn/weight-store.js";
import { controlNetFromUNet } from "./controlnet-init.js";
import type { LongTaskOptions } from "../../progress.js";
import { readJsonFile } from "../../config/parse.js";
import { makeNoiseTables } from "../../schedulers/betas.js";
import { parseSchedulerConfig } from "../../schedulers/config.js";
import { type HostTensor, tensor, toFloat32 } from "../../tensor.js";
import { withAtomicDir, writeFileAtomic } from "../../util/atomic-write.js";
import { openSafetensors } from "../../weights/safetensors.js";
import { openGraphSession } from "../graph-session.js";
import {
  AdamW,
  type ScheduleName,
  clipGradNorm,
  globalGradNorm,
  learningRateSchedule,
} from "../optim/index.js";
import {
  type CheckpointRecord,
  CHECKPOINT_FORMAT,
  type RunFingerprint,
  type LoadedCheckpoint,
  type CheckpointComponent,
  listCheckpoints,
  loadCheckpoint,
  saveCheckpoint,
} from "./checkpoint.js";
import { type TrainingClip, gatherRows, prepareTrainingData } from "./data.js";
import { TrainingDivergedError } from "./errors.js";
import {
  CONTROLNET_PREFIX,
  type PredictionType,
  type TrainedControlNet,
  buildTrainingGraph,
  noiseBatch,
} from "./objective.js";
import { lossCurveSvg } from "./plot.js";
import { STREAM, batchItems, generatorFor } from "./rng.js";

/** What `trainDiffusion` trains. */
export type TrainedModels = "unet" | "controlnet" | "unet+controlnet";

export interface StepInfo {
  /** 1-based step just done. */
  readonly step: number;
  readonly totalSteps: number;
  readonly loss: number;
  /** Global gradient norm before clipping. */
  readonly gradNorm: number;
  /** Learning rate the step used. */
  readonly lr: number;
  readonly seconds: number;
}

export interface TrainOptions extends LongTaskOptions {
  /** A diffusers pipeline folder (unet, vae, text_encoder, tokenizer, scheduler). */
  readonly model: string;
  readonly clips: readonly TrainingClip[];
  /** Output folder (see the file comment). */
  readonly out: string;
  /** Total optimisation steps of the run (a resumed run continues up to this count). */
  readonly steps: number;
  /** (optional, default 1e-4) base learning rate. */
  readonly lr?: number;
  /** (optional, default 1) frames per step. */
  readonly batch?: number;
  /** (optional, default the UNet's sample_size x the VAE factor) frame size in pixels. */
  readonly width?: number;
  readonly height?: number;
  /** (optional, default every parameter) diffusers-key patterns of the trained model's parameters. */
  readonly trainable?: readonly ParameterPattern[];
  /**
   * (optional, default "unet") the model trained: the UNet, a ControlNet on Canny maps of the frames
   * with the UNet frozen (diffusers train_controlnet.py), or both together ("unet+controlnet": a
   * model trained from scratch learns to follow its control far sooner than with a frozen UNet).
   */
  readonly train?: TrainedModels;
  /**
   * (optional, default 0) share of the batch items whose caption is replaced by the empty prompt
   * (diffusers train_controlnet.py --proportion_empty_prompts), so that classifier-free guidance has a
   * trained unconditional prediction.
   */
  readonly emptyPrompts?: number;
  /**
   * (optional) the ControlNet to start from: a folder, or "from-unet" (diffusers
   * ControlNetModel.from_unet); default the model folder's controlnet/, else "from-unet".
   */
  readonly controlnet?: string;
  /** (optional, default 100, 200) Canny thresholds of the control maps. */
  readonly canny?: { readonly low: number; readonly high: number };
  /** (optional, default the scheduler config's prediction_type) training target. */
  readonly prediction?: PredictionType;
  /** (optional, default 0) diffusers' --noise_offset. */
  readonly noiseOffset?: number;
  /** (optional, default 0) seed of every random draw. */
  readonly seed?: bigint;
  /** (optional) continue from the newest checkpoint in `out` (refused when it belongs to another run). */
  readonly resume?: boolean;
  /** (optional, default: only at the end) save a checkpoint every N steps. */
  readonly saveEvery?: number;
  /** (optional, default 2) checkpoints kept. */
  readonly keepCheckpoints?: number;
  /** (optional, default 1; null: off) clip the gradients to this global norm. */
  readonly maxGradNorm?: number | null;
  /** (optional, default 1e-2) AdamW weight decay. */
  readonly weightDecay?: number;
  /** (optional, default "constant") lr schedule and its warm-up steps (default 0). */
  readonly lrScheduler?: ScheduleName;
  readonly warmupSteps?: number;
  /** (optional, default "mean") VAE latents: the distribution's mean, or one seeded sample per frame. */
  readonly latents?: "mean" | "sample";
  /** (optional, default `<out>/cache`) latent cache folder. */
  readonly cacheDir?: string;
  /** (optional) compile/run options of the VAE, text encoder and the training graph. */
  readonly load?: ModelLoadOptions;
  /** (optional, default true) write the diffusers folder into `out` when the run completes. */
  readonly publish?: boolean;
  /** (optional) called after every step with its loss. */
  readonly onStep?: (info: StepInfo) => void;
}

export interface TrainResult {
  readonly out: string;
  readonly steps: number;
  /** Loss of steps 1..steps (a resumed run includes the checkpoint's history). */
  readonly losses: readonly number[];
  readonly gradNorms: readonly number[];
  /** The last checkpoint folder. */
  readonly checkpoint: string;
  /** Mean wall time of the steps run in this call (seconds; model loading and data excluded). */
  readonly secondsPerStep: number;
  readonly trainableParameters: number;
}

function positiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isSafeInteger(v) || v < 1))
    throw new InvalidArgumentError(name, "a positive integer", v);
}

function positiveNumber(name: string, v: number | undefined, allowZero = false): void {
  if (v !== undefined && !(Number.isFinite(v) && (allowZero ? v >= 0 : v > 0)))
    throw new InvalidArgumentError(name, allowZero ? "a number >= 0" : "a positive number", v);
}

async function fileKey(path: string): Promise<string> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new InvalidArgumentError("clips", "video files that exist", path);
  return `${resolve(path)}:${info.size}:${Math.round(info.mtimeMs)}`;
}

function sha(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Trains (see the file comment). */
export async function trainDiffusion(options: TrainOptions): Promise<TrainResult> {
  positiveInt("steps", options.steps);
  positiveInt("batch", options.batch);
  positiveInt("saveEvery", options.saveEvery);
  positiveInt("keepCheckpoints", options.keepCheckpoints);
  positiveNumber("lr", options.lr);
  positiveNumber("noiseOffset", options.noiseOffset, true);
  const emptyPrompts = options.emptyPrompts ?? 0;
  if (!(Number.isFinite(emptyPrompts) && emptyPrompts >= 0 && emptyPrompts <= 1))
    throw new InvalidArgumentError("emptyPrompts", "a share between 0 and 1", options.emptyPrompts);
  positiveNumber("weightDecay", options.weightDecay, true);
  if (options.maxGradNorm !== null) positiveNumber("maxGradNorm", options.maxGradNorm);
  const batch = options.batch ?? 1;
  const seed = options.seed ?? 0n;
  const lr = options.lr ?? 1e-4;
  const out = options.out;
  const root = join(out, "checkpoints");

  // 1. configs: UNet, VAE factor, text length, noise tables
  const folder = await readPipelineFolder(options.model);
  const dirOf = (name: "unet" | "vae" | "text_encoder" | "scheduler"): string => {
    const c = folder.components.get(name);
    if (!c) throw new InvalidArgumentError(options.model, `a pipeline with a ${name} component`, "none");
    return c.dir;
  };
  const unetDir = dirOf("unet");
  const unetConfigFile = join(unetDir, "config.json");
  const { config: unetConfig } = await readUNet2DConditionModelConfig(unetConfigFile);
  const { config: vaeConfig } = await readAutoencoderKLConfig(join(dirOf("vae"), "config.json"));
  const { config: textConfig } = await readCLIPTextConfig(join(dirOf("text_encoder"), "config.json"));
  const schedulerFile = join(dirOf("scheduler"), "scheduler_config.json");
  const { config: sched } = parseSchedulerConfig("DDPMScheduler", await readJsonFile(schedulerFile), {
    file: schedulerFile,
  });
  const { alphasCumprod } = makeNoiseTables(sched, schedulerFile);
  const prediction =
    options.prediction ?? (sched.prediction_type === "v_prediction" ? "v_prediction" : "epsilon");
  if (prediction !== "epsilon" && prediction !== "v_prediction")
    throw new InvalidArgumentError("prediction", '"epsilon" or "v_prediction"', prediction);
  const factor = 2 ** (vaeConfig.block_out_channels.length - 1);
  const sampleSize = unetConfig.sample_size ?? 64;
  const [sampleH, sampleW] = Array.isArray(sampleSize) ? sampleSize : [sampleSize, sampleSize];
  const width = options.width ?? (sampleW ?? 64) * factor;
  const height = options.height ?? (sampleH ?? 64) * factor;
  for (const [name, v] of [
    ["width", width],
    ["height", height],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < factor || v % factor !== 0)
      throw new InvalidArgumentError(name, `a positive multiple of the VAE factor ${factor}`, v);
  }
  const latentShape = [batch, unetConfig.in_channels, height / factor, width / factor] as const;

  // 2. the training graph (a trainable pattern that matches nothing fails here, before any data work)
  const component = options.train ?? "unet";
  if (component !== "unet" && component !== "controlnet" && component !== "unet+controlnet")
    throw new InvalidArgumentError("train", '"unet", "controlnet" or "unet+controlnet"', component);
  const weights = await openSafetensors(folder.components.get("unet")?.weights ?? "");
  const net =
    component === "unet"
      ? undefined
      : await openControlNet(options, folder, { config: unetConfig, weights, vaeFactor: factor, seed });
  const { graph, params } = buildTrainingGraph(unetDir, unetConfig, weights, {
    ...(net ? { controlnet: net, controlSize: [height, width] as const } : {}),
    trainUnet: component !== "controlnet",
    latentShape,
    contextShape: [
      textConfig.max_position_embeddings,
      Array.isArray(unetConfig.cross_attention_dim)
        ? (unetConfig.cross_attention_dim[0] ?? 0)
        : unetConfig.cross_attention_dim,
    ],
    ...(options.trainable === undefined ? {} : { trainable: options.trainable }),
  });
  const canny = { low: options.canny?.low ?? 100, high: options.canny?.high ?? 200 };
  const dataKey = {
    clips: await Promise.all(
      options.clips.map(async (c) => ({
        file: await fileKey(c.path),
        prompt: c.prompt,
        stride: c.stride ?? 1,
        maxFrames: c.maxFrames ?? null,
      })),
    ),
    width,
    height,
    latents: options.latents ?? "mean",
    canny: net ? canny : null,
  };
  const fingerprint: RunFingerprint = {
    component,
    unetConfig: JSON.stringify(unetConfig),
    controlnetConfig: net ? JSON.stringify(net.config) : "",
    trainable: params.map((p) => `${p.name} [${p.storedShape.join(", ")}]`),
    latentShape: [...latentShape],
    data: sha(JSON.stringify(dataKey)).slice(0, 32),
    seed: String(seed),
    prediction,
    noiseOffset: options.noiseOffset ?? 0,
    ...(emptyPrompts === 0 ? {} : { emptyPrompts }),
  };
  const unetPart: CheckpointComponent = {
    component: "unet",
    prefix: "",
    configFile: unetConfigFile,
    baseWeights: weights,
  };
  const netPart: CheckpointComponent | undefined = net && {
    component: "controlnet",
    prefix: CONTROLNET_PREFIX,
    configFile: net.configFile,
    ...(net.configText === undefined ? {} : { configText: net.configText }),
    baseWeights: net.weights,
  };
  const trained = [...(component === "controlnet" ? [] : [unetPart]), ...(netPart ? [netPart] : [])];

  // 3. resume or a fresh start
  const existing = await listCheckpoints(root);
  let restored: LoadedCheckpoint | undefined;
  if (options.resume === true) {
    const last = existing.at(-1);
    if (!last)
      throw new InvalidArgumentError("resume", `an output folder with checkpoints (${root})`, "none", {
        hint: "run without --resume to start training",
      });
    restored = await loadCheckpoint(last.dir, fingerprint, params, trained);
    if (restored.record.step > options.steps)
      throw new InvalidArgumentError(
        "steps",
        `at least the checkpoint's ${restored.record.step} steps`,
        options.steps,
      );
  } else if (existing.length > 0) {
    throw new InvalidArgumentError("out", "an output folder without checkpoints", out, {
      hint: "pass --resume to continue that run, or choose a new --out folder",
    });
  }

  // 4. data
  const data = await prepareTrainingData({
    model: options.model,
    clips: options.clips,
    width,
    height,
    seed,
    latents: options.latents ?? "mean",
    ...(net ? { control: { kind: "canny" as const, ...canny } } : {}),
    ...(emptyPrompts > 0 ? { extraCaptions: [""] } : {}),
    cacheDir: options.cacheDir ?? join(out, "cache"),
    ...(options.load === undefined ? {} : { load: options.load }),
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const size = data.latents.shape[0] ?? 0;
  const emptyCaption = data.captions.indexOf("");

  // 5. state
  const values = new Map<string, Float32Array>();
  for (const p of params)
    values.set(p.name, restored?.params.get(p.name) ?? (await p.initial()).data.slice());
  const optimizer = new AdamW({ lr, weightDecay: options.weightDecay ?? 1e-2 });
  if (restored) optimizer.loadState(restored.optimizer);
  const schedule = learningRateSchedule(options.lrScheduler ?? "constant", lr, {
    numWarmupSteps: options.warmupSteps ?? 0,
    numTrainingSteps: options.steps,
  });
  const losses = [...(restored?.record.losses ?? [])];
  const gradNorms = [...(restored?.record.gradNorms ?? [])];
  let step = restored?.record.step ?? 0;
  let lastCheckpoint = restored?.dir;
  const hyper = {
    steps: options.steps,
    lr,
    batch,
    width,
    height,
    trainable: options.trainable?.map(String) ?? null,
    maxGradNorm: options.maxGradNorm === undefined ? 1 : options.maxGradNorm,
    weightDecay: options.weightDecay ?? 1e-2,
    lrScheduler: options.lrScheduler ?? "constant",
    warmupSteps: options.warmupSteps ?? 0,
    clips: options.clips.map((c) => c.path),
    captions: data.captions,
  };
  const save = async (): Promise<string> => {
    const record: CheckpointRecord = {
      format: CHECKPOINT_FORMAT,
      step,
      rng: { kind: "splitmix64-counter", seed: String(seed), nextStep: step },
      losses,
      gradNorms,
      fingerprint,
      hyper,
    };
    const dir = await saveCheckpoint({
      root,
      record,
      components: trained,
      params,
      values,
      optimizer: optimizer.state(),
      ...(options.keepCheckpoints === undefined ? {} : { keep: options.keepCheckpoints }),
    });
    await writeFileAtomic(join(out, "loss.svg"), lossCurveSvg(losses, `training loss (${step} steps)`));
    lastCheckpoint = dir;
    return dir;
  };

  // 6. the loop
  const task = "training";
  const session = await openGraphSession(graph, {
    ...(options.load?.executionProviders ? { executionProviders: options.load.executionProviders } : {}),
    ...(options.load?.intraOpNumThreads ? { intraOpNumThreads: options.load.intraOpNumThreads } : {}),
  });
  const maxNorm = options.maxGradNorm === undefined ? 1 : options.maxGradNorm;
  // the gradients land in the same buffers every step (no fresh allocation of every gradient)
  const gradBuffers: Record<string, HostTensor<"float32">> = Object.fromEntries(
    params.map((p, i) => {
      const out = graph.outputs.find((v) => v.name === `grad.${i}`);
      return [`grad.${i}`, tensor("float32", (out?.shape ?? p.value.shape) as number[])];
    }),
  );
  let lastSaved = restored?.record.step ?? 0;
  let stepSeconds = 0;
  let stepsRun = 0;
  try {
    options.onProgress?.({ status: "start", task, total: options.steps });
    options.onProgress?.({ status: "progress", task, done: step, total: options.steps });
    while (step < options.steps) {
      if (options.signal?.aborted) {
        const where = step > lastSaved ? await save() : lastCheckpoint;
        throw new CancelledError(
          `training after step ${step} (checkpoint ${where ?? "none"}; continue with --resume)`,
          { cause: options.signal.reason },
        );
      }
      const started = performance.now();
      const rows = batchItems(seed, step, batch, size);
      const x0 = gatherRows(data.latents, rows);
      const generator = generatorFor(seed, STREAM.noise, step);
      const noised = noiseBatch(x0, generator, alphasCumprod, prediction, options.noiseOffset ?? 0);
      const dropped =
        emptyPrompts > 0 ? generatorFor(seed, STREAM.captions, step).rand([batch]).data : undefined;
      const context = gatherRows(
        data.embeddings,
        rows.map((r, i) =>
          dropped && (dropped[i] ?? 1) < emptyPrompts ? emptyCaption : (data.captionOf[r] ?? 0),
        ),
      );
      const feeds: Record<string, HostTensor> = {
        sample: noised.noisy,
        timestep: tensor("float32", [batch], noised.timesteps),
        encoder_hidden_states: context,
        target: noised.target,
      };
      if (net && data.controls) feeds["controlnet_cond"] = gatherRows(data.controls, rows);
      for (const p of params)
        feeds[p.name] = tensor(
          "float32",
          p.value.shape as number[],
          values.get(p.name) ?? new Float32Array(),
        );
      const result = await session.run(feeds, { into: gradBuffers });
      const loss =
        toFloat32(result["loss"] ?? tensor("float32", [], Float32Array.of(Number.NaN))).data[0] ?? NaN;
      if (!Number.isFinite(loss)) throw new TrainingDivergedError(step + 1, "loss", loss, lastCheckpoint);
      const grads = new Map<string, Float32Array>(
        params.map((p, i) => [p.name, gradBuffers[`grad.${i}`]?.data ?? new Float32Array()]),
      );
      const norm = maxNorm === null ? globalGradNorm(grads.values()) : clipGradNorm(grads.values(), maxNorm);
      if (!Number.isFinite(norm))
        throw new TrainingDivergedError(step + 1, "gradient norm", norm, lastCheckpoint);
      const stepLr = schedule(step);
      optimizer.step(values, grads, stepLr);
      step += 1;
      losses.push(loss);
      gradNorms.push(norm);
      const seconds = (performance.now() - started) / 1000;
      stepSeconds += seconds;
      stepsRun += 1;
      options.onStep?.({ step, totalSteps: options.steps, loss, gradNorm: norm, lr: stepLr, seconds });
      options.onProgress?.({ status: "progress", task, done: step, total: options.steps });
      if (options.saveEvery !== undefined && step % options.saveEvery === 0 && step < options.steps) {
        await save();
        lastSaved = step;
      }
    }
    if (step > lastSaved) {
      await save();
      lastSaved = step;
    }
    options.onProgress?.({ status: "done", task });
  } finally {
    await session.release();
  }
  throwIfAborted(options.signal, "training");
  if (options.publish !== false)
    await publishPipeline(
      options.model,
      out,
      lastCheckpoint ?? "",
      folder,
      trained.map((c) => c.component),
    );
  return {
    out,
    steps: step,
    losses,
    gradNorms,
    checkpoint: lastCheckpoint ?? "",
    secondsPerStep: stepsRun === 0 ? 0 : stepSeconds / stepsRun,
    trainableParameters: params.reduce((n, p) => n + (values.get(p.name)?.length ?? 0), 0),
  };
}

/**
 * The ControlNet to train: `options.controlnet` (a folder, or "from-unet"), else the model folder's
 * own, else one initialised from the UNet (controlnet-init.ts).
 */
async function openControlNet(
  options: TrainOptions,
  folder: Awaited<ReturnType<typeof readPipelineFolder>>,
  unet: { config: UNet2DConditionModelConfig; weights: TensorFileLike; vaeFactor: number; seed: bigint },
): Promise<TrainedControlNet> {
  const dir = options.controlnet ?? folder.components.get("controlnet")?.dir ?? "from-unet";
  if (dir === "from-unet") {
    const init = controlNetFromUNet(unet.config, unet.weights, unet.vaeFactor, unet.seed);
    return {
      config: init.config,
      weights: init.weights,
      configFile: "controlnet/config.json (ControlNetModel.from_unet)",
      configText: `${JSON.stringify(init.configJson, null, 2)}\n`,
    };
  }
  const configFile = join(dir, "config.json");
  const { config } = await readControlNetModelConfig(configFile);
  return { config, configFile, weights: await openSafetensors(await findWeightsFile(dir, "diffusers")) };
}

/** The output folder as a diffusers pipeline: the base model's components, the trained one. */
async function publishPipeline(
  model: string,
  out: string,
  checkpoint: string,
  folder: Awaited<ReturnType<typeof readPipelineFolder>>,
  components: readonly string[],
): Promise<void> {
  const replace = { canReplace: () => undefined };
  for (const [name, c] of folder.components) {
    if (components.includes(name)) continue;
    await withAtomicDir(join(out, name), (temp) => cp(c.dir, temp, { recursive: true }), replace);
  }
  for (const component of components) {
    await withAtomicDir(
      join(out, component),
      (temp) => cp(join(checkpoint, component), temp, { recursive: true }),
      replace,
    );
  }
  const index = JSON.parse(await readFile(join(model, "model_index.json"), "utf8")) as Record<
    string,
    unknown
  >;
  if (components.includes("controlnet") && !Array.isArray(index["controlnet"])) {
    index["controlnet"] = ["diffusers", "ControlNetModel"];
    index["_class_name"] = "StableDiffusionControlNetPipeline";
  }
  await writeFileAtomic(join(out, "model_index.json"), `${JSON.stringify(index, null, 2)}\n`);
}
