/**
 * Spatial ops on NCHW (or N, C, D1..Dn) tensors: Conv and Resize.
 */
import { GraphError } from "../../errors.js";
import type { GraphBuilder, Value } from "../builder.js";
import { attr } from "../builder.js";
import { type Dim, dimToString, dimsEqual, shapeStr } from "../shape.js";
import { commonDType, expectFloat } from "./common.js";

export interface ConvOptions {
  /** Stride per spatial axis (default 1). */
  readonly strides?: readonly number[];
  /** Padding: [begin_0, begin_1, ..., end_0, end_1, ...] (ONNX order; default 0). */
  readonly pads?: readonly number[];
  /** Dilation per spatial axis (default 1). */
  readonly dilations?: readonly number[];
  /** Channel groups (default 1). */
  readonly group?: number;
}

function convDim(
  input: Dim,
  kernel: number,
  stride: number,
  padBegin: number,
  padEnd: number,
  dilation: number,
): Dim {
  // A symbolic size survives a "same" convolution (stride 1, padding = dilation * (kernel - 1)).
  if (typeof input !== "number")
    return stride === 1 && padBegin + padEnd === dilation * (kernel - 1) ? input : null;
  return Math.floor((input + padBegin + padEnd - dilation * (kernel - 1) - 1) / stride) + 1;
}

/** Conv(x [N, C, ...spatial], w [M, C/group, ...kernel], b [M] | null). */
export function Conv(g: GraphBuilder, x: Value, w: Value, b: Value | null, options: ConvOptions = {}): Value {
  const dtype = commonDType("Conv", x, w, ...(b ? [b] : []));
  const spatial = x.rank - 2;
  if (spatial < 1)
    throw new GraphError("Conv", `input must be [N, C, ...spatial] but ${x.name} is ${shapeStr(x.shape)}`);
  if (w.rank !== x.rank) {
    throw new GraphError(
      "Conv",
      `weight rank ${w.rank} (${shapeStr(w.shape)}) must equal input rank ${x.rank} (${shapeStr(x.shape)})`,
    );
  }
  const group = options.group ?? 1;
  const strides = options.strides ?? Array<number>(spatial).fill(1);
  const dilations = options.dilations ?? Array<number>(spatial).fill(1);
  const pads = options.pads ?? Array<number>(spatial * 2).fill(0);
  if (strides.length !== spatial || dilations.length !== spatial || pads.length !== spatial * 2) {
    throw new GraphError(
      "Conv",
      `for ${spatial} spatial axes expected ${spatial} strides, ${spatial} dilations and ${spatial * 2} pads, ` +
        `got ${strides.length}, ${dilations.length} and ${pads.length}`,
    );
  }
  const inC = x.shape[1] ?? null;
  const wC = w.shape[1] ?? null;
  const outC = w.shape[0] ?? null;
  if (typeof inC === "number" && typeof wC === "number" && inC !== wC * group) {
    throw new GraphError("Conv", `input channels ${inC} must match weight channels ${wC} x group ${group}`);
  }
  if (typeof outC === "number" && outC % group !== 0) {
    throw new GraphError("Conv", `output channels ${outC} must be divisible by group ${group}`);
  }
  if (b) {
    if (b.rank !== 1 || dimsEqual(b.shape[0] ?? null, outC) === false) {
      throw new GraphError(
        "Conv",
        `bias must be [${dimToString(outC)}] but ${b.name} is ${shapeStr(b.shape)}`,
      );
    }
  }
  const out: Dim[] = [x.shape[0] ?? null, outC];
  for (let i = 0; i < spatial; i++) {
    const k = w.shape[2 + i];
    if (typeof k !== "number")
      throw new GraphError("Conv", `kernel dims must be static but weight is ${shapeStr(w.shape)}`);
    const d = convDim(
      x.shape[2 + i] ?? null,
      k,
      strides[i] ?? 1,
      pads[i] ?? 0,
      pads[spatial + i] ?? 0,
      dilations[i] ?? 1,
    );
    if (typeof d === "number" && d < 1) {
      throw new GraphError(
        "Conv",
        `output spatial dim ${i} would be ${d}: input ${shapeStr(x.shape)} is smaller than kernel ${k}`,
      );
    }
    out.push(d);
  }
  return g.node1(
    "Conv",
    [x, w, b],
    {
      kernel_shape: attr.ints(w.shape.slice(2).map((d) => Number(d))),
      strides: attr.ints(strides),
      pads: attr.ints(pads),
      dilations: attr.ints(dilations),
      group: attr.int(group),
    },
    { dtype, shape: out },
  );
}

export interface ResizeOptions {
  /** Interpolation (default "nearest"). */
  readonly mode?: "nearest" | "linear" | "cubic";
  /** Coordinate mapping (default "asymmetric", which with nearest/floor equals PyTorch `interpolate(mode="nearest")`). */
  readonly coordinateTransformationMode?:
    "half_pixel" | "asymmetric" | "align_corners" | "pytorch_half_pixel";
  /** Rounding for nearest (default "floor"). */
  readonly nearestMode?: "floor" | "round_prefer_floor" | "round_prefer_ceil" | "ceil";
}

/** Resize by per-axis scale factors (one per axis, e.g. [1, 1, 2, 2] for 2x spatial upsampling). */
export function Resize(
  g: GraphBuilder,
  x: Value,
  scales: readonly number[],
  options: ResizeOptions = {},
): Value {
  expectFloat("Resize", x);
  if (scales.length !== x.rank) {
    throw new GraphError(
      "Resize",
      `got ${scales.length} scales for input ${shapeStr(x.shape)} of rank ${x.rank}`,
    );
  }
  const out = x.shape.map((d, i): Dim =>
    typeof d === "number" ? Math.floor(d * (scales[i] ?? 1)) : scales[i] === 1 ? d : null,
  );
  const mode = options.mode ?? "nearest";
  return g.node1(
    "Resize",
    [x, null, g.constantOf("float32", [scales.length], scales)],
    {
      mode: attr.string(mode),
      coordinate_transformation_mode: attr.string(options.coordinateTransformationMode ?? "asymmetric"),
      nearest_mode: mode === "nearest" ? attr.string(options.nearestMode ?? "floor") : undefined,
    },
    { dtype: x.dtype, shape: out },
  );
}
