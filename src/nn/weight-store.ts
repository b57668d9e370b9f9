/**
 * Weight stores: where modules get their weights by key. A store lists its keys with dtype and shape
 * and hands out lazy sources; synthesizing stores (random, zeros) make a source for any requested
 * key so a whole model builds with no checkpoint.
 */
import { InvalidArgumentError } from "../errors.js";
import { type WeightSource, castTensor, lazySource, tensorSource } from "../graph/weight-source.js";
import { type DType, type HostTensor, type Shape, numel, tensor } from "../tensor.js";
import type { LowRankBranches } from "./low-rank.js";

export interface WeightInfo {
  readonly dtype: DType;
  readonly shape: Shape;
}

export interface WeightStore {
  /** Names the store in error messages (a file path, "random weights", ...). */
  readonly name: string;
  keys(): Iterable<string>;
  info(key: string): WeightInfo | undefined;
  /** A lazy source for a key listed by `keys()`. */
  source(key: string): WeightSource;
  /** Present on synthesizing stores: a source for any key, shape and dtype. */
  synthesize?(key: string, shape: Shape, dtype: DType): WeightSource;
  /**
   * Present on stores with unfused LoRAs (src/weights/lora/live.ts): the low-rank branches every model
   * bound to this store adds to its layers (WeightScope.bind passes them on as a build option).
   */
  readonly lowRank?: LowRankBranches;
}

/** The part of `SafetensorsFile` (src/weights/safetensors.ts) the adapter needs. */
export interface TensorFileLike {
  readonly path: string;
  keys(): Iterable<string>;
  info(name: string): WeightInfo | undefined;
  read(name: string): Promise<HostTensor>;
}

/** A store over an opened safetensors file: each tensor is read from disk only when written. */
export function safetensorsStore(file: TensorFileLike): WeightStore {
  return {
    name: file.path,
    keys: () => file.keys(),
    info: (key) => file.info(key),
    source: (key) => {
      const info = file.info(key);
      if (!info) throw new InvalidArgumentError("key", `a tensor name in ${file.path}`, key);
      return lazySource(info.dtype, info.shape, () => file.read(key));
    },
  };
}

/** A store over tensors in memory. */
export function mapStore(
  tensors: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>,
  name = "in-memory weights",
): WeightStore {
  const map: ReadonlyMap<string, HostTensor> =
    tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  return {
    name,
    keys: () => map.keys(),
    info: (key) => map.get(key),
    source: (key) => {
      const t = map.get(key);
      if (!t) throw new InvalidArgumentError("key", `one of the ${map.size} keys of ${name}`, key);
      return tensorSource(t);
    },
  };
}

/** 32-bit FNV-1a hash of a string (stable per-key seeds). */
function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** mulberry32: a small fast PRNG, uniform in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RandomWeightsOptions {
  /** Seed; each key gets its own stream derived from it, so values do not depend on binding order. */
  readonly seed?: number;
  /** Uniform bound multiplier: values in ±scale/sqrt(fan_in) (default 1, like PyTorch's default init). */
  readonly scale?: number;
}

/**
 * Synthesizes deterministic random weights for any requested key: 1-D `weight`s (norm scales) are
 * near 1, biases small, matrices/kernels uniform in ±scale/sqrt(fan_in). Each key gets a block of
 * 65521 pseudo-random values tiled over the tensor (fast; not i.i.d. beyond the block). For benchmarks
 * and graphs built without a checkpoint; the values are not those of any trained model.
 */
export function randomWeights(options: RandomWeightsOptions = {}): WeightStore {
  const seed = options.seed ?? 0;
  const scale = options.scale ?? 1;
  return {
    name: `random weights (seed ${seed})`,
    keys: () => [],
    info: () => undefined,
    source: (key) => {
      throw new InvalidArgumentError("key", "a requested shape (random weights synthesize only)", key);
    },
    synthesize: (key, shape, dtype) =>
      lazySource(dtype, shape, () => {
        const rand = mulberry32(hashKey(key) ^ Math.imul(seed, 0x9e3779b1));
        const fanIn = shape.length >= 2 ? numel(shape.slice(1)) : (shape[0] ?? 1);
        const isNormScale = shape.length === 1 && key.endsWith("weight");
        const bound = (isNormScale || key.endsWith("bias") ? 0.1 : 1 / Math.sqrt(Math.max(1, fanIn))) * scale;
        const values = tiledUniform(numel(shape), rand, isNormScale ? 1 : 0, bound);
        return Promise.resolve(castTensor(tensor("float32", shape, values), dtype));
      }),
  };
}

/** Random block length: prime, so tiled rows of a matrix start at different phases. */
const BLOCK = 65521;

/**
 * `n` values uniform in offset ± bound: one random block of BLOCK values, tiled with memcpy (a 300 MB
 * weight is generated at memory speed instead of ~30 ns per value).
 */
function tiledUniform(n: number, rand: () => number, offset: number, bound: number): Float32Array {
  const out = new Float32Array(n);
  const first = Math.min(n, BLOCK);
  for (let i = 0; i < first; i++) out[i] = offset + (rand() * 2 - 1) * bound;
  for (let filled = first; filled < n; filled *= 2) out.copyWithin(filled, 0, Math.min(filled, n - filled));
  return out;
}

/** Synthesizes zeros for any requested key (fast graph builds; outputs are meaningless). */
export function zeroWeights(): WeightStore {
  return {
    name: "zero weights",
    keys: () => [],
    info: () => undefined,
    source: (key) => {
      throw new InvalidArgumentError("key", "a requested shape (zero weights synthesize only)", key);
    },
    synthesize: (_key, shape, dtype) => lazySource(dtype, shape, () => Promise.resolve(tensor(dtype, shape))),
  };
}
