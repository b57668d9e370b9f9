/**
 * Fitting a Neural Layered Atlases model to a clip (ykasten/layered-neural-atlases train.py's loop):
 * mapping pre-training (unwrap_utils.pre_train_mapping), then per iteration a batch of pixels drawn
 * with `torch.randint` semantics from one seeded stream (the pre-training draws first, as in the
 * release), the whole step (forward, every loss, backward) as ONE ONNX graph run, and one Adam step
 * (lr 1e-4) over all four nets. The loss weights follow the release schedule (global rigidity until
 * iteration 5000, bootstrapping until 10000).
 *
 * A model folder holds `model.json` (nets, loss config, sizes, seed, batch), `data.safetensors`
 * (the working-size frames, masks and flows: fitting and rendering never decode the video again),
 * and `checkpoint.safetensors` (parameters in state_dict names, `optimizer.<param>.exp_avg|
 * exp_avg_sq`, metadata `iteration` = the next iteration to run and `adam_step`), each written
 * atomically; resuming restores the parameters, the Adam state and the random stream exactly.
 */
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  CancelledError,
  ConfigError,
  CorruptFileError,
  FileNotFoundError,
  InvalidArgumentError,
} from "../errors.js";
import type { FlowField } from "../control/flow.js";
import { GraphBuilder } from "../graph/builder.js";
import type { ProgressCallback } from "../progress.js";
import { TorchGenerator } from "../random/torch-generator.js";
import { type HostTensor, tensor, toFloat32 } from "../tensor.js";
import { openGraphSession } from "../train/graph-session.js";
import { Adam, type SparseRows } from "../train/optim/index.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { openSafetensors, readSafetensors, writeSafetensors } from "../weights/safetensors.js";
import { TorchRandint, batchIndices, foregroundIndices, prepareAtlasData } from "./data.js";
import { type StepRunner, openStepRunner } from "./step.js";
import { type AtlasLossConfig, RELEASE_LOSS_CONFIG, coefficientsAt } from "./losses.js";
import {
  type AtlasNets,
  DEFAULT_ATLAS_GRID,
  gridAtlasNets,
  initialParameters,
  modelParameterShapes,
  releaseNets,
  withFrameAffine,
} from "./networks.js";
import { initialFrameTables } from "./frame-init.js";
import { buildPretrainGraph, pretrainXyt } from "./pretrain.js";

export const MODEL_FILE = "model.json";
export const DATA_FILE = "data.safetensors";
export const CHECKPOINT_FILE = "checkpoint.safetensors";

/** What model.json records. */
export interface AtlasModelInfo {
  readonly format: "steadyframe-nla/1";
  readonly width: number;
  readonly height: number;
  readonly frames: number;
  readonly nets: AtlasNets;
  readonly loss: AtlasLossConfig;
  readonly batch: number;
  readonly seed: number;
  readonly pretrainIterations: number;
  readonly pretrainSamples: number;
  readonly lr: number;
  /** Masks were given; without them the bootstrapping target is alpha 0 everywhere (one background layer). */
  readonly masks: boolean;
  /** (optional, default 0) the share of each batch drawn from the masks' foreground pixels (`batchIndices`). */
  readonly focus?: number;
  /** (optional) where the frames came from. */
  readonly source?: string;
}

/** Frames, masks and flows at the working size. */
export interface FitInput {
  readonly width: number;
  readonly height: number;
  readonly count: number;
  /** [N, H, W, 3] uint8. */
  readonly frames: Uint8Array;
  /** (optional) [N, H, W] uint8 masks. */
  readonly masks?: Uint8Array;
  readonly flowFw: readonly FlowField[];
  readonly flowBw: readonly FlowField[];
}

export interface FitSettings {
  /** (optional, default 256) hidden width of every net (the release's). */
  readonly width?: number;
  /**
   * (optional, default "pe", the release's) the atlas (texture) net: "pe" is the release's 8-layer
   * MLP on a positional encoding; "grid" a multiresolution grid encoding with a small MLP
   * (`gridAtlasNets`: not in the release; converges about 5x sooner).
   */
  readonly encoding?: AtlasEncoding;
  /**
   * (optional, with encoding "grid") vertices per side of each grid level, coarse to fine (default
   * `DEFAULT_ATLAS_GRID`'s 16..512). The two layers share the table, each on a quarter of it, so a clip
   * whose background pans far past the frame wants finer levels (docs/atlas.md).
   */
  readonly gridLevels?: readonly number[];
  /**
   * (optional, default false; not in the release) give both mapping nets a learnt per-frame affine
   * pre-transform (`withFrameAffine`): for clips whose camera pans, zooms or rolls far.
   */
  readonly frameAffine?: boolean;
  /** (optional) the nets themselves (then `width` and `encoding` are not used). */
  readonly nets?: AtlasNets;
  /** (optional, default 10000) pixels per iteration. */
  readonly batch?: number;
  /** (optional, default 0) seed of the random stream and of the initial weights. */
  readonly seed?: number;
  /** (optional, default 100) mapping pre-training iterations (each = one step per frame per net). */
  readonly pretrainIterations?: number;
  /** (optional, default 10000) pixels per pre-training step. */
  readonly pretrainSamples?: number;
  /** (optional, default the release's) loss weights and schedule. */
  readonly loss?: AtlasLossConfig;
  /** (optional, default 1e-4, the release's) Adam learning rate of pre-training and fitting. */
  readonly lr?: number;
  /**
   * (optional, default 0, the release's uniform sampling) the share of each batch's pixels drawn from
   * the masks' foreground, in [0, 1): weighs the object more in every loss. Needs masks.
   */
  readonly focus?: number;
  readonly source?: string;
}

export type AtlasEncoding = "pe" | "grid";

/** The nets of a new model: the release's, or with the grid-encoded atlas. */
export function fitNets(
  settings: Pick<FitSettings, "width" | "encoding" | "gridLevels" | "nets">,
): AtlasNets {
  if (settings.nets) return settings.nets;
  const width = settings.width ?? 256;
  const encoding = settings.encoding ?? "pe";
  const levels = settings.gridLevels;
  if (encoding === "grid")
    return gridAtlasNets(
      width,
      levels === undefined ? {} : { grid: { ...DEFAULT_ATLAS_GRID, resolutions: levels } },
    );
  if (levels !== undefined) throw new InvalidArgumentError("gridLevels", 'only with encoding "grid"', levels);
  if (encoding !== "pe") throw new InvalidArgumentError("encoding", '"pe" or "grid"', encoding);
  return releaseNets(width);
}

export interface FitProgress {
  readonly iteration: number;
  readonly iterations: number;
  readonly losses: Readonly<Record<string, number>>;
  /** PSNR (dB) of the batch's reconstruction before this step. */
  readonly psnr: number;
  readonly msPerIteration: number;
}

export interface FitOptions {
  /** Run until this many iterations have been done in total. */
  readonly iterations: number;
  /** (optional, default 1000) write a checkpoint every this many iterations. */
  readonly checkpointEvery?: number;
  /** (optional) per-iteration report. */
  readonly onIteration?: (p: FitProgress) => void;
  /**
   * (optional) called after every checkpoint is written (periodic, final, and on cancel) with the
   * iteration it resumes at: where a caller saves what belongs to the same point (the CLI's
   * progress.csv), so a killed fit's log ends where its checkpoint does.
   */
  readonly onCheckpoint?: (iteration: number) => Promise<void>;
  readonly onProgress?: ProgressCallback;
  /** Cancels between iterations; the checkpoint of the last finished iteration is written first. */
  readonly signal?: AbortSignal;
  /** (optional, default 1) data-parallel shards per step (./step.ts); must divide the batch. */
  readonly workers?: number;
  /** (optional) ONNX Runtime intra-op threads of each step session (default: cores / workers, or ONNX Runtime's choice with 1 worker). */
  readonly threads?: number;
  /** (optional, default none: the model's rate throughout) a decay of the learning rate towards the end. */
  readonly lrDecay?: LrDecay;
}

/**
 * The learning rate decays exponentially from iteration `from` on and reaches `final` × the model's
 * rate at the fit's last iteration (`FitOptions.iterations`): a fit ends on small steps instead of
 * stopping wherever the last full-size step left the weights.
 */
export interface LrDecay {
  readonly from: number;
  /** In (0, 1]. */
  readonly final: number;
}

/** The rate of the step that makes iteration `iteration` + 1 (see LrDecay). */
export function learningRateAt(lr: number, iteration: number, iterations: number, decay?: LrDecay): number {
  if (decay === undefined || iteration < decay.from) return lr;
  const span = Math.max(1, iterations - 1 - decay.from);
  return lr * decay.final ** (Math.min(iteration - decay.from, span) / span);
}

export interface FitResult {
  readonly iterations: number;
  readonly lastPsnr: number;
  readonly msPerIteration: number;
}

/** Progress, cancellation and the ONNX Runtime threads of the sessions a call opens. */
export interface SessionTaskOptions {
  readonly onProgress?: ProgressCallback;
  readonly signal?: AbortSignal;
  /** (optional) ONNX Runtime intra-op threads of each session (default: ONNX Runtime's choice). */
  readonly threads?: number;
}

/** Session options for `threads` (none: ONNX Runtime's default). */
export function threadOptions(threads: number | undefined): { intraOpNumThreads?: number } {
  if (threads === undefined) return {};
  if (!Number.isInteger(threads) || threads < 1)
    throw new InvalidArgumentError("threads", "a positive integer", threads);
  return { intraOpNumThreads: threads };
}

/** `focus` is a share in [0, 1) and, when above 0, has foreground mask pixels to draw from. */
function checkFocus(focus: number | undefined, masks: Uint8Array | undefined): void {
  if (focus === undefined || focus === 0) return;
  if (!(focus > 0 && focus < 1))
    throw new InvalidArgumentError("focus", "a share of the batch in [0, 1)", focus);
  if (masks === undefined || !masks.some((v) => v >= 128))
    throw new InvalidArgumentError("focus", "0 without foreground masks (nothing to focus on)", focus, {
      hint: "give --mask with the object's masks, or leave --focus out",
    });
}

/** Creates a model folder (model.json, data.safetensors, initial checkpoint after pre-training). */
export async function createAtlasModel(
  dir: string,
  input: FitInput,
  settings: FitSettings = {},
  options: SessionTaskOptions = {},
): Promise<AtlasModelInfo> {
  if (input.count < 2)
    throw new InvalidArgumentError(
      "frames",
      "a clip of at least 2 frames (the flow terms need pairs)",
      input.count,
      {
        hint: "use a longer video or a larger --frames",
      },
    );
  checkFocus(settings.focus, input.masks);
  const nets = settings.frameAffine ? withFrameAffine(fitNets(settings), input.count) : fitNets(settings);
  // the camera's path and the object's boxes, before the pre-training fits the nets to them
  const start = nets.mapping1.frameAffine ? initialFrameTables(input, nets.mapping1.frameAffine) : undefined;
  const loss = settings.loss ?? RELEASE_LOSS_CONFIG;
  const info: AtlasModelInfo = {
    format: "steadyframe-nla/1",
    width: input.width,
    height: input.height,
    frames: input.count,
    nets,
    // with per-frame maps the background is fitted into the atlas 1/k as large (the camera path's
    // extent): its rigidity and flow terms measure against that scale
    loss: start ? { ...loss, uvMappingScaleBackground: loss.uvMappingScale * start.backgroundScale } : loss,
    batch: positive("batch", settings.batch ?? 10000),
    seed: settings.seed ?? 0,
    pretrainIterations: settings.pretrainIterations ?? 100,
    pretrainSamples: positive("pretrainSamples", settings.pretrainSamples ?? 10000),
    lr: positiveNumber("lr", settings.lr ?? 1e-4),
    masks: input.masks !== undefined,
    ...(settings.focus === undefined || settings.focus === 0 ? {} : { focus: settings.focus }),
    ...(settings.source === undefined ? {} : { source: settings.source }),
  };
  // validates the flows and masks before anything is written
  await prepareAtlasData(input);
  // a folder this call creates is removed again if it fails (no half-written model)
  const created = await mkdir(dir, { recursive: true });
  try {
    await writeModelFiles(dir, info, input, options, start);
  } catch (error) {
    if (created !== undefined) await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return info;
}

async function writeModelFiles(
  dir: string,
  info: AtlasModelInfo,
  input: FitInput,
  options: SessionTaskOptions,
  frameTables?: { readonly mapping1: Float32Array; readonly mapping2: Float32Array },
): Promise<void> {
  const stacked = (fields: readonly FlowField[]): HostTensor<"float32"> => {
    const out = new Float32Array(fields.length * input.width * input.height * 2);
    fields.forEach((f, i) => out.set(f.data, i * f.data.length));
    return tensor("float32", [fields.length, input.height, input.width, 2], out);
  };
  const n = input.count;
  await writeSafetensors(join(dir, DATA_FILE), {
    frames: tensor("uint8", [n, input.height, input.width, 3], input.frames),
    ...(input.masks ? { masks: tensor("uint8", [n, input.height, input.width], input.masks) } : {}),
    flow_fw: stacked(input.flowFw),
    flow_bw: stacked(input.flowBw),
  });
  await writeFileAtomic(join(dir, MODEL_FILE), `${JSON.stringify(info, null, 2)}\n`);

  // initial weights (torch.nn.Linear's init from a seeded generator), then pre-training
  const gen = new TorchGenerator(info.seed);
  const params = new Map(
    [...initialParameters(info.nets, (count) => gen.rand([count]).data)].map(([k, v]) => [k, v.data]),
  );
  if (frameTables) {
    params.set("mapping1.frames", frameTables.mapping1);
    params.set("mapping2.frames", frameTables.mapping2);
  }
  const rng = new TorchRandint(info.seed);
  for (const net of ["mapping1", "mapping2"] as const) {
    await pretrain(info, params, net, rng, options);
  }
  await writeCheckpoint(dir, info, params, atlasAdam(info.lr), 0);
}

function positiveNumber(name: string, v: number): number {
  if (!Number.isFinite(v) || v <= 0) throw new InvalidArgumentError(name, "a positive number", v);
  return v;
}

function positive(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new InvalidArgumentError(name, "a positive integer", v);
  return v;
}

/** Draws the pre-training uses from the stream (skipped again on resume). */
function pretrainDraws(info: AtlasModelInfo): number {
  return 2 * info.pretrainIterations * info.frames * 2 * info.pretrainSamples;
}

async function pretrain(
  info: AtlasModelInfo,
  params: Map<string, Float32Array>,
  net: "mapping1" | "mapping2",
  rng: TorchRandint,
  options: SessionTaskOptions,
): Promise<void> {
  if (info.pretrainIterations === 0) return;
  const g = new GraphBuilder({ name: `nla_pretrain_${net}` });
  const names = buildPretrainGraph(g, info.nets[net], net, info.pretrainSamples, info.loss.uvMappingScale);
  const shapes = new Map(modelParameterShapes(info.nets));
  const session = await openGraphSession(g, threadOptions(options.threads));
  const task = `pre-training ${net}`;
  const total = info.pretrainIterations * info.frames;
  options.onProgress?.({ status: "start", task, total });
  try {
    const adam = atlasAdam(info.lr);
    const own = new Map(names.map((n) => [n, params.get(n) as Float32Array]));
    for (let i = 0; i < info.pretrainIterations; i++)
      for (let f = 0; f < info.frames; f++) {
        if (options.signal?.aborted) throw new CancelledError(task);
        const rows = rng.next(info.height, info.pretrainSamples);
        const cols = rng.next(info.width, info.pretrainSamples);
        const feeds: Record<string, HostTensor> = {
          xyt: pretrainXyt(rows, cols, f, info.frames, Math.max(info.width, info.height)),
        };
        for (const n of names) feeds[n] = tensor("float32", shapes.get(n) ?? [], own.get(n) as Float32Array);
        const out = await session.run(feeds);
        adam.step(own, new Map(names.map((n) => [n, toFloat32(out[`grad.${n}`] as HostTensor).data])));
        options.onProgress?.({ status: "progress", task, done: i * info.frames + f + 1, total });
      }
  } finally {
    await session.release();
  }
  options.onProgress?.({ status: "done", task });
}

async function writeCheckpoint(
  dir: string,
  info: AtlasModelInfo,
  params: ReadonlyMap<string, Float32Array>,
  adam: Adam,
  iteration: number,
): Promise<void> {
  const tensors: Record<string, HostTensor> = {};
  for (const [name, shape] of modelParameterShapes(info.nets))
    tensors[name] = tensor("float32", shape, params.get(name) as Float32Array);
  const state = adam.state();
  for (const [k, t] of Object.entries(state.tensors)) tensors[`optimizer.${k}`] = t;
  await writeSafetensors(join(dir, CHECKPOINT_FILE), tensors, {
    iteration: String(iteration),
    adam_step: String(state.step),
  });
}

/** A model folder read back. */
export interface AtlasModel {
  readonly dir: string;
  readonly info: AtlasModelInfo;
  readonly input: FitInput;
  readonly params: Map<string, Float32Array>;
  readonly adam: Adam;
  /** The next iteration to run. */
  readonly iteration: number;
}

/** Reads model.json, data.safetensors and checkpoint.safetensors of a model folder. */
export async function loadAtlasModel(dir: string): Promise<AtlasModel> {
  const modelPath = join(dir, MODEL_FILE);
  let text: string;
  try {
    text = await readFile(modelPath, "utf8");
  } catch (cause) {
    throw new FileNotFoundError(modelPath, "atlas model (model.json)", {
      cause,
    });
  }
  let info: AtlasModelInfo;
  try {
    info = JSON.parse(text) as AtlasModelInfo;
  } catch (cause) {
    throw new CorruptFileError(modelPath, "not JSON", undefined, { cause });
  }
  if (info.format !== "steadyframe-nla/1")
    throw new ConfigError(modelPath, "format", '"steadyframe-nla/1"', info.format, {
      hint: "the folder was not written by steadyframe atlas fit",
    });
  const data = await readSafetensors(join(dir, DATA_FILE));
  const flows = (key: string): FlowField[] => {
    const t = toFloat32(data.get(key) ?? tensor("float32", [0], new Float32Array(0)));
    const size = info.width * info.height * 2;
    return Array.from({ length: info.frames - 1 }, (_, i) => ({
      width: info.width,
      height: info.height,
      data: t.data.slice(i * size, (i + 1) * size),
    }));
  };
  const frames = data.get("frames");
  if (!frames) throw new ConfigError(join(dir, DATA_FILE), "frames", "a uint8 tensor", undefined);
  const masks = data.get("masks");
  const input: FitInput = {
    width: info.width,
    height: info.height,
    count: info.frames,
    frames: frames.data as Uint8Array,
    ...(masks ? { masks: masks.data as Uint8Array } : {}),
    flowFw: flows("flow_fw"),
    flowBw: flows("flow_bw"),
  };
  const ckptPath = join(dir, CHECKPOINT_FILE);
  const ckpt = await readSafetensors(ckptPath);
  const params = new Map<string, Float32Array>();
  for (const [name, shape] of modelParameterShapes(info.nets)) {
    const t = ckpt.get(name);
    const count = shape.reduce((a, b) => a * b, 1);
    if (!t || t.data.length !== count)
      throw new ConfigError(ckptPath, name, `a float32 tensor of shape [${shape.join(", ")}]`, t?.shape, {
        hint: "the checkpoint does not belong to this model.json",
      });
    params.set(name, Float32Array.from(toFloat32(t).data));
  }
  const meta = (await openSafetensors(ckptPath)).metadata;
  const iteration = Number(meta.iteration ?? "0");
  const adam = atlasAdam(info.lr);
  const state: Record<string, HostTensor<"float32">> = {};
  for (const [k, t] of ckpt)
    if (k.startsWith("optimizer.")) state[k.slice("optimizer.".length)] = toFloat32(t);
  adam.loadState({ step: Number(meta.adam_step ?? "0"), tensors: state });
  return { dir, info, input, params, adam, iteration };
}

/**
 * Runs iterations `model.iteration` .. `options.iterations − 1` and writes checkpoints. On abort the
 * checkpoint of the last finished iteration is written, then CancelledError is thrown.
 */
export async function fitAtlas(model: AtlasModel, options: FitOptions): Promise<FitResult> {
  const { info, params, adam } = model;
  const decay = options.lrDecay;
  if (decay !== undefined) {
    if (!Number.isInteger(decay.from) || decay.from < 0)
      throw new InvalidArgumentError("lrDecay.from", "an iteration (an integer >= 0)", decay.from);
    if (!(decay.final > 0 && decay.final <= 1))
      throw new InvalidArgumentError("lrDecay.final", "a factor in (0, 1]", decay.final);
  }
  const data = await prepareAtlasData(model.input);
  const focus = info.focus ?? 0;
  const foreground = focus > 0 ? foregroundIndices(data.mask) : new Int32Array(0);
  // after the global rigidity's last iteration a graph without its points does the steps
  const globalAt = (it: number): boolean => it <= info.loss.stopGlobalRigidity;
  const open = (it: number) =>
    openStepRunner(info.nets, info.loss, data, info.batch, {
      ...(options.workers === undefined ? {} : { workers: options.workers }),
      ...(options.threads === undefined ? {} : { threadsPerWorker: options.threads }),
      globalRigidity: globalAt(it),
    });
  let runner: StepRunner | undefined = await open(model.iteration);
  let runnerGlobal = globalAt(model.iteration);
  const rng = new TorchRandint(info.seed);
  rng.skip(pretrainDraws(info) + model.iteration * info.batch);
  const every = options.checkpointEvery ?? 1000;
  let iteration = model.iteration;
  let lastPsnr = NaN;
  const started = performance.now();
  const task = "fitting atlases";
  const checkpoint = async (): Promise<void> => {
    await writeCheckpoint(model.dir, info, params, adam, iteration);
    await options.onCheckpoint?.(iteration);
  };
  options.onProgress?.({ status: "start", task, total: options.iterations });
  try {
    while (iteration < options.iterations) {
      if (options.signal?.aborted) {
        await checkpoint();
        throw new CancelledError(`${task} (checkpoint kept at iteration ${iteration})`);
      }
      const t0 = performance.now();
      if (runner === undefined || runnerGlobal !== globalAt(iteration)) {
        await runner?.release();
        runner = undefined;
        runner = await open(iteration);
        runnerGlobal = globalAt(iteration);
      }
      const indices = batchIndices(
        rng,
        info.frames * info.width * info.height,
        info.batch,
        focus,
        foreground,
      );
      const { losses, grads } = await runner.run(
        params,
        indices,
        // without masks the target is alpha 0 everywhere (data.ts): one background layer
        coefficientsAt(info.loss, iteration),
      );
      if (!finiteStep(losses, grads))
        throw new InvalidArgumentError(
          "--lr",
          `a rate at which the fit stays finite (iteration ${iteration + 1} gave a non-finite loss or gradient; nothing was updated)`,
          info.lr,
          {
            hint: "start a new fit with a smaller --lr or a larger --batch; the last checkpoint is unchanged",
          },
        );
      adam.step(params, grads, learningRateAt(info.lr, iteration, options.iterations, options.lrDecay));
      iteration++;
      lastPsnr = psnrOfRgbLoss(losses.rgb ?? NaN);
      options.onIteration?.({
        iteration,
        iterations: options.iterations,
        losses,
        psnr: lastPsnr,
        msPerIteration: performance.now() - t0,
      });
      options.onProgress?.({ status: "progress", task, done: iteration, total: options.iterations });
      if (iteration % every === 0 && iteration < options.iterations) await checkpoint();
    }
    await checkpoint();
  } finally {
    await runner?.release();
  }
  options.onProgress?.({ status: "done", task });
  const done = iteration - model.iteration;
  return {
    iterations: iteration,
    lastPsnr,
    msPerIteration: done > 0 ? (performance.now() - started) / done : 0,
  };
}

/** Whether every loss and gradient value of a step is finite. */
function finiteStep(
  losses: Readonly<Record<string, number>>,
  grads: ReadonlyMap<string, Float32Array | SparseRows>,
): boolean {
  if (!Object.values(losses).every(Number.isFinite)) return false;
  for (const g of grads.values()) {
    const values = g instanceof Float32Array ? g : g.values;
    for (const v of values) if (!Number.isFinite(v)) return false;
  }
  return true;
}

/** The fit's optimizer: Adam over every net; the grid tables (`<net>.grid.<l>`) updated lazily. */
export function atlasAdam(lr: number): Adam {
  return new Adam({ lr, lazy: (name) => GRID_TABLE.test(name) });
}

const GRID_TABLE = /\.grid\.\d+$/;

/** PSNR of a mean squared colour distance summed over 3 channels (the release's rgb loss). */
export function psnrOfRgbLoss(rgbLoss: number): number {
  return 10 * Math.log10(1 / (rgbLoss / 3));
}
