/**
 * A dense-prediction ONNX model (depth or soft edges) run with onnxruntime-node directly: one image
 * in as `[1, 3, H, W]` float32, one or more maps out (`[1, 1, h, w]`, `[1, h, w]` or `[h, w]`).
 * Preprocessing follows {@link ModelInputOptions}; a model with fixed input height/width in its
 * graph is always fed that size (stretching the image), whatever the options say.
 */
import { access } from "node:fs/promises";
import * as ort from "onnxruntime-node";
import {
  BackendError,
  FileNotFoundError,
  InvalidArgumentError,
  SessionInputError,
  UnsupportedError,
} from "../errors.js";
import type { Image } from "../image.js";
import { prepareOrtEnvironment } from "../runtime/ort-env.js";
import { imageToNchw, modelInputSize, type ModelInputOptions } from "./model-input.js";
import { loadCv } from "./opencv.js";
import { resizeFloatsSync, type Interpolation } from "./resize.js";

/** A float map at some resolution, row-major `[height, width]`. */
export interface FloatMap {
  readonly width: number;
  readonly height: number;
  readonly data: Float32Array;
}

export interface DenseModelOptions {
  /** (optional) graph input to feed; default the first input. */
  readonly inputName?: string;
  /** (optional) graph outputs to read; default every output, in graph order. */
  readonly outputNames?: readonly string[];
  /** (optional) onnxruntime session options (execution providers, threads). */
  readonly sessionOptions?: ort.InferenceSession.SessionOptions;
  /** (optional) how the caller named the model path, for messages (e.g. the CLI flag "--depth"). */
  readonly flag?: string;
}

/** An onnxruntime-node failure as a BackendError. */
function runtimeError(cause: unknown, hint: string): BackendError {
  return new BackendError(
    [{ provider: "onnxruntime-node", error: cause instanceof Error ? cause.message : String(cause) }],
    { cause, hint },
  );
}

export class DenseModel {
  private constructor(
    readonly path: string,
    private readonly session: ort.InferenceSession,
    readonly inputName: string,
    readonly outputNames: readonly string[],
    /** Fixed [height, width] of the graph input, if the graph declares numbers there. */
    readonly fixedSize: { readonly width: number; readonly height: number } | undefined,
  ) {}

  /** Loads an ONNX model file into a CPU (or `sessionOptions`) inference session. */
  static async create(path: string, options: DenseModelOptions = {}): Promise<DenseModel> {
    try {
      await access(path);
    } catch (cause) {
      throw new FileNotFoundError(path, "ONNX model", {
        cause,
        hint: `check the ${options.flag ?? "model"} path`,
      });
    }
    let session: ort.InferenceSession;
    prepareOrtEnvironment();
    try {
      session = await ort.InferenceSession.create(path, options.sessionOptions ?? {});
    } catch (cause) {
      throw runtimeError(
        cause,
        `${options.flag === undefined ? "" : `${options.flag} `}${path} could not be loaded as an ONNX model`,
      );
    }
    const inputName = options.inputName ?? session.inputNames[0];
    if (inputName === undefined || !session.inputNames.includes(inputName)) {
      await session.release();
      throw new SessionInputError(path, [
        `no input named "${String(inputName)}" (inputs: ${session.inputNames.join(", ")})`,
      ]);
    }
    const outputNames = options.outputNames ?? session.outputNames;
    const unknown = outputNames.filter((n) => !session.outputNames.includes(n));
    if (unknown.length > 0 || outputNames.length === 0) {
      await session.release();
      throw new InvalidArgumentError(
        "outputNames",
        `names among ${session.outputNames.join(", ")}`,
        outputNames,
      );
    }
    const meta = session.inputMetadata[session.inputNames.indexOf(inputName)];
    let fixedSize: { width: number; height: number } | undefined;
    if (meta !== undefined && meta.isTensor && meta.shape.length === 4) {
      const [, , h, w] = meta.shape;
      if (typeof h === "number" && typeof w === "number" && h > 0 && w > 0)
        fixedSize = { width: w, height: h };
    }
    return new DenseModel(path, session, inputName, outputNames, fixedSize);
  }

  /** The `[1, 3, h, w]` input size used for an image of `width` x `height`. */
  inputSize(width: number, height: number, options: ModelInputOptions): { width: number; height: number } {
    return this.fixedSize ?? modelInputSize(width, height, options);
  }

  /**
   * Runs the model on one image; returns each requested output as a map at the output's own
   * resolution (last two dimensions; every leading dimension must be 1).
   */
  async predict(img: Image, options: ModelInputOptions): Promise<FloatMap[]> {
    for (const [name, value] of [
      ["std", options.std],
      ["mean", options.mean],
    ] as const) {
      if (value.length !== 3 || value.some((v) => !Number.isFinite(v) || (name === "std" && v === 0))) {
        throw new InvalidArgumentError(
          name,
          name === "std" ? "three non-zero numbers" : "three numbers",
          value,
        );
      }
    }
    const cv = await loadCv();
    const size = this.inputSize(img.width, img.height, options);
    const input = imageToNchw(cv, img, size, options);
    const feeds = { [this.inputName]: new ort.Tensor("float32", input, [1, 3, size.height, size.width]) };
    let results: ort.InferenceSession.ReturnType;
    try {
      results = await this.session.run(feeds, [...this.outputNames]);
    } catch (cause) {
      throw runtimeError(
        cause,
        `running ${this.path} on a ${size.width}x${size.height} input failed; check the model's input size`,
      );
    }
    return this.outputNames.map((name) => {
      const t = results[name];
      if (t === undefined)
        throw new SessionInputError(this.path, [`output "${name}" missing from the results`]);
      if (t.type !== "float32")
        throw new UnsupportedError(`${this.path}: output "${name}" of type ${t.type} (only float32 maps)`);
      const dims = t.dims;
      const h = dims.length >= 2 ? (dims[dims.length - 2] ?? 0) : 0;
      const w = dims.length >= 2 ? (dims[dims.length - 1] ?? 0) : 0;
      if (dims.length < 2 || dims.slice(0, -2).some((d) => d !== 1)) {
        throw new UnsupportedError(`${this.path}: output "${name}" has shape [${dims.join(", ")}]`, {
          hint: "expected one map: [h, w], [1, h, w] or [1, 1, h, w]",
        });
      }
      return { width: w, height: h, data: Float32Array.from(t.data as Float32Array) };
    });
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Resizes a float map to `width` x `height` (`cv2.resize` on float32, no rounding). */
export async function resizeMap(
  map: FloatMap,
  width: number,
  height: number,
  interpolation: Interpolation,
): Promise<FloatMap> {
  const cv = await loadCv();
  const data = resizeFloatsSync(
    cv,
    map.data,
    { width: map.width, height: map.height, channels: 1 },
    { width, height, interpolation },
  );
  return { width, height, data };
}
