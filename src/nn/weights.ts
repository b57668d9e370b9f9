/**
 * WeightScope: scoped key paths into a WeightStore, bound to a GraphBuilder. Modules take a scope
 * and request their parameters by local name; the initializer name is the full dotted key, so the
 * graph, the checkpoint and the code share one name:
 *
 *   const w = WeightScope.bind(g, store);
 *   w.at("down_blocks").at(0).at("resnets").at(1).at("conv1").param("weight", [320, 320, 3, 3])
 *   // -> initializer "down_blocks.0.resnets.1.conv1.weight"
 *
 * Problems are collected, not thrown: `finish()` throws one MissingWeightsError listing every
 * missing, unexpected and mis-shaped key.
 */
import { GraphError, InvalidArgumentError, MissingWeightsError } from "../errors.js";
import type { GraphBuilder, Value } from "../graph/builder.js";
import { isFloatDType } from "../graph/dtype.js";
import { type WeightSource, canCast, lazySource, reshapedSource } from "../graph/weight-source.js";
import { type DType, type Shape, numel, shapeToString, shapesEqual, tensor } from "../tensor.js";
import type { GraphBuildOptions } from "./module.js";
import type { WeightStore } from "./weight-store.js";
import { describeProblems } from "./weights-hint.js";

export interface BindOptions extends GraphBuildOptions {
  /** Stored dtype of float weights in the graph (default "float32"); sources are cast at write time. */
  readonly dtype?: DType;
  /**
   * Translates a store key into the model's key (diffusers layout), or undefined to hide the key.
   * Applied to every store key once, before binding (see weights/key-maps/).
   */
  readonly keyMap?: (storeKey: string) => string | undefined;
}

export interface ParamOptions {
  /** Stored dtype for this weight (default: the bind dtype for float weights, else the stored dtype). */
  readonly dtype?: DType;
  /** Accept a stored tensor of another shape with the same element count (e.g. conv 1x1 as linear). */
  readonly allowReshape?: boolean;
  /**
   * Store the 2-D weight transposed: the key is checked against `shape` ([out, in] as in the
   * checkpoint) but the initializer holds [in, out] (MatMul-ready; see Linear).
   */
  readonly transpose?: boolean;
}

export interface FinishOptions {
  /** Store keys (model names) that may stay unused, e.g. `(k) => k.endsWith("position_ids")`. */
  readonly ignoreUnexpected?: (key: string) => boolean;
}

export interface WeightReport {
  readonly bound: number;
  readonly missing: readonly string[];
  readonly unexpected: readonly string[];
  readonly misshaped: readonly { key: string; expected: readonly number[]; actual: readonly number[] }[];
  /** Keys whose stored dtype cannot be converted to the requested one ("key: int64 -> float32"). */
  readonly wrongDType: readonly string[];
}

class Binder {
  readonly requested = new Map<string, Value>();
  readonly missing: string[] = [];
  readonly misshaped: { key: string; expected: readonly number[]; actual: readonly number[] }[] = [];
  readonly wrongDType: string[] = [];
  /** Keys with any of the problems above. */
  readonly problemKeys = new Set<string>();
  /** model key -> store key */
  readonly table = new Map<string, string>();
  readonly dtype: DType;

  constructor(
    readonly graph: GraphBuilder,
    readonly store: WeightStore,
    readonly options: BindOptions,
  ) {
    this.dtype = options.dtype ?? "float32";
    const keyMap = options.keyMap;
    for (const storeKey of store.keys()) {
      const key = keyMap ? keyMap(storeKey) : storeKey;
      if (key === undefined) continue;
      const previous = this.table.get(key);
      if (previous !== undefined) {
        throw new InvalidArgumentError("keyMap", "a one-to-one key map", key, {
          hint: `store keys "${previous}" and "${storeKey}" both map to "${key}"`,
        });
      }
      this.table.set(key, storeKey);
    }
  }
}

export class WeightScope {
  private constructor(
    private readonly binder: Binder,
    /** Full dotted path of this scope ("" at the root). */
    readonly path: string,
    /** Build options overriding the bind-time ones in this scope and its children (see withOptions). */
    private readonly overrides?: GraphBuildOptions,
  ) {}

  /** A root scope over `store` that adds initializers to `graph`. */
  static bind(graph: GraphBuilder, store: WeightStore, options: BindOptions = {}): WeightScope {
    const lowRank = options.lowRank ?? store.lowRank;
    return new WeightScope(new Binder(graph, store, lowRank ? { ...options, lowRank } : options), "");
  }

  get graph(): GraphBuilder {
    return this.binder.graph;
  }

  /** The graph dtype for float weights and activations. */
  get dtype(): DType {
    return this.binder.dtype;
  }

  /** How modules lower to ONNX (attention implementation, group norm, key/value transform). */
  get options(): GraphBuildOptions {
    return this.overrides ?? this.binder.options;
  }

  /**
   * The same scope (same path, same binding) with some build options replaced, for this scope and
   * its children: e.g. a model builder adding a cross-frame key/value transform to a bound scope.
   */
  withOptions(options: GraphBuildOptions): WeightScope {
    return new WeightScope(this.binder, this.path, { ...this.options, ...options });
  }

  /** A child scope one key segment deeper (`at("down_blocks").at(0)`). */
  at(segment: string | number): WeightScope {
    const s = String(segment);
    if (s === "" || s.includes("."))
      throw new InvalidArgumentError("segment", "one key segment without dots", s);
    return new WeightScope(this.binder, this.path === "" ? s : `${this.path}.${s}`, this.overrides);
  }

  /** The full key of a parameter in this scope. */
  key(name: string): string {
    return this.path === "" ? name : `${this.path}.${name}`;
  }

  /**
   * The graph value of parameter `name` with the expected `shape`. Requesting a key twice returns
   * the same value. Missing or mis-shaped keys are recorded and a placeholder is returned so building
   * can go on; `finish()` reports them all.
   */
  param(name: string, shape: Shape, options: ParamOptions = {}): Value {
    const b = this.binder;
    const key = this.key(name);
    const existing = b.requested.get(key);
    if (existing) {
      const expected = options.transpose ? [...shape].reverse() : shape;
      if (!shapesEqual(existing.shape.map(Number), expected)) {
        throw new GraphError(
          "param",
          `${key} was requested as ${shapeToString(existing.shape.map(Number))} and now as ${shapeToString(shape)}`,
        );
      }
      return existing;
    }
    const storeKey = b.table.get(key);
    const info = storeKey === undefined ? undefined : b.store.info(storeKey);
    let source: WeightSource;
    let dtype: DType;
    if (storeKey !== undefined && info) {
      dtype = options.dtype ?? (isFloatDType(info.dtype) ? b.dtype : info.dtype);
      source = b.store.source(storeKey);
      if (!shapesEqual(info.shape, shape)) {
        if (options.allowReshape && numel(info.shape) === numel(shape))
          source = reshapedSource(source, shape);
        else {
          b.misshaped.push({ key, expected: [...shape], actual: [...info.shape] });
          b.problemKeys.add(key);
          source = placeholder(b, key, info.dtype, shape);
        }
      }
      if (!canCast(info.dtype, dtype)) {
        b.wrongDType.push(`${key}: ${info.dtype} -> ${dtype}`);
        b.problemKeys.add(key);
        source = placeholder(b, key, dtype, shape);
      }
    } else if (b.store.synthesize) {
      dtype = options.dtype ?? b.dtype;
      source = b.store.synthesize(key, shape, dtype);
    } else {
      dtype = options.dtype ?? b.dtype;
      b.missing.push(key);
      b.problemKeys.add(key);
      source = placeholder(b, key, dtype, shape);
    }
    if (options.transpose) source = transposedSource(key, source);
    const value = b.graph.initializer(key, source, { dtype });
    b.requested.set(key, value);
    return value;
  }

  /** What binding found so far (over the whole store, from any scope). */
  report(options: FinishOptions = {}): WeightReport {
    const b = this.binder;
    const unexpected = [...b.table.keys()].filter(
      (k) => !b.requested.has(k) && !(options.ignoreUnexpected?.(k) ?? false),
    );
    return {
      bound: b.requested.size - b.problemKeys.size,
      missing: [...b.missing],
      unexpected,
      misshaped: [...b.misshaped],
      wrongDType: [...b.wrongDType],
    };
  }

  /** Throws one MissingWeightsError if any key is missing, unexpected, mis-shaped or of an unusable dtype. */
  finish(options: FinishOptions = {}): WeightReport {
    const r = this.report(options);
    if (r.missing.length + r.unexpected.length + r.misshaped.length + r.wrongDType.length > 0) {
      const storeKeys = [...this.binder.store.keys()];
      throw new MissingWeightsError(this.binder.store.name, r.missing, r.unexpected, r.misshaped, {
        hint: describeProblems(r, storeKeys),
      });
    }
    return r;
  }
}

/** [rows, cols] -> [cols, rows], done at write time one tensor at a time. */
function transposedSource(key: string, source: WeightSource): WeightSource {
  const [rows, cols] = source.shape;
  if (source.shape.length !== 2 || rows === undefined || cols === undefined) {
    throw new GraphError(
      "param",
      `${key}: only 2-D weights can be stored transposed, got ${shapeToString(source.shape)}`,
    );
  }
  return lazySource(source.dtype, [cols, rows], async () => {
    const t = await source.load();
    const out = tensor(t.dtype, [cols, rows]);
    const src = t.data as ArrayLike<number | bigint> & { [i: number]: number | bigint };
    const dst = out.data as { [i: number]: number | bigint };
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c] ?? 0;
    return out;
  });
}

function placeholder(b: Binder, key: string, dtype: DType, shape: Shape): WeightSource {
  return lazySource(dtype, shape, () => {
    throw new MissingWeightsError(b.store.name, [key], [], [], {
      hint: "the graph was written although binding reported problems; call finish() before writing",
    });
  });
}
