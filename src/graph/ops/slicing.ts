/**
 * Ops that cut and join tensors: Concat, Split, Slice, Gather, Pad, Tile.
 */
import { GraphError } from "../../errors.js";
import { type GraphBuilder, Value, attr } from "../builder.js";
import { type Dim, addDims, dimToString, dimsEqual, normalizeAxis, shapeStr } from "../shape.js";
import { commonDType, intsInput } from "./common.js";

/** Concat along `axis`; all other dims must agree. */
export function Concat(g: GraphBuilder, xs: readonly Value[], axis: number): Value {
  const first = xs[0];
  if (!first) throw new GraphError("Concat", "needs at least one input");
  const dtype = commonDType("Concat", ...xs);
  const a = normalizeAxis("Concat", axis, first.rank);
  const out: Dim[] = [...first.shape];
  for (const x of xs.slice(1)) {
    if (x.rank !== first.rank)
      throw new GraphError("Concat", `ranks differ: ${shapeStr(first.shape)} and ${shapeStr(x.shape)}`);
    x.shape.forEach((d, i) => {
      if (i === a) out[a] = addDims(out[a] ?? null, d);
      else if (dimsEqual(d, out[i] ?? null) === false) {
        throw new GraphError(
          "Concat",
          `dim ${i} differs (${dimToString(out[i] ?? null)} vs ${dimToString(d)}) between ${shapeStr(first.shape)} and ${shapeStr(x.shape)} (axis ${a})`,
        );
      } else if (out[i] === null) out[i] = d;
    });
  }
  return g.node1("Concat", xs, { axis: attr.int(a) }, { dtype, shape: out });
}

/** Split along `axis` into pieces of the given sizes, or into `count` equal pieces. */
export function Split(
  g: GraphBuilder,
  x: Value,
  axis: number,
  sizes: readonly number[] | { count: number },
): Value[] {
  const a = normalizeAxis("Split", axis, x.rank);
  const dim = x.shape[a] ?? null;
  let pieces: Dim[];
  if ("count" in sizes) {
    const n = sizes.count;
    if (typeof dim === "number" && dim % n !== 0)
      throw new GraphError("Split", `axis ${a} of size ${dim} does not split into ${n} equal parts`);
    pieces = Array<Dim>(n).fill(typeof dim === "number" ? dim / n : null);
  } else {
    const total = sizes.reduce((s, v) => s + v, 0);
    if (typeof dim === "number" && total !== dim) {
      throw new GraphError(
        "Split",
        `sizes [${sizes.join(", ")}] sum to ${total} but axis ${a} of ${shapeStr(x.shape)} has ${dim}`,
      );
    }
    pieces = [...sizes];
  }
  const outputs = pieces.map((d) => ({ dtype: x.dtype, shape: x.shape.map((s, i) => (i === a ? d : s)) }));
  const attrs =
    "count" in sizes ? { axis: attr.int(a), num_outputs: attr.int(sizes.count) } : { axis: attr.int(a) };
  const inputs = "count" in sizes ? [x] : [x, g.int64s(sizes)];
  return g.node("Split", inputs, attrs, { outputs });
}

export interface SliceOptions {
  readonly starts: readonly number[];
  /** Ends, or a 1-D int64 graph value of the same length (runtime ends, e.g. a Shape slice). */
  readonly ends: readonly number[] | Value;
  /** Axes the starts/ends apply to (default 0..n-1). */
  readonly axes?: readonly number[];
  /** Steps (default 1). */
  readonly steps?: readonly number[];
}

/** Slice with numpy semantics (negative indices count from the end; ends are clamped). */
export function Slice(g: GraphBuilder, x: Value, options: SliceOptions): Value {
  const { starts } = options;
  const endsInput = intsInput(g, "Slice", "ends", options.ends);
  const runtimeLength = endsInput.value.rank === 1 ? endsInput.value.shape[0] : null;
  const ends = endsInput.ints ?? null;
  const endsLength = ends?.length ?? runtimeLength;
  const axes = (options.axes ?? starts.map((_, i) => i)).map((a) => normalizeAxis("Slice", a, x.rank));
  const steps = options.steps ?? starts.map(() => 1);
  if (endsLength !== starts.length || axes.length !== starts.length || steps.length !== starts.length) {
    throw new GraphError(
      "Slice",
      `starts, ends, axes and steps must have equal lengths (${starts.length}, ${String(endsLength ?? "?")}, ${axes.length}, ${steps.length})`,
    );
  }
  const out: Dim[] = [...x.shape];
  axes.forEach((a, i) => {
    const d = x.shape[a];
    const step = steps[i] ?? 1;
    if (step === 0) throw new GraphError("Slice", "step must not be 0");
    if (typeof d !== "number" || ends === null) {
      out[a] = null;
      return;
    }
    const clamp = (v: number, lo: number, hi: number): number =>
      Math.min(Math.max(v < 0 ? v + d : v, lo), hi);
    const s = step > 0 ? clamp(starts[i] ?? 0, 0, d) : clamp(starts[i] ?? 0, -1, d - 1);
    const e = step > 0 ? clamp(ends[i] ?? 0, 0, d) : clamp(ends[i] ?? 0, -1, d - 1);
    out[a] = Math.max(0, Math.ceil((e - s) / step));
  });
  return g.node1(
    "Slice",
    [x, g.int64s(starts), endsInput.value, g.int64s(axes), g.int64s(steps)],
    {},
    { dtype: x.dtype, shape: out },
  );
}

/** Gather(x, indices) along `axis`: out shape = x[:axis] + indices.shape + x[axis+1:]. A number index drops the axis. */
export function Gather(
  g: GraphBuilder,
  x: Value,
  indices: Value | number | readonly number[],
  axis = 0,
): Value {
  const a = normalizeAxis("Gather", axis, x.rank);
  let idx: Value;
  if (typeof indices === "number") idx = g.constantOf("int64", [], [indices]);
  else if (indices instanceof Value) idx = indices;
  else idx = intsInput(g, "Gather", "indices", indices).value;
  if (idx.dtype !== "int64" && idx.dtype !== "int32")
    throw new GraphError("Gather", `indices must be int64 or int32 but ${idx.name} is ${idx.dtype}`);
  const out = [...x.shape.slice(0, a), ...idx.shape, ...x.shape.slice(a + 1)];
  return g.node1("Gather", [x, idx], { axis: attr.int(a) }, { dtype: x.dtype, shape: out });
}

/** Constant padding: pads = [begin_0, ..., begin_n-1, end_0, ..., end_n-1] (ONNX order). */
export function Pad(
  g: GraphBuilder,
  x: Value,
  pads: readonly number[],
  options: { value?: number; mode?: "constant" | "reflect" | "edge" } = {},
): Value {
  if (pads.length !== 2 * x.rank)
    throw new GraphError("Pad", `needs ${2 * x.rank} pads for ${shapeStr(x.shape)}, got ${pads.length}`);
  const out = x.shape.map((d, i) => addDims(d, (pads[i] ?? 0) + (pads[i + x.rank] ?? 0)));
  const value = options.value === undefined ? null : g.scalar(options.value, x.dtype);
  return g.node1(
    "Pad",
    [x, g.int64s(pads), value],
    { mode: attr.string(options.mode ?? "constant") },
    { dtype: x.dtype, shape: out },
  );
}

/** Tile: repeats x `repeats[i]` times along axis i. */
export function Tile(g: GraphBuilder, x: Value, repeats: readonly number[]): Value {
  if (repeats.length !== x.rank)
    throw new GraphError("Tile", `needs ${x.rank} repeats for ${shapeStr(x.shape)}, got ${repeats.length}`);
  const out = x.shape.map((d, i) =>
    typeof d === "number" ? d * (repeats[i] ?? 1) : repeats[i] === 1 ? d : null,
  );
  return g.node1("Tile", [x, g.int64s(repeats)], {}, { dtype: x.dtype, shape: out });
}
