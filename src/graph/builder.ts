/**
 * GraphBuilder: an in-memory ONNX graph under construction. Values carry a dtype and an inferred
 * shape; ops (graph/ops/*.ts) append nodes through `node()` after checking shapes. Weights are
 * initializers named exactly as requested (the checkpoint key); small constants are stored inline.
 * Building is pure and synchronous; `serialize.ts` writes the result.
 */
import { GraphError, InvalidArgumentError } from "../errors.js";
import { type DType, type HostTensor, type Shape, shapeToString } from "../tensor.js";
import { type Dim, type GraphShape, shapeStr } from "./shape.js";
import type { Attribute } from "./attribute.js";
import { tensorOf } from "./tensor-of.js";
import { type WeightSource, canCast } from "./weight-source.js";

export interface ValueType {
  readonly dtype: DType;
  readonly shape: GraphShape;
}

export type ValueKind = "input" | "node" | "initializer" | "constant";

/** A named tensor in the graph: a graph input, a node output, an initializer or a constant. */
export class Value implements ValueType {
  constructor(
    readonly graph: GraphBuilder,
    readonly name: string,
    readonly dtype: DType,
    readonly shape: GraphShape,
    readonly kind: ValueKind,
    /** The data, for constants only (lets ops read shapes/axes given as tensors at build time). */
    readonly constant?: HostTensor,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  toString(): string {
    return `${this.name}: ${this.dtype}${shapeStr(this.shape)}`;
  }
}

export { type Attribute, attr } from "./attribute.js";

export interface NodeRecord {
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  /** Input value names; "" marks an omitted optional input. */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: Readonly<Record<string, Attribute>>;
}

export interface InitializerRecord {
  readonly name: string;
  /** The dtype stored in the model (the source is cast to it at write time). */
  readonly dtype: DType;
  readonly shape: Shape;
  readonly source: WeightSource;
}

export interface ConstantRecord {
  readonly name: string;
  readonly tensor: HostTensor;
}

export interface NodeOptions {
  /** Operator domain: "" (default ONNX) or "com.microsoft". */
  readonly domain?: string;
  /** The inferred type of each output (its count is the node's output count). */
  readonly outputs: readonly ValueType[];
  /** Base name for the node (default: the op type), prefixed by the current scope. */
  readonly name?: string;
}

export interface GraphBuilderOptions {
  /** Graph name stored in the model (default "main"). */
  readonly name?: string;
  /** ONNX default-domain opset (default 21). */
  readonly opset?: number;
}

/** Default-domain opset; 21 is the first with per-channel GroupNormalization. */
export const DEFAULT_OPSET = 21;
const CONTRIB_OPSET = 1;

export class GraphBuilder {
  readonly name: string;
  readonly opset: number;
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly nodes: NodeRecord[] = [];
  readonly initializers: InitializerRecord[] = [];
  readonly constants: ConstantRecord[] = [];
  /** Operator set imports: domain -> version. */
  readonly opsetImports = new Map<string, number>();
  private readonly names = new Set<string>();
  private readonly constantCache = new Map<string, Value>();
  private readonly valuesByName = new Map<string, Value>();
  private readonly scopes: string[] = [];
  private counter = 0;

  constructor(options: GraphBuilderOptions = {}) {
    this.name = options.name ?? "main";
    this.opset = options.opset ?? DEFAULT_OPSET;
    this.opsetImports.set("", this.opset);
  }

  /** The current name scope ("down_blocks.0.resnets.1"), "" at the root. */
  get scopePath(): string {
    return this.scopes.join(".");
  }

  /** Runs `fn` with `name` appended to the name scope (node and constant names get it as prefix). */
  scope<T>(name: string | number, fn: () => T): T {
    this.scopes.push(String(name));
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /** Runs `fn` with the name scope set to `path` (absolute; used by modules with their weight path). */
  withScope<T>(path: string, fn: () => T): T {
    const saved = this.scopes.splice(0, this.scopes.length);
    if (path !== "") this.scopes.push(path);
    try {
      return fn();
    } finally {
      this.scopes.splice(0, this.scopes.length, ...saved);
    }
  }

  /**
   * Inputs whose value a provider supplies on every run unless the caller feeds them (e.g. the live
   * scale of an unfused LoRA): model runners add them to each session run (src/models/model-runner.ts).
   */
  readonly liveInputs = new Map<string, () => HostTensor>();

  /** The live input `name` (see liveInputs): declared on first use, the same value afterwards. */
  liveInput(name: string, dtype: DType, shape: readonly number[], provide: () => HostTensor): Value {
    const known = this.inputs.find((v) => v.name === name);
    if (known !== undefined && this.liveInputs.has(name)) return known;
    const v = this.input(name, dtype, shape);
    this.liveInputs.set(name, provide);
    return v;
  }

  /** Declares a graph input. Dims are sizes or symbolic names ("batch", "frames"). */
  input(name: string, dtype: DType, shape: readonly (number | string)[]): Value {
    for (const d of shape) {
      if (typeof d === "number" && (!Number.isInteger(d) || d < 0)) {
        throw new InvalidArgumentError(
          `shape of input "${name}"`,
          "non-negative integers or symbolic names",
          shape,
        );
      }
    }
    const v = this.track(new Value(this, this.claim(name, "input"), dtype, [...shape], "input"));
    this.inputs.push(v);
    return v;
  }

  /** Marks `value` as a graph output, named `name` (an Identity node is added when the names differ). */
  output(value: Value, name?: string): Value {
    this.checkOwn("output", value);
    let out = value;
    if (
      (name !== undefined && name !== value.name) ||
      value.kind !== "node" ||
      this.outputs.includes(value)
    ) {
      const target = name ?? `${value.name}_output`;
      out =
        this.emit("Identity", [value], {}, { outputs: [value] }, [this.claim(target, "output")])[0] ?? value;
    }
    this.outputs.push(out);
    return out;
  }

  /** An inline constant (small tensors: shapes, axes, scalars). Identical small constants are shared. */
  constant(t: HostTensor, name?: string): Value {
    const small = t.data.length <= 64;
    const key = small
      ? `${t.dtype}|${t.shape.join(",")}|${Array.from(t.data as ArrayLike<unknown>).join(",")}`
      : "";
    const cached = small && name === undefined ? this.constantCache.get(key) : undefined;
    if (cached) return cached;
    const full = this.claim(name ?? this.autoName("const"), "constant");
    this.constants.push({ name: full, tensor: t });
    const v = this.track(new Value(this, full, t.dtype, [...t.shape], "constant", t));
    if (small && name === undefined) this.constantCache.set(key, v);
    return v;
  }

  /** A rank-0 constant of the given dtype. */
  scalar(value: number, dtype: DType): Value {
    return this.constant(tensorOf(dtype, [], [value]));
  }

  /** A constant with the given dtype, shape and values (float16/bfloat16 are converted to bits). */
  constantOf(dtype: DType, shape: Shape, values: readonly number[]): Value {
    return this.constant(tensorOf(dtype, shape, values));
  }

  /** An int64 1-D constant (shapes, axes, starts/ends). */
  int64s(values: readonly number[]): Value {
    return this.constant(tensorOf("int64", [values.length], values));
  }

  /**
   * A weight. Its initializer name is exactly `name` (not scoped). `dtype` is the stored dtype
   * (default: the source's); float sources are cast to it when the model is written.
   */
  initializer(name: string, source: WeightSource, options: { dtype?: DType } = {}): Value {
    const dtype = options.dtype ?? source.dtype;
    if (!canCast(source.dtype, dtype)) {
      throw new GraphError(
        "initializer",
        `${name}: a weight of dtype ${source.dtype} cannot be stored as ${dtype}`,
      );
    }
    for (const d of source.shape) {
      if (!Number.isInteger(d) || d < 0)
        throw new GraphError("initializer", `${name}: bad shape ${shapeToString(source.shape)}`);
    }
    this.claim(name, "initializer");
    this.initializers.push({ name, dtype, shape: [...source.shape], source });
    return this.track(new Value(this, name, dtype, [...source.shape], "initializer"));
  }

  /**
   * Appends a node. Ops call this after inferring output types; use it directly for ops without a
   * typed wrapper. Omitted optional inputs are null/undefined (written as "").
   */
  node(
    opType: string,
    inputs: readonly (Value | null | undefined)[],
    attributes: Readonly<Record<string, Attribute | undefined>>,
    options: NodeOptions,
  ): Value[] {
    return this.emit(opType, inputs, attributes, options);
  }

  /** `node` for single-output ops. */
  node1(
    opType: string,
    inputs: readonly (Value | null | undefined)[],
    attributes: Readonly<Record<string, Attribute | undefined>>,
    output: ValueType,
    domain?: string,
  ): Value {
    const [v] = this.emit(
      opType,
      inputs,
      attributes,
      domain === undefined ? { outputs: [output] } : { outputs: [output], domain },
    );
    if (!v) throw new GraphError(opType, "internal: node produced no output");
    return v;
  }

  private emit(
    opType: string,
    inputs: readonly (Value | null | undefined)[],
    attributes: Readonly<Record<string, Attribute | undefined>>,
    options: NodeOptions,
    outputNames?: readonly string[],
  ): Value[] {
    inputs.forEach((v) => v && this.checkOwn(opType, v));
    const domain = options.domain ?? "";
    if (domain !== "" && !this.opsetImports.has(domain)) this.opsetImports.set(domain, CONTRIB_OPSET);
    const name = this.claim(this.autoName(options.name ?? opType), "node");
    const outs = options.outputs.map((t, i) => {
      const outName =
        outputNames?.[i] ??
        this.claim(options.outputs.length === 1 ? `${name}_out` : `${name}_out${i}`, "value");
      return this.track(
        new Value(
          this,
          outName,
          t.dtype,
          t.shape.map((d): Dim => d),
          "node",
        ),
      );
    });
    const attrs: Record<string, Attribute> = {};
    for (const [k, a] of Object.entries(attributes)) if (a !== undefined) attrs[k] = a;
    this.nodes.push({
      name,
      opType,
      domain,
      inputs: inputs.map((v) => v?.name ?? ""),
      outputs: outs.map((v) => v.name),
      attributes: attrs,
    });
    return outs;
  }

  /** The value named `name` (input, initializer, constant or node output), e.g. a node's input; undefined if none. */
  value(name: string): Value | undefined {
    return this.valuesByName.get(name);
  }

  private track(v: Value): Value {
    this.valuesByName.set(v.name, v);
    return v;
  }

  private autoName(base: string): string {
    const prefix = this.scopePath === "" ? "" : `${this.scopePath}/`;
    return `${prefix}${base}_${this.counter++}`;
  }

  private claim(name: string, what: string): string {
    if (name === "") throw new InvalidArgumentError(`${what} name`, "a non-empty string", name);
    if (this.names.has(name)) {
      throw new GraphError(what, `the name "${name}" is already used in this graph`, {
        hint: "initializer and input names must be unique; a weight key can be bound only once",
      });
    }
    this.names.add(name);
    return name;
  }

  private checkOwn(op: string, v: Value): void {
    if (v.graph !== this) throw new GraphError(op, `value ${v.name} belongs to another graph`);
  }
}
