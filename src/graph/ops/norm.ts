/**
 * Normalization ops: GroupNormalization (opset 21, per-channel scale/bias), LayerNormalization and
 * InstanceNormalization.
 */
import { GraphError } from "../../errors.js";
import type { GraphBuilder, Value } from "../builder.js";
import { attr } from "../builder.js";
import { dimToString, dimsEqual, normalizeAxis, shapeStr } from "../shape.js";
import { commonDType, expectFloat } from "./common.js";
import { Add, Mul } from "./elementwise.js";
import { Reshape, ReshapeLike } from "./movement.js";

function expectChannelVector(op: string, what: string, v: Value, channels: number | string | null): void {
  if (v.rank !== 1 || dimsEqual(v.shape[0] ?? null, channels) === false) {
    throw new GraphError(
      op,
      `${what} must be [${dimToString(channels)}] (one per channel) but ${v.name} is ${shapeStr(v.shape)}`,
    );
  }
}

export interface GroupNormalizationOptions {
  /** Number of channel groups (required). */
  readonly numGroups: number;
  /** Added to the variance (default 1e-5). */
  readonly epsilon?: number;
}

/**
 * GroupNormalization-21: x [N, C, ...], scale [C], bias [C]. Statistics over each group of C/numGroups
 * channels and all spatial positions.
 */
export function GroupNormalization(
  g: GraphBuilder,
  x: Value,
  scale: Value,
  bias: Value,
  options: GroupNormalizationOptions,
): Value {
  const dtype = commonDType("GroupNormalization", x, scale, bias);
  expectFloat("GroupNormalization", x);
  checkGroups("GroupNormalization", x, options.numGroups);
  const c = x.shape[1] ?? null;
  expectChannelVector("GroupNormalization", "scale", scale, c);
  expectChannelVector("GroupNormalization", "bias", bias, c);
  return g.node1(
    "GroupNormalization",
    [x, scale, bias],
    { num_groups: attr.int(options.numGroups), epsilon: attr.float(options.epsilon ?? 1e-5) },
    { dtype, shape: x.shape },
  );
}

/** Throws unless x is [N, C, ...] with C divisible by numGroups. */
export function checkGroups(op: string, x: Value, numGroups: number): void {
  if (x.rank < 2) throw new GraphError(op, `input must be [N, C, ...] but ${x.name} is ${shapeStr(x.shape)}`);
  if (!Number.isInteger(numGroups) || numGroups < 1)
    throw new GraphError(op, `num_groups must be a positive integer, got ${numGroups}`);
  const c = x.shape[1];
  if (typeof c === "number" && c % numGroups !== 0) {
    throw new GraphError(op, `channels ${c} must be divisible by num_groups ${numGroups}`);
  }
}

export interface LayerNormalizationOptions {
  /** First normalized axis; all axes from it to the last are normalized (default -1). */
  readonly axis?: number;
  /** Added to the variance (default 1e-5). */
  readonly epsilon?: number;
}

/** LayerNormalization(x, scale, bias?): scale/bias have the normalized trailing shape. */
export function LayerNormalization(
  g: GraphBuilder,
  x: Value,
  scale: Value,
  bias: Value | null,
  options: LayerNormalizationOptions = {},
): Value {
  const dtype = commonDType("LayerNormalization", x, scale, ...(bias ? [bias] : []));
  expectFloat("LayerNormalization", x);
  const axis = normalizeAxis("LayerNormalization", options.axis ?? -1, x.rank);
  const normalized = x.shape.slice(axis);
  for (const [what, v] of [
    ["scale", scale],
    ["bias", bias],
  ] as const) {
    if (!v) continue;
    const ok =
      v.rank === normalized.length && v.shape.every((d, i) => dimsEqual(d, normalized[i] ?? null) !== false);
    if (!ok) {
      throw new GraphError(
        "LayerNormalization",
        `${what} must be ${shapeStr(normalized)} but ${v.name} is ${shapeStr(v.shape)}`,
      );
    }
  }
  return g.node1(
    "LayerNormalization",
    [x, scale, bias],
    { axis: attr.int(axis), epsilon: attr.float(options.epsilon ?? 1e-5) },
    { dtype, shape: x.shape },
  );
}

/** InstanceNormalization(x [N, C, ...], scale [C], bias [C]). */
export function InstanceNormalization(
  g: GraphBuilder,
  x: Value,
  scale: Value,
  bias: Value,
  options: { epsilon?: number } = {},
): Value {
  const dtype = commonDType("InstanceNormalization", x, scale, bias);
  expectFloat("InstanceNormalization", x);
  if (x.rank < 3)
    throw new GraphError(
      "InstanceNormalization",
      `input must be [N, C, D1, ...] but ${x.name} is ${shapeStr(x.shape)}`,
    );
  const c = x.shape[1] ?? null;
  expectChannelVector("InstanceNormalization", "scale", scale, c);
  expectChannelVector("InstanceNormalization", "bias", bias, c);
  return g.node1(
    "InstanceNormalization",
    [x, scale, bias],
    { epsilon: attr.float(options.epsilon ?? 1e-5) },
    { dtype, shape: x.shape },
  );
}

/**
 * Group normalization composed as Reshape [N, G, -1] + InstanceNormalization (unit scale) + Reshape
 * back + per-channel affine. Same result as GroupNormalization-21, and faster on ORT 1.30 CPU, which
 * runs GroupNormalization-21 through its function body (3.9 vs 9.1 ms on [2, 320, 64, 64], 32 groups).
 */
export function GroupNormalizationComposite(
  g: GraphBuilder,
  x: Value,
  scale: Value | null,
  bias: Value | null,
  options: GroupNormalizationOptions,
): Value {
  expectFloat("GroupNormalization", x);
  checkGroups("GroupNormalization", x, options.numGroups);
  const c = x.shape[1] ?? null;
  if (scale) expectChannelVector("GroupNormalization", "scale", scale, c);
  if (bias) expectChannelVector("GroupNormalization", "bias", bias, c);
  const groups = options.numGroups;
  const ones = g.constantOf(x.dtype, [groups], Array<number>(groups).fill(1));
  const zeros = g.constantOf(x.dtype, [groups], Array<number>(groups).fill(0));
  const grouped = Reshape(g, x, [0, groups, -1]);
  const normed = InstanceNormalization(g, grouped, ones, zeros, { epsilon: options.epsilon ?? 1e-5 });
  let y = ReshapeLike(g, normed, x);
  const trailing = Array<number>(x.rank - 2).fill(1);
  if (scale) y = Mul(g, y, Reshape(g, scale, [-1, ...trailing]));
  if (bias) y = Add(g, y, Reshape(g, bias, [-1, ...trailing]));
  return y;
}
