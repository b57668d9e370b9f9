/**
 * Annotator networks (HED, M-LSD, sketch simplification, OpenPose body) as graph modules over the
 * weight files users already have: a `.pth` read through the safe unpickler (no Python, nothing
 * executed) or a `.safetensors` copy, bound with initializer names equal to the file's keys. Every
 * missing, unexpected and mis-shaped key is reported at once (one MissingWeightsError); the graph
 * takes `[1, C, height, width]` float32 with symbolic height/width, is compiled in memory and run on
 * onnxruntime-node. The small layers PyTorch has and `nn/` does not (BatchNorm2d in eval mode,
 * MaxPool2d, ConvTranspose2d) are here, with PyTorch's semantics.
 */
import { access } from "node:fs/promises";
import ort from "onnxruntime-node";
import {
  BackendError,
  FileNotFoundError,
  GraphError,
  MissingWeightsError,
  SessionInputError,
} from "../../errors.js";
import { GraphBuilder, attr, type Value } from "../../graph/builder.js";
import type { Dim } from "../../graph/shape.js";
import { encodeModelInline } from "../../graph/serialize.js";
import { Module } from "../../nn/module.js";
import { mapStore, safetensorsStore, type WeightStore } from "../../nn/weight-store.js";
import { WeightScope } from "../../nn/weights.js";
import { prepareOrtEnvironment } from "../../runtime/ort-env.js";
import { fromOrtTensor, toOrtTensor } from "../../runtime/ort-tensor.js";
import type { HostTensor } from "../../tensor.js";
import { readTorchStateDict } from "../../weights/pickle/index.js";
import { openSafetensors } from "../../weights/safetensors.js";

/** Where a weight file came from, for messages: what it is and which option names it. */
export interface WeightFileRole {
  /** "HED weights (ControlNetHED.pth or network-bsds500.pth)". */
  readonly what: string;
  /** The option or flag that names the file ("weights.hed" / "--hed-weights"). */
  readonly option: string;
}

/**
 * Opens an annotator weight file as a WeightStore: `.safetensors` by extension, anything else as a
 * PyTorch checkpoint through the safe unpickler (its state dict, `state_dict` unwrapped).
 */
export async function openAnnotatorWeights(path: string, role: WeightFileRole): Promise<WeightStore> {
  try {
    await access(path);
  } catch (cause) {
    throw new FileNotFoundError(path, role.what, { cause, hint: `pass the file with ${role.option}` });
  }
  if (path.toLowerCase().endsWith(".safetensors")) return safetensorsStore(await openSafetensors(path));
  return mapStore(await readTorchStateDict(path), path);
}

/** Keys PyTorch saves that no computation uses (BatchNorm's update counter). */
export const ignoreBookkeeping = (key: string): boolean => key.endsWith(".num_batches_tracked");

const pair = (v: number | readonly [number, number]): [number, number] =>
  typeof v === "number" ? [v, v] : [v[0], v[1]];

function spatialOut(d: Dim | undefined, k: number, s: number, p: number, dil = 1): Dim {
  if (typeof d !== "number") return s === 1 && 2 * p === dil * (k - 1) ? (d ?? null) : null;
  return Math.floor((d + 2 * p - dil * (k - 1) - 1) / s) + 1;
}

/** torch.nn.functional.max_pool2d(x, kernel, stride, padding) (floor mode; padding counts as -inf). */
export function maxPool2d(g: GraphBuilder, x: Value, kernel: number, stride: number, padding = 0): Value {
  if (x.rank !== 4) throw new GraphError("MaxPool", `input must be [N, C, H, W], got rank ${x.rank}`);
  return g.node1(
    "MaxPool",
    [x],
    {
      kernel_shape: attr.ints([kernel, kernel]),
      strides: attr.ints([stride, stride]),
      pads: attr.ints([padding, padding, padding, padding]),
    },
    {
      dtype: x.dtype,
      shape: [
        x.shape[0] ?? null,
        x.shape[1] ?? null,
        spatialOut(x.shape[2], kernel, stride, padding),
        spatialOut(x.shape[3], kernel, stride, padding),
      ],
    },
  );
}

/** torch.nn.BatchNorm2d in eval mode: keys weight, bias, running_mean, running_var (eps 1e-5). */
export class BatchNorm2d extends Module {
  readonly weight: Value;
  readonly bias: Value;
  readonly mean: Value;
  readonly variance: Value;
  constructor(
    w: WeightScope,
    readonly channels: number,
    readonly eps = 1e-5,
  ) {
    super(w);
    this.weight = w.param("weight", [channels]);
    this.bias = w.param("bias", [channels]);
    this.mean = w.param("running_mean", [channels]);
    this.variance = w.param("running_var", [channels]);
  }
  forward(x: Value): Value {
    return this.scoped(() =>
      this.graph.node1(
        "BatchNormalization",
        [x, this.weight, this.bias, this.mean, this.variance],
        { epsilon: attr.float(this.eps) },
        { dtype: x.dtype, shape: x.shape },
      ),
    );
  }
}

export interface ConvTranspose2dOptions {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  readonly stride?: number;
  readonly padding?: number;
}

/** torch.nn.ConvTranspose2d: weight [in, out, k, k], bias [out]; out = (in - 1) s - 2 p + k. */
export class ConvTranspose2d extends Module {
  readonly weight: Value;
  readonly bias: Value;
  constructor(
    w: WeightScope,
    readonly options: ConvTranspose2dOptions,
  ) {
    super(w);
    const k = options.kernelSize;
    this.weight = w.param("weight", [options.inChannels, options.outChannels, k, k]);
    this.bias = w.param("bias", [options.outChannels]);
  }
  forward(x: Value): Value {
    const k = this.options.kernelSize;
    const s = this.options.stride ?? 1;
    const p = this.options.padding ?? 0;
    const dim = (d: Dim | undefined): Dim => (typeof d === "number" ? (d - 1) * s - 2 * p + k : null);
    return this.scoped(() =>
      this.graph.node1(
        "ConvTranspose",
        [x, this.weight, this.bias],
        {
          kernel_shape: attr.ints(pair(k)),
          strides: attr.ints(pair(s)),
          pads: attr.ints([p, p, p, p]),
        },
        {
          dtype: x.dtype,
          shape: [x.shape[0] ?? null, this.options.outChannels, dim(x.shape[2]), dim(x.shape[3])],
        },
      ),
    );
  }
}

/** Builds the network's outputs from the bound root scope and the `[1, C, height, width]` input. */
export type NetBuilder = (w: WeightScope, input: Value) => readonly Value[];

export interface AnnotatorNetOptions {
  /** Input channels (3 for RGB, 4 for M-LSD's RGB + ones, 1 for the sketch net). */
  readonly inputChannels: number;
  /** onnxruntime execution providers (default ["cpu"]). */
  readonly executionProviders?: readonly string[];
  /** Threads for one op (default: onnxruntime's choice). */
  readonly intraOpNumThreads?: number;
  /** What the file should hold, for the wrong-keys message ("HED weights (ControlNetHED.pth ...)"). */
  readonly expected?: string;
}

/** A compiled annotator network: `run` feeds one `[1, C, H, W]` float32 tensor. */
export class AnnotatorNet {
  private constructor(
    readonly source: string,
    private readonly session: ort.InferenceSession,
    readonly outputNames: readonly string[],
  ) {}

  /**
   * Binds `store` to the network `build` describes (one MissingWeightsError listing every wrong key),
   * compiles it in memory and opens a session.
   */
  static async create(
    store: WeightStore,
    build: NetBuilder,
    options: AnnotatorNetOptions,
  ): Promise<AnnotatorNet> {
    const g = buildAnnotatorGraph(store, build, options.inputChannels, options.expected);
    const bytes = await encodeModelInline(g);
    prepareOrtEnvironment();
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        executionProviders: [...(options.executionProviders ?? ["cpu"])],
        ...(options.intraOpNumThreads === undefined ? {} : { intraOpNumThreads: options.intraOpNumThreads }),
        logSeverityLevel: 3,
      });
    } catch (cause) {
      throw new BackendError(
        [{ provider: "onnxruntime-node", error: cause instanceof Error ? cause.message : String(cause) }],
        { cause, hint: `the annotator graph built from ${store.name} could not be loaded` },
      );
    }
    return new AnnotatorNet(
      store.name,
      session,
      g.outputs.map((o) => o.name),
    );
  }

  /** Runs the network; outputs in the order `build` returned them. */
  async run(input: HostTensor<"float32">): Promise<HostTensor[]> {
    let results: ort.InferenceSession.ReturnType;
    try {
      results = await this.session.run({ image: toOrtTensor(input) });
    } catch (cause) {
      throw new BackendError(
        [{ provider: "onnxruntime-node", error: cause instanceof Error ? cause.message : String(cause) }],
        { cause, hint: `running the annotator from ${this.source} on [${input.shape.join(", ")}] failed` },
      );
    }
    return this.outputNames.map((name) => {
      const t = results[name];
      if (!(t instanceof ort.Tensor))
        throw new SessionInputError(this.source, [`output "${name}" missing from the results`]);
      return fromOrtTensor(t, name);
    });
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * The annotator graph with its weights bound (input "image" `[1, C, "height", "width"]`, outputs
 * "out0", "out1", ...). Throws one MissingWeightsError for every key problem.
 */
export function buildAnnotatorGraph(
  store: WeightStore,
  build: NetBuilder,
  inputChannels: number,
  expected = "the annotator network's weights",
): GraphBuilder {
  const g = new GraphBuilder({ name: "annotator" });
  const w = WeightScope.bind(g, store, { dtype: "float32" });
  const x = g.input("image", "float32", [1, inputChannels, "height", "width"]);
  const outputs = build(w, x);
  try {
    w.finish({ ignoreUnexpected: ignoreBookkeeping });
  } catch (error) {
    if (!(error instanceof MissingWeightsError)) throw error;
    throw new MissingWeightsError(error.source, error.missing, error.unexpected, error.misshaped, {
      hint:
        `${store.name} does not hold ${expected} in the released key layout ` +
        "(every wrong key is listed); pass the original file or a safetensors copy with the same keys",
    });
  }
  outputs.forEach((o, i) => g.output(o, `out${i}`));
  return g;
}
