/**
 * Shared plumbing of the model runners (./model-runner.ts): open a diffusers component folder's
 * weights, write a built graph with external data into a cache folder, and open an ONNX Runtime
 * session on it.
 *
 * The cache folder name hashes the graph structure (nodes, constants, inputs/outputs, initializer
 * names/dtypes/shapes: so config and build options are covered, and a changed builder never reuses
 * a stale file) and the weights' identity (file path, size and mtime). Weights without an identity
 * (in-memory or synthesized stores, unless the caller names them with `weightsId`) are written to a
 * fresh folder that is deleted on release.
 *
 * The cache folder and its size cap (least recently used entries deleted after each write, never
 * one in use by this process) are described in runtime/cache-store.ts.
 */
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { BackendError, FileNotFoundError } from "../errors.js";
import type { GraphBuilder } from "../graph/builder.js";
import { writeModel } from "../graph/serialize.js";
import { type WeightStore, safetensorsStore } from "../nn/weight-store.js";
import type { LongTaskOptions } from "../progress.js";
import { cacheMaxBytes, evictCache, resolveCacheDir, touchCacheEntry } from "../runtime/cache-store.js";
import { providerLimit } from "../runtime/provider-limits.js";
import {
  type CreateSessionOptions,
  type ExecutionProvider,
  type ProviderFailure,
  type Session,
  createSession,
  defaultExecutionProviders,
} from "../runtime/session.js";
import { openSafetensors } from "../weights/safetensors.js";

export interface ModelLoadOptions extends LongTaskOptions {
  /**
   * (optional, default "load") when a runner writes and opens its graphs: in `load`, or on the first
   * call that needs each one ("first-use"). The same policy for every runner (./model-runner.ts).
   */
  readonly compile?: "load" | "first-use";
  /** (optional, default $STEADYFRAME_CACHE_DIR, else `<os tmpdir>/steadyframe/models`) folder for the written ONNX models. */
  readonly cacheDir?: string;
  /** (optional, default ["cpu"]) execution providers to try in order. */
  readonly executionProviders?: readonly ExecutionProvider[];
  /** (optional) threads per op (default: ORT's choice). */
  readonly intraOpNumThreads?: number;
  /** (optional) fix symbolic dims at load, e.g. { batch: 2, height: 64, width: 64 }. */
  readonly freeDimensionOverrides?: Readonly<Record<string, number>>;
  /** (optional) ORT's optimized-model cache folder (see runtime/session.ts; costs a second copy of the weights). */
  readonly sessionCacheDir?: string;
  /** (optional) told about each execution provider that failed before one worked (runtime/session.ts). */
  readonly onFallback?: CreateSessionOptions["onFallback"];
}

/** Weights opened from a diffusers component folder. */
export interface ComponentWeights {
  readonly store: WeightStore;
  /** "path:size:mtime" of the weight file. */
  readonly identity: string;
  readonly path: string;
}

/** Opens `<dir>/<fileName>` (default diffusion_pytorch_model.safetensors) lazily. */
export async function openComponentWeights(
  dir: string,
  fileName = "diffusion_pytorch_model.safetensors",
): Promise<ComponentWeights> {
  const path = join(dir, fileName);
  const info = await stat(path).catch(() => null);
  if (!info?.isFile()) {
    throw new FileNotFoundError(path, "model weights", {
      hint: `expected a diffusers component folder with ${fileName} next to config.json`,
    });
  }
  const file = await openSafetensors(path);
  return { store: safetensorsStore(file), identity: `${path}:${info.size}:${info.mtimeMs}`, path };
}

/** A stable hash of everything in the graph except the weight values. */
export function graphStructureHash(g: GraphBuilder): string {
  const hash = createHash("sha256");
  const json = (v: unknown): string =>
    JSON.stringify(v, (_k, x: unknown) =>
      typeof x === "bigint"
        ? `${x}n`
        : ArrayBuffer.isView(x)
          ? Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString("base64")
          : x,
    );
  hash.update(
    json({
      opset: g.opset,
      imports: [...g.opsetImports],
      inputs: g.inputs.map(String),
      outputs: g.outputs.map(String),
    }),
  );
  for (const n of g.nodes) hash.update(json(n));
  for (const c of g.constants) hash.update(json(c));
  for (const i of g.initializers)
    hash.update(json({ name: i.name, dtype: i.dtype, shape: i.shape, source: i.source.dtype }));
  return hash.digest("hex").slice(0, 24);
}

/** Cache entry folders with a live session in this process (never evicted). */
const inUse = new Map<string, number>();

function hold(folder: string): void {
  inUse.set(folder, (inUse.get(folder) ?? 0) + 1);
}

function letGo(folder: string): void {
  const n = (inUse.get(folder) ?? 1) - 1;
  if (n > 0) inUse.set(folder, n);
  else inUse.delete(folder);
}

export interface CompiledGraph {
  readonly session: Session;
  readonly modelPath: string;
  /** True when an earlier written model was reused (nothing was written). */
  readonly reused: boolean;
  /** Releases the session and deletes an uncached model folder. */
  release(): Promise<void>;
}

/**
 * The providers to try for `g`: the caller's (or the default) list without those known to get this
 * graph wrong (runtime/provider-limits.ts), each dropped one reported through onFallback. Throws the
 * BackendError a session would when none is left.
 */
function usableProviders(g: GraphBuilder, options: ModelLoadOptions): readonly ExecutionProvider[] {
  const wanted = options.executionProviders ?? defaultExecutionProviders();
  const refused: ProviderFailure[] = [];
  const usable = wanted.filter((provider) => {
    const reason = providerLimit(g, provider);
    if (reason === null) return true;
    const failure = { provider, error: reason, knownLimit: true };
    refused.push(failure);
    options.onFallback?.(failure);
    return false;
  });
  if (usable.length === 0)
    throw new BackendError(refused, { hint: 'add "cpu" to the execution providers as a fallback' });
  return usable;
}

/**
 * Builds `g` (already populated by the caller), writes it unless the cache holds it, opens a session.
 * `weightsId` null = no identity: written to a temporary folder removed on release.
 */
export async function compileGraph(
  g: GraphBuilder,
  name: string,
  weightsId: string | null,
  options: ModelLoadOptions,
): Promise<CompiledGraph> {
  const root = resolveCacheDir(options.cacheDir);
  const maxBytes = cacheMaxBytes();
  await mkdir(root, { recursive: true });
  let folder: string;
  let temporary = false;
  if (weightsId === null) {
    folder = await mkdtemp(join(root, `${name}-uncached-`));
    temporary = true;
  } else {
    const key = createHash("sha256")
      .update(graphStructureHash(g))
      .update("\0")
      .update(weightsId)
      .digest("hex")
      .slice(0, 24);
    folder = join(root, `${name}-${key}`);
  }
  const modelPath = join(folder, "model.onnx");
  const write = async (): Promise<void> => {
    await mkdir(folder, { recursive: true });
    await writeModel(g, modelPath, {
      durable: false,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  };
  const sessionOptions: CreateSessionOptions = {
    executionProviders: usableProviders(g, options),
    ...(options.intraOpNumThreads === undefined ? {} : { intraOpNumThreads: options.intraOpNumThreads }),
    ...(options.freeDimensionOverrides ? { freeDimensionOverrides: options.freeDimensionOverrides } : {}),
    ...(options.sessionCacheDir === undefined ? {} : { cacheDir: options.sessionCacheDir }),
    ...(options.onFallback ? { onFallback: options.onFallback } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  };
  const existing = temporary ? null : await stat(modelPath).catch(() => null);
  let reused = existing?.isFile() ?? false;
  hold(folder);
  try {
    if (!reused) await write();
    if (!temporary) {
      await touchCacheEntry(folder);
      if (!reused) await evictCache(root, maxBytes, new Set(inUse.keys()));
    }
    let session: Session;
    try {
      session = await createSession(modelPath, sessionOptions);
    } catch (error) {
      // A cached model that no longer loads (e.g. its data file was cut short) is written again, once.
      if (!reused || options.signal?.aborted) throw error;
      reused = false;
      await rm(folder, { recursive: true, force: true });
      await write();
      session = await createSession(modelPath, sessionOptions);
    }
    return {
      session,
      modelPath,
      reused,
      release: async () => {
        letGo(folder);
        await session.release();
        if (temporary) await rm(folder, { recursive: true, force: true });
      },
    };
  } catch (error) {
    letGo(folder);
    if (temporary) await rm(folder, { recursive: true, force: true });
    throw error;
  }
}
