/**
 * `trainVae(options)`: trains an AutoencoderKL (diffusers layout) on frames of video clips with
 * Steadyframe's own autodiff and AdamW, and saves it as a diffusers `vae/` folder that
 * `AutoencoderKL.load` reads back. The recipe is the LDM autoencoder's first stage without its
 * perceptual and adversarial terms (graph.ts: reconstruction + kl_weight * KL): random square crops
 * and flips of the frames (data.ts), fresh weights with torch's default init (init.ts) or a VAE
 * folder to continue from.
 *
 * The output folder `out` holds `config.json`, `diffusion_pytorch_model.safetensors` (diffusers keys,
 * float32) and `steadyframe_training.json` (step, seed, loss history); each save replaces the whole
 * folder atomically (src/util/atomic-write.ts), so a reader sees the previous save or the new one.
 * `scaling_factor` is written as measured: 1 / std of the posterior means of the last steps' batches
 * (how the LDM authors derived SD's 0.18215), unless a number is given.
 *
 * Stops: an AbortSignal saves (when steps ran since the last save) and throws CancelledError; a loss
 * or gradient norm that is not finite throws TrainingDivergedError naming the step and the last good
 * save, which is left as it was.
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { CancelledError, InvalidArgumentError, throwIfAborted } from "../../errors.js";
import type { ParameterPattern } from "../../graph/autodiff/index.js";
import type { ExecutionProvider } from "../../runtime/session.js";
import type { AutoencoderKLConfig } from "../../models/vae/config.js";
import type { VaeSpec } from "../../models/vae/validate.js";
import { mapStore } from "../../nn/weight-store.js";
import type { LongTaskOptions } from "../../progress.js";
import { type HostTensor, tensor, toFloat32 } from "../../tensor.js";
import { withAtomicDir, writeFileAtomic } from "../../util/atomic-write.js";
import { readSafetensors, writeSafetensors } from "../../weights/safetensors.js";
import { openGraphSession } from "../graph-session.js";
import { TrainingDivergedError } from "../loop/errors.js";
import { generatorFor } from "../loop/rng.js";
import { AdamW, clipGradNorm, globalGradNorm } from "../optim/index.js";
import { toCheckpointLayout } from "../parameters.js";
import { DEMO_VAE_CONFIG, DEMO_VAE_SIZE, vaeConfigJson, vaeSpecOf } from "./config.js";
import { cropBatch, drawCrops, loadFrames } from "./data.js";
import { type VaeReconstructionLoss, buildVaeTrainingGraph } from "./graph.js";
import { initVaeWeights } from "./init.js";

/** The training record written next to the weights. */
export const VAE_TRAINING_FILE = "steadyframe_training.json";
export const VAE_TRAINING_FORMAT = "steadyframe-vae-train-1";
const WEIGHTS_FILE = "diffusion_pytorch_model.safetensors";

/** The random stream of the batches (crops, flips, posterior noise); see src/train/loop/rng.ts. */
const BATCH_STREAM = 11n;

export interface VaeStepInfo {
  /** 1-based step just done. */
  readonly step: number;
  readonly totalSteps: number;
  readonly loss: number;
  /** Mean per-element reconstruction error (|x - x'| or (x - x')^2) of the batch, images in [-1, 1]. */
  readonly rec: number;
  /** KL per image (batch mean). */
  readonly kl: number;
  /** Global gradient norm before clipping. */
  readonly gradNorm: number;
  readonly seconds: number;
}

export interface TrainVaeOptions extends LongTaskOptions {
  /** Video files (or PNG sequences) whose frames are the training images. */
  readonly clips: readonly string[];
  /** Output folder: a diffusers vae/ folder (replaced on each save; see the file comment). */
  readonly out: string;
  /** Optimisation steps. */
  readonly steps: number;
  /** (optional, default DEMO_VAE_CONFIG) config.json fields of a fresh VAE (ignored with `from`). */
  readonly config?: Readonly<Record<string, unknown>>;
  /** (optional) a diffusers vae/ folder to continue training from instead of fresh weights. */
  readonly from?: string;
  /** (optional, default 4) crops per step. */
  readonly batch?: number;
  /** (optional, default 128) crop size in pixels (a multiple of the VAE's factor). */
  readonly size?: number;
  /** (optional, default size * 5 / 4) square size the frames are scaled to before cropping. */
  readonly frameSize?: number;
  /** (optional) frame selection per clip. */
  readonly stride?: number;
  readonly maxFrames?: number;
  /** (optional, default 1e-3) AdamW learning rate (constant). */
  readonly lr?: number;
  /** (optional, default 0) AdamW decoupled weight decay. */
  readonly weightDecay?: number;
  /** (optional, default null: off) clip gradients to this global norm. */
  readonly maxGradNorm?: number | null;
  /** (optional, default "l1") reconstruction term. */
  readonly reconstruction?: VaeReconstructionLoss;
  /** (optional, default 1e-6) weight of the KL term. */
  readonly klWeight?: number;
  /** (optional, default every parameter) diffusers-key patterns of the trained parameters. */
  readonly trainable?: readonly ParameterPattern[];
  /** (optional, default 0) seed of the initial weights and of every batch. */
  readonly seed?: bigint;
  /** (optional, default: only at the end) also save every N steps. */
  readonly saveEvery?: number;
  /** (optional, default "auto") scaling_factor written to config.json (see the file comment). */
  readonly scalingFactor?: number | "auto";
  /** (optional, default true) replace `out` when it holds an earlier run of this trainer. */
  readonly overwrite?: boolean;
  /** (optional) how the training graph runs (1 thread leaves the other cores free). */
  readonly load?: {
    readonly executionProviders?: readonly ExecutionProvider[];
    readonly intraOpNumThreads?: number;
  };
  /** (optional) called after every step. */
  readonly onStep?: (info: VaeStepInfo) => void;
}

export interface TrainVaeResult {
  readonly out: string;
  readonly steps: number;
  readonly losses: readonly number[];
  readonly recs: readonly number[];
  readonly kls: readonly number[];
  /** Mean wall time of a step (graph run + optimiser; data decoding and graph building excluded). */
  readonly secondsPerStep: number;
  /** Parameters trained / in the model. */
  readonly trainableParameters: number;
  readonly totalParameters: number;
  readonly scalingFactor: number;
}

function positiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isSafeInteger(v) || v < 1))
    throw new InvalidArgumentError(name, "a positive integer", v);
}

function nonNegative(name: string, v: number | undefined, positive = false): void {
  if (v !== undefined && !(Number.isFinite(v) && (positive ? v > 0 : v >= 0)))
    throw new InvalidArgumentError(name, positive ? "a positive number" : "a number >= 0", v);
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/** Refuses to replace a folder this trainer did not write (unless it is absent). */
async function checkReplaceable(out: string, overwrite: boolean): Promise<void> {
  if (!(await exists(out))) return;
  const ours = await exists(join(out, VAE_TRAINING_FILE));
  if (!ours || !overwrite) {
    throw new InvalidArgumentError("out", "a new folder or an earlier VAE training output", out, {
      hint: ours
        ? "pass overwrite: true to replace it, or choose another output folder"
        : `it exists and has no ${VAE_TRAINING_FILE}; choose another output folder or remove it`,
    });
  }
}

/** Starting weights and config: a VAE folder, or fresh weights for `config`. */
async function startingPoint(
  options: TrainVaeOptions,
  seed: bigint,
): Promise<{ spec: VaeSpec; weights: Map<string, HostTensor<"float32">> }> {
  if (options.from === undefined) {
    const spec = vaeSpecOf(options.config ?? DEMO_VAE_CONFIG);
    return { spec, weights: initVaeWeights(spec, seed) };
  }
  const configFile = join(options.from, "config.json");
  const json = JSON.parse(await readFile(configFile, "utf8")) as unknown;
  const spec = vaeSpecOf(json as Record<string, unknown>, configFile);
  const weights = new Map<string, HostTensor<"float32">>();
  for (const [k, t] of await readSafetensors(join(options.from, WEIGHTS_FILE))) weights.set(k, toFloat32(t));
  return { spec, weights };
}

/** Trains and saves (see the file comment). */
export async function trainVae(options: TrainVaeOptions): Promise<TrainVaeResult> {
  positiveInt("steps", options.steps);
  positiveInt("batch", options.batch);
  positiveInt("size", options.size);
  positiveInt("frameSize", options.frameSize);
  positiveInt("saveEvery", options.saveEvery);
  nonNegative("lr", options.lr, true);
  nonNegative("weightDecay", options.weightDecay);
  nonNegative("klWeight", options.klWeight);
  if (options.maxGradNorm !== undefined && options.maxGradNorm !== null)
    nonNegative("maxGradNorm", options.maxGradNorm, true);
  if (typeof options.scalingFactor === "number") nonNegative("scalingFactor", options.scalingFactor, true);
  const seed = options.seed ?? 0n;
  const batch = options.batch ?? 4;
  const size = options.size ?? DEMO_VAE_SIZE;
  const frameSize = options.frameSize ?? Math.round((size * 5) / 4);
  const lr = options.lr ?? 1e-3;
  const overwrite = options.overwrite ?? true;
  await checkReplaceable(options.out, overwrite);

  const { spec, weights } = await startingPoint(options, seed);
  const f = spec.downsampleFactor;
  if (size % f !== 0)
    throw new InvalidArgumentError("size", `a multiple of the VAE's downsampling factor ${f}`, size);
  if (frameSize < size)
    throw new InvalidArgumentError("frameSize", `a size >= the crop size ${size}`, frameSize);
  const frames = await loadFrames(options.clips, frameSize, {
    ...(options.stride === undefined ? {} : { stride: options.stride }),
    ...(options.maxFrames === undefined ? {} : { maxFrames: options.maxFrames }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });

  const { graph, params, latentShape } = buildVaeTrainingGraph(
    spec,
    mapStore(weights, "initial VAE weights"),
    {
      batch,
      height: size,
      width: size,
      ...(options.reconstruction === undefined ? {} : { reconstruction: options.reconstruction }),
      ...(options.klWeight === undefined ? {} : { klWeight: options.klWeight }),
      ...(options.trainable === undefined ? {} : { trainable: options.trainable }),
    },
  );
  const values = new Map<string, Float32Array>();
  for (const p of params) values.set(p.name, (await p.initial()).data.slice());
  const optimizer = new AdamW({ lr, weightDecay: options.weightDecay ?? 0 });
  const maxNorm = options.maxGradNorm ?? null;

  const losses: number[] = [];
  const recs: number[] = [];
  const kls: number[] = [];
  // Posterior-mean statistics of the last steps (the measured scaling_factor).
  const window: { sum: number; sumSq: number; n: number }[] = [];
  const measuredScale = (): number => {
    const s = window.reduce((a, w) => ({ sum: a.sum + w.sum, sumSq: a.sumSq + w.sumSq, n: a.n + w.n }), {
      sum: 0,
      sumSq: 0,
      n: 0,
    });
    if (s.n < 2) return spec.config.scaling_factor;
    const mu = s.sum / s.n;
    const sd = Math.sqrt(Math.max(0, s.sumSq / s.n - mu * mu));
    return sd > 0 && Number.isFinite(sd) ? 1 / sd : spec.config.scaling_factor;
  };
  let step = 0;
  let lastSaved = 0;
  let lastCheckpoint: string | undefined;
  const save = async (): Promise<void> => {
    const scale = typeof options.scalingFactor === "number" ? options.scalingFactor : measuredScale();
    const config: AutoencoderKLConfig = spec.config;
    const tensors = new Map<string, HostTensor>();
    const trained = new Map(params.map((p) => [p.name, p]));
    for (const key of [...weights.keys()].sort()) {
      const p = trained.get(key);
      const v = values.get(key);
      tensors.set(
        key,
        p && v
          ? toCheckpointLayout(p, tensor("float32", p.value.shape as number[], v))
          : (weights.get(key) ?? tensor("float32", [0])),
      );
    }
    const record = {
      format: VAE_TRAINING_FORMAT,
      step,
      seed: String(seed),
      clips: options.clips,
      hyper: {
        batch,
        size,
        frameSize,
        lr,
        weightDecay: options.weightDecay ?? 0,
        maxGradNorm: maxNorm,
        reconstruction: options.reconstruction ?? "l1",
        klWeight: options.klWeight ?? 1e-6,
        trainable: options.trainable?.map(String) ?? null,
        from: options.from ?? null,
      },
      losses,
      recs,
      kls,
    };
    await withAtomicDir(
      options.out,
      async (dir) => {
        await writeFileAtomic(
          join(dir, "config.json"),
          `${JSON.stringify(vaeConfigJson(config, scale), null, 2)}\n`,
          {
            createParents: false,
          },
        );
        await writeSafetensors(join(dir, WEIGHTS_FILE), tensors, { format: "pt" });
        await writeFileAtomic(join(dir, VAE_TRAINING_FILE), `${JSON.stringify(record, null, 1)}\n`, {
          createParents: false,
        });
      },
      // This run's own earlier save is always replaced; anything else as `overwrite` says.
      {
        canReplace: () =>
          lastCheckpoint === undefined ? checkReplaceable(options.out, overwrite) : undefined,
      },
    );
    lastSaved = step;
    lastCheckpoint = options.out;
  };

  const task = "training VAE";
  const session = await openGraphSession(graph, {
    ...(options.load?.executionProviders ? { executionProviders: options.load.executionProviders } : {}),
    ...(options.load?.intraOpNumThreads ? { intraOpNumThreads: options.load.intraOpNumThreads } : {}),
  });
  let seconds = 0;
  try {
    options.onProgress?.({ status: "start", task, total: options.steps });
    while (step < options.steps) {
      if (options.signal?.aborted) {
        if (step > lastSaved) await save();
        throw new CancelledError(`${task} after step ${step} (saved in ${lastCheckpoint ?? "nothing yet"})`, {
          cause: options.signal.reason,
        });
      }
      const started = performance.now();
      const generator = generatorFor(seed, BATCH_STREAM, step);
      const image = cropBatch(frames, drawCrops(frames, batch, size, generator), size);
      const noise = generator.randn([batch, ...latentShape]);
      const feeds: Record<string, HostTensor> = { image, noise };
      for (const p of params)
        feeds[p.name] = tensor(
          "float32",
          p.value.shape as number[],
          values.get(p.name) ?? new Float32Array(),
        );
      const out = await session.run(feeds);
      const scalar = (name: string): number =>
        toFloat32(out[name] ?? tensor("float32", [1], Float32Array.of(NaN))).data[0] ?? NaN;
      const loss = scalar("loss");
      if (!Number.isFinite(loss))
        throw new TrainingDivergedError(step + 1, "loss", loss, lastCheckpoint, {
          hint: "lower lr or set maxGradNorm, or check the clips",
        });
      const grads = new Map<string, Float32Array>(
        params.map((p, i) => [p.name, toFloat32(out[`grad.${i}`] ?? tensor("float32", [0])).data]),
      );
      const norm = maxNorm === null ? globalGradNorm(grads.values()) : clipGradNorm(grads.values(), maxNorm);
      if (!Number.isFinite(norm))
        throw new TrainingDivergedError(step + 1, "gradient norm", norm, lastCheckpoint, {
          hint: "lower lr or set maxGradNorm, or check the clips",
        });
      optimizer.step(values, grads);
      const mean = toFloat32(out["mean"] ?? tensor("float32", [0])).data;
      let sum = 0;
      let sumSq = 0;
      for (const v of mean) {
        sum += v;
        sumSq += v * v;
      }
      window.push({ sum, sumSq, n: mean.length });
      if (window.length > 20) window.shift();
      step += 1;
      losses.push(loss);
      recs.push(scalar("rec"));
      kls.push(scalar("kl"));
      const took = (performance.now() - started) / 1000;
      seconds += took;
      options.onStep?.({
        step,
        totalSteps: options.steps,
        loss,
        rec: recs[recs.length - 1] ?? NaN,
        kl: kls[kls.length - 1] ?? NaN,
        gradNorm: norm,
        seconds: took,
      });
      options.onProgress?.({ status: "progress", task, done: step, total: options.steps });
      if (options.saveEvery !== undefined && step % options.saveEvery === 0 && step < options.steps)
        await save();
    }
    if (step > lastSaved || lastCheckpoint === undefined) await save();
    options.onProgress?.({ status: "done", task });
  } finally {
    await session.release();
  }
  throwIfAborted(options.signal, task);
  return {
    out: options.out,
    steps: step,
    losses,
    recs,
    kls,
    secondsPerStep: step > 0 ? seconds / step : 0,
    trainableParameters: params.reduce((n, p) => n + (values.get(p.name)?.length ?? 0), 0),
    totalParameters: [...weights.values()].reduce((n, t) => n + t.data.length, 0),
    scalingFactor: typeof options.scalingFactor === "number" ? options.scalingFactor : measuredScale(),
  };
}
