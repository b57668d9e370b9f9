/**
 * Inference sessions over onnxruntime-node, created by path so external data loads from beside the
 * model. Execution providers are tried in order; every failure is kept (`session.fallbacks`) and
 * reported through `onFallback`; if none works, one BackendError lists every attempt. Feeds are
 * validated before running and all problems are reported together in one SessionInputError.
 */
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import ort from "onnxruntime-node";
import {
  BackendError,
  FileNotFoundError,
  InvalidArgumentError,
  SessionInputError,
  throwIfAborted,
} from "../errors.js";
import type { HostTensor } from "../tensor.js";
import { withAtomicFile } from "../util/atomic-write.js";
import { cacheEntry } from "./model-cache.js";
import { prepareOrtEnvironment } from "./ort-env.js";
import { dtypeFromOrt, fromOrtTensor, toOrtTensor } from "./ort-tensor.js";
import { type TensorSpec, validateFeeds } from "./validate-feeds.js";

export const EXECUTION_PROVIDERS = ["cpu", "webgpu", "cuda"] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];

export interface ProviderFailure {
  readonly provider: ExecutionProvider;
  readonly error: string;
  /** (optional) true when the provider works but was not given this model: it is known to get it wrong (runtime/provider-limits.ts). */
  readonly knownLimit?: boolean;
}

/** What a user asks to run on (the CLI's --device); each maps to providers with the CPU as fallback. */
export const DEVICES = ["cpu", "cuda", "webgpu"] as const;
export type Device = (typeof DEVICES)[number];

/** The execution providers to try for `device`, best first, ending with "cpu". */
export function providersForDevice(device: Device): ExecutionProvider[] {
  if (!DEVICES.includes(device))
    throw new InvalidArgumentError("device", `one of ${DEVICES.join(", ")}`, device);
  return device === "cpu" ? ["cpu"] : [device, "cpu"];
}

/** One line saying why a provider failed and what to do about it (for a fallback warning). */
export function explainFallback(failure: ProviderFailure): string {
  if (failure.knownLimit === true) return `${failure.provider} not used for this model: ${failure.error}`;
  const missingLibrary = /shared librar|cannot open shared object|Failed to load/i.test(failure.error);
  const fix =
    failure.provider === "cuda"
      ? missingLibrary
        ? "the CUDA build of onnxruntime-node is not installed, or CUDA 12 / cuDNN 9 libraries are missing: run `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node` on a machine with an NVIDIA driver (see the README)"
        : "check the NVIDIA driver and the CUDA 12 / cuDNN 9 libraries (see the README)"
      : failure.provider === "webgpu"
        ? "no WebGPU adapter was found (needs a GPU with Vulkan, Metal or D3D12 drivers)"
        : "check the model file";
  // ORT's messages start with source locations; their end says what happened.
  const said = failure.error.length > 160 ? `...${failure.error.slice(-160)}` : failure.error;
  return `${failure.provider} unavailable (${said}); ${fix}`;
}

/**
 * Environment variable: the execution providers (comma-separated, tried in order, e.g. "webgpu" or
 * "webgpu,cpu") of every session whose caller names none. Unset or empty: ["cpu"]. Lets a whole
 * run (e.g. `steadyframe conformance --device webgpu`) move to another provider without threading
 * an option through every model loader.
 */
export const DEVICE_ENV = "STEADYFRAME_DEVICE";

/** The providers a session uses when its caller names none ($STEADYFRAME_DEVICE, else ["cpu"]). */
export function defaultExecutionProviders(): readonly ExecutionProvider[] {
  const raw = process.env[DEVICE_ENV]?.trim() ?? "";
  if (raw === "") return ["cpu"];
  const providers: ExecutionProvider[] = [];
  for (const item of raw.split(",").map((s) => s.trim())) {
    const provider = EXECUTION_PROVIDERS.find((p) => p === item);
    if (provider === undefined)
      throw new InvalidArgumentError(
        DEVICE_ENV,
        `a comma-separated list of ${EXECUTION_PROVIDERS.join(", ")}`,
        raw,
        { hint: `unset ${DEVICE_ENV} to run on the CPU` },
      );
    if (!providers.includes(provider)) providers.push(provider);
  }
  return providers;
}

export interface CreateSessionOptions {
  /** Providers to try in order (default: defaultExecutionProviders(), i.e. ["cpu"] unless $STEADYFRAME_DEVICE is set); e.g. ["webgpu", "cpu"]. */
  readonly executionProviders?: readonly ExecutionProvider[];
  /** Threads for one op (default: ORT's choice, one per core). */
  readonly intraOpNumThreads?: number;
  /** Folder for the compiled-model cache (default: no cache). */
  readonly cacheDir?: string;
  /** Symbolic dims fixed at load (lets ORT plan memory, e.g. { batch: 2 }). */
  readonly freeDimensionOverrides?: Readonly<Record<string, number>>;
  /** Called once per provider that failed before one worked. */
  readonly onFallback?: (failure: ProviderFailure) => void;
  readonly signal?: AbortSignal;
}

/** "rebuilt": a cached file failed to load and was replaced (see `Session.cacheNote`). */
export type CacheStatus = "disabled" | "hit" | "written" | "rebuilt";

export interface RunOptions {
  /** Output names to fetch (default: all). */
  readonly outputs?: readonly string[];
  /**
   * (optional) preallocated CPU buffers for some outputs, by name (shape and dtype of the output):
   * ONNX Runtime writes into them and the result holds them, so a loop that runs the same graph
   * (a training step handing back every gradient) does not allocate and fault in fresh memory for
   * each run. Not with `outputs`.
   */
  readonly into?: Readonly<Record<string, HostTensor>>;
  readonly signal?: AbortSignal;
}

export class Session {
  /** Input and output specs as the model declares them. */
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];

  constructor(
    private readonly ortSession: ort.InferenceSession,
    readonly modelPath: string,
    /** The provider that created the session. */
    readonly provider: ExecutionProvider,
    /** Providers that were tried first and failed, with the reason. */
    readonly fallbacks: readonly ProviderFailure[],
    readonly cache: CacheStatus,
    /** Why the cache was rebuilt, when it was. */
    readonly cacheNote: string | undefined,
    /** Wall time of session creation in ms (including cache lookup). */
    readonly createMs: number,
  ) {
    this.inputs = ortSession.inputMetadata.map(toSpec);
    this.outputs = ortSession.outputMetadata.map(toSpec);
  }

  /** All problems with `feeds` (empty when they fit the model). */
  check(feeds: Readonly<Record<string, HostTensor>>): string[] {
    return validateFeeds(this.inputs, feeds);
  }

  /** Validates the feeds (one SessionInputError listing every problem), runs, returns host tensors. */
  async run(
    feeds: Readonly<Record<string, HostTensor>>,
    options: RunOptions = {},
  ): Promise<Record<string, HostTensor>> {
    const problems = this.check(feeds);
    if (problems.length > 0) {
      throw new SessionInputError(this.modelPath, problems, {
        hint: `the model takes ${this.inputs.map((s) => `${s.name}: ${s.dtype ?? "?"}[${s.shape.join(", ")}]`).join(", ")}`,
      });
    }
    throwIfAborted(options.signal, `running ${this.modelPath}`);
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = toOrtTensor(t);
    let results: ort.InferenceSession.ReturnType;
    if (options.into) {
      const fetches: Record<string, ort.Tensor | null> = {};
      for (const spec of this.outputs) {
        const buffer = options.into[spec.name];
        fetches[spec.name] = buffer ? toOrtTensor(buffer) : null;
      }
      results = await this.ortSession.run(ortFeeds, fetches);
    } else if (options.outputs) results = await this.ortSession.run(ortFeeds, options.outputs);
    else results = await this.ortSession.run(ortFeeds);
    throwIfAborted(options.signal, `running ${this.modelPath}`);
    const out: Record<string, HostTensor> = {};
    for (const [name, v] of Object.entries(results)) {
      if (v instanceof ort.Tensor) out[name] = fromOrtTensor(v, name);
    }
    return out;
  }

  async release(): Promise<void> {
    await this.ortSession.release();
  }
}

function toSpec(m: ort.InferenceSession.ValueMetadata): TensorSpec {
  if (!m.isTensor) return { name: m.name, dtype: undefined, shape: [] };
  return {
    name: m.name,
    dtype: dtypeFromOrt(m.type),
    shape: m.shape.map((d) => (typeof d === "number" ? (d >= 0 ? d : "?") : d === "" ? "?" : d)),
  };
}

function message(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s+/g, " ").trim().slice(0, 500);
}

/** Creates a session for the model at `modelPath` (see the file comment). */
export async function createSession(modelPath: string, options: CreateSessionOptions = {}): Promise<Session> {
  const started = performance.now();
  prepareOrtEnvironment();
  const providers = options.executionProviders ?? defaultExecutionProviders();
  if (providers.length === 0)
    throw new InvalidArgumentError(
      "executionProviders",
      `a non-empty list of ${EXECUTION_PROVIDERS.join(", ")}`,
      [],
    );
  for (const p of providers) {
    if (!EXECUTION_PROVIDERS.includes(p))
      throw new InvalidArgumentError("executionProviders", `one of ${EXECUTION_PROVIDERS.join(", ")}`, p);
  }
  const fileStat = await stat(modelPath).catch(() => null);
  if (!fileStat?.isFile())
    throw new FileNotFoundError(modelPath, "ONNX model", { hint: "export the model first" });
  const base: ort.InferenceSession.SessionOptions = {
    ...(options.intraOpNumThreads === undefined ? {} : { intraOpNumThreads: options.intraOpNumThreads }),
    ...(options.freeDimensionOverrides === undefined
      ? {}
      : { freeDimensionOverrides: options.freeDimensionOverrides }),
    logSeverityLevel: 3,
  };
  const failures: ProviderFailure[] = [];
  for (const provider of providers) {
    throwIfAborted(options.signal, `loading ${modelPath}`);
    try {
      const { session, cache, note } = await createWithCache(modelPath, provider, base, options.cacheDir);
      if (options.signal?.aborted) {
        await session.release();
        throwIfAborted(options.signal, `loading ${modelPath}`);
      }
      return new Session(session, modelPath, provider, failures, cache, note, performance.now() - started);
    } catch (error) {
      if (options.signal?.aborted) throw error;
      const failure = { provider, error: message(error) };
      failures.push(failure);
      options.onFallback?.(failure);
    }
  }
  throw new BackendError(failures, {
    hint: providers.includes("cpu")
      ? "check that the model file is valid"
      : 'add "cpu" to executionProviders as a fallback',
  });
}

async function createWithCache(
  modelPath: string,
  provider: ExecutionProvider,
  base: ort.InferenceSession.SessionOptions,
  cacheDir: string | undefined,
): Promise<{ session: ort.InferenceSession; cache: CacheStatus; note?: string }> {
  const sessionOptions = { ...base, executionProviders: [provider] };
  if (cacheDir === undefined)
    return { session: await ort.InferenceSession.create(modelPath, sessionOptions), cache: "disabled" };
  const entry = await cacheEntry(modelPath, cacheDir, { provider, optimizationLevel: "all" });
  const cached = await stat(entry.modelPath).catch(() => null);
  let note: string | undefined;
  if (cached?.isFile()) {
    try {
      return {
        session: await ort.InferenceSession.create(entry.modelPath, {
          ...sessionOptions,
          graphOptimizationLevel: "disabled",
        }),
        cache: "hit",
      };
    } catch (error) {
      // Compile again from the original; the entry is replaced only if that works.
      note = `cached ${entry.modelPath} failed to load (${message(error)}); rebuilt it`;
    }
  }
  await mkdir(cacheDir, { recursive: true });
  // Each write gets its own data file (its name is stored in the optimized model), so replacing an
  // entry is one atomic rename of the model; older data files of the entry are removed afterwards.
  const id = `${process.pid}-${randomBytes(4).toString("hex")}`;
  const dataFileName = `${entry.stem}.${id}.onnx.data`;
  try {
    // ORT writes the optimized model to a temporary name, renamed into place when the session works.
    const session = await withAtomicFile(
      entry.modelPath,
      (tmp) =>
        ort.InferenceSession.create(modelPath, {
          ...sessionOptions,
          graphOptimizationLevel: "all",
          optimizedModelFilePath: tmp,
          extra: {
            session: {
              optimized_model_external_initializers_file_name: dataFileName,
              optimized_model_external_initializers_min_size_in_bytes: "1024",
            },
          },
        }),
      { durable: false },
    );
    for (const f of await readdir(cacheDir)) {
      if (f.startsWith(`${entry.stem}.`) && f.endsWith(".onnx.data") && f !== dataFileName)
        await rm(join(cacheDir, f), { force: true });
    }
    return note === undefined ? { session, cache: "written" } : { session, cache: "rebuilt", note };
  } catch (error) {
    await rm(join(cacheDir, dataFileName), { force: true });
    throw error;
  }
}
