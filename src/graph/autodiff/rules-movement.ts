/**
 * Gradient rules of the ops that move data without arithmetic (Reshape, Flatten, Transpose,
 * Unsqueeze/Squeeze, Expand, Tile, Concat/Split, Slice with steps and negative starts, Pad, Gather,
 * nearest Resize by integer factors) and of the reductions (ReduceSum/Mean/Max, Softmax).
 */
import type { GraphBuilder, Value } from "../builder.js";
import { attr } from "../builder.js";
import * as op from "../ops/index.js";
import { reshapeTo, staticShape, unbroadcast, zerosLike } from "./helpers.js";
import type { GradientRule, RuleContext } from "./rule.js";

const first = (f: (ctx: RuleContext, gy: Value) => Value): GradientRule => {
  return (ctx, [gy]) => [gy && ctx.needs[0] ? f(ctx, gy) : null];
};

const INT64_MAX = 2 ** 62;

/** Gradient of y = x[start : start + step * count : step] along `axis` (step > 0), as x's size. */
function placeStrided(
  g: GraphBuilder,
  grad: Value,
  axis: number,
  start: number,
  step: number,
  size: number,
): Value {
  const shape = staticShape("Slice", grad);
  const count = shape[axis] ?? 0;
  const rank = shape.length;
  let spread = grad;
  let length = count;
  if (step > 1 && count > 0) {
    // interleave step - 1 zeros after each element: [.., n, ..] -> [.., n, step, ..] -> [.., n * step, ..]
    const pads = Array<number>(2 * (rank + 1)).fill(0);
    pads[rank + 1 + axis + 1] = step - 1;
    spread = op.Pad(g, op.Unsqueeze(g, grad, [axis + 1]), pads);
    const merged = [...shape];
    merged[axis] = count * step;
    spread = op.Reshape(g, spread, merged);
    length = count * step;
  }
  let end = size - start - length;
  if (end < 0) {
    spread = op.Slice(g, spread, { starts: [0], ends: [length + end], axes: [axis] });
    end = 0;
  }
  if (start === 0 && end === 0) return spread;
  const pads = Array<number>(2 * rank).fill(0);
  pads[axis] = start;
  pads[rank + axis] = end;
  return op.Pad(g, spread, pads);
}

const sliceRule: GradientRule = first((ctx, gy) => {
  const { g } = ctx;
  const x = ctx.input(0);
  const xs = staticShape("Slice", x);
  const starts = ctx.constInts(1) ?? [];
  const axes = (ctx.constInts(3) ?? starts.map((_, i) => i)).map((a) => (a < 0 ? a + x.rank : a));
  const steps = ctx.constInts(4) ?? starts.map(() => 1);
  let grad = gy;
  axes.forEach((axis, i) => {
    const d = xs[axis] ?? 0;
    const step = steps[i] ?? 1;
    const count = staticShape("Slice", grad)[axis] ?? 0;
    const raw = starts[i] ?? 0;
    if (step > 0) {
      const s = Math.min(Math.max(raw < 0 ? raw + d : raw, 0), d);
      grad = placeStrided(g, grad, axis, s, step, d);
    } else {
      const s = Math.min(Math.max(raw < 0 ? raw + d : raw, -1), d - 1);
      // reversed: elements at s, s - k, ...; flip the gradient and place it ascending
      const flipped = op.Slice(g, grad, { starts: [-1], ends: [-INT64_MAX], axes: [axis], steps: [-1] });
      grad = placeStrided(g, flipped, axis, s + (count - 1) * step, -step, d);
    }
  });
  return grad;
});

const concatRule: GradientRule = (ctx, [gy]) => {
  if (!gy) return ctx.inputs.map(() => null);
  const axis0 = ctx.int("axis", 0);
  const axis = axis0 < 0 ? axis0 + gy.rank : axis0;
  let offset = 0;
  return ctx.inputs.map((x, i) => {
    const size = x ? (staticShape("Concat", x)[axis] ?? 0) : 0;
    const start = offset;
    offset += size;
    if (!x || !ctx.needs[i]) return null;
    return op.Slice(ctx.g, gy, { starts: [start], ends: [start + size], axes: [axis] });
  });
};

const splitRule: GradientRule = (ctx, gys) => {
  if (!ctx.needs[0]) return [null];
  const parts = gys.map((gy, i) => gy ?? zerosLike(ctx.g, ctx.output(i)));
  const axis0 = ctx.int("axis", 0);
  const axis = axis0 < 0 ? axis0 + ctx.input(0).rank : axis0;
  return [parts.length === 1 ? (parts[0] ?? null) : op.Concat(ctx.g, parts, axis)];
};

const padRule: GradientRule = first((ctx, gy) => {
  const mode = ctx.string("mode", "constant");
  if (mode !== "constant") throw ctx.error(`mode "${mode}" has no gradient rule`);
  const x = ctx.input(0);
  const pads = ctx.constInts(1) ?? [];
  const axesIn = ctx.constInts(3);
  const axes = axesIn ?? x.shape.map((_, i) => i);
  if (pads.some((p) => p < 0)) throw ctx.error("negative pads (cropping) have no gradient rule");
  const xs = staticShape("Pad", x);
  const starts = axes.map((_, i) => pads[i] ?? 0);
  const ends = axes.map((a, i) => (pads[i] ?? 0) + (xs[a < 0 ? a + x.rank : a] ?? 0));
  return op.Slice(ctx.g, gy, { starts, ends, axes });
});

const resizeRule: GradientRule = first((ctx, gy) => {
  const { g } = ctx;
  const x = ctx.input(0);
  const mode = ctx.string("mode", "nearest");
  const xs = staticShape("Resize", x);
  const ys = staticShape("Resize", gy);
  const factors = xs.map((d, i) => (ys[i] ?? 0) / d);
  const asymmetricFloor =
    ctx.string("coordinate_transformation_mode", "half_pixel") === "asymmetric" &&
    ctx.string("nearest_mode", "round_prefer_floor") === "floor";
  if (mode !== "nearest" || !factors.every((f) => Number.isInteger(f) && f >= 1) || !asymmetricFloor) {
    throw ctx.error(
      `only nearest (asymmetric, floor) resizing by integer factors has a gradient rule, got mode ${mode}, factors ${JSON.stringify(factors)}`,
    );
  }
  // out[i] = in[floor(i / f)]: split each axis into [in, f] and sum over the f axes
  const split: number[] = [];
  const sumAxes: number[] = [];
  xs.forEach((d, i) => {
    split.push(d);
    const f = factors[i] ?? 1;
    if (f > 1) {
      sumAxes.push(split.length);
      split.push(f);
    }
  });
  if (sumAxes.length === 0) return gy;
  return op.ReduceSum(g, op.Reshape(g, gy, split), sumAxes, { keepdims: false });
});

const tileRule: GradientRule = first((ctx, gy) => {
  const x = ctx.input(0);
  const xs = staticShape("Tile", x);
  const repeats = ctx.constInts(1) ?? [];
  const split: number[] = [];
  const sumAxes: number[] = [];
  xs.forEach((d, i) => {
    const r = repeats[i] ?? 1;
    if (r > 1) {
      sumAxes.push(split.length);
      split.push(r);
    }
    split.push(d);
  });
  if (sumAxes.length === 0) return gy;
  return op.ReduceSum(ctx.g, op.Reshape(ctx.g, gy, split), sumAxes, { keepdims: false });
});

const gatherRule: GradientRule = (ctx, [gy]) => {
  if (!gy || !ctx.needs[0]) return [null, null];
  const { g } = ctx;
  const x = ctx.input(0);
  const indices = ctx.input(1);
  const axis0 = ctx.int("axis", 0);
  const axis = axis0 < 0 ? axis0 + x.rank : axis0;
  if (axis !== 0) throw ctx.error(`only axis 0 has a gradient rule, got ${axis}`);
  const idx = op.Unsqueeze(g, op.Cast(g, indices, "int64"), [-1]);
  const scattered = g.node1(
    "ScatterND",
    [zerosLike(g, x), idx, gy],
    { reduction: attr.string("add") },
    { dtype: x.dtype, shape: x.shape },
  );
  return [scattered, null];
};

/** Reduction axes of a ReduceX node (opset 18+: input 1), all axes when empty. */
function reductionAxes(ctx: RuleContext): number[] {
  const x = ctx.input(0);
  const given = ctx.constInts(1) ?? ctx.ints("axes") ?? [];
  if (given.length === 0) {
    if (ctx.int("noop_with_empty_axes", 0) === 1) return [];
    return x.shape.map((_, i) => i);
  }
  return given.map((a) => (a < 0 ? a + x.rank : a));
}

/** dy of a reduction, with the reduced axes restored as size 1, expanded to x's shape. */
function expandReduced(ctx: RuleContext, gy: Value, axes: readonly number[]): Value {
  const x = ctx.input(0);
  const kept = ctx.int("keepdims", 1) === 1 || axes.length === 0 ? gy : op.Unsqueeze(ctx.g, gy, axes);
  return op.Expand(ctx.g, kept, staticShape(ctx.op, x));
}

const reduceSumRule: GradientRule = (ctx, [gy]) => [
  gy && ctx.needs[0] ? expandReduced(ctx, gy, reductionAxes(ctx)) : null,
  null,
];

const reduceMeanRule: GradientRule = (ctx, [gy]) => {
  if (!gy || !ctx.needs[0]) return [null, null];
  const axes = reductionAxes(ctx);
  const xs = staticShape("ReduceMean", ctx.input(0));
  const count = axes.reduce((n, a) => n * (xs[a] ?? 1), 1);
  return [op.Div(ctx.g, expandReduced(ctx, gy, axes), count), null];
};

const reduceMaxRule: GradientRule = (ctx, [gy]) => {
  if (!gy || !ctx.needs[0]) return [null, null];
  const axes = reductionAxes(ctx);
  const { g } = ctx;
  const x = ctx.input(0);
  const yFull = expandReduced(ctx, ctx.output(), axes);
  return [op.Where(g, op.Equal(g, x, yFull), expandReduced(ctx, gy, axes), 0), null];
};

const softmaxRule: GradientRule = first((ctx, gy) => {
  const { g } = ctx;
  const y = ctx.output();
  const axis = ctx.int("axis", -1);
  const dot = op.ReduceSum(g, op.Mul(g, gy, y), [axis], { keepdims: true });
  return op.Mul(g, y, op.Sub(g, gy, dot));
});

export const MOVEMENT_RULES: Readonly<Record<string, GradientRule>> = {
  Reshape: (ctx, [gy]) => [gy && ctx.needs[0] ? reshapeTo(ctx.g, gy, ctx.input(0)) : null, null],
  Flatten: first((ctx, gy) => reshapeTo(ctx.g, gy, ctx.input(0))),
  Transpose: first((ctx, gy) => {
    const perm = ctx.ints("perm") ?? gy.shape.map((_, i) => gy.rank - 1 - i);
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return op.Transpose(ctx.g, gy, inverse);
  }),
  Unsqueeze: (ctx, [gy]) => [gy && ctx.needs[0] ? reshapeTo(ctx.g, gy, ctx.input(0)) : null, null],
  Squeeze: (ctx, [gy]) => [gy && ctx.needs[0] ? reshapeTo(ctx.g, gy, ctx.input(0)) : null, null],
  Expand: (ctx, [gy]) => [gy && ctx.needs[0] ? unbroadcast(ctx.g, gy, ctx.input(0)) : null, null],
  Tile: (ctx, gys) => [...tileRule(ctx, gys), null],
  Concat: concatRule,
  Split: (ctx, gys) => [...splitRule(ctx, gys), null],
  Slice: (ctx, gys) => [...sliceRule(ctx, gys), null, null, null, null],
  Pad: (ctx, gys) => [...padRule(ctx, gys), null, null, null],
  Resize: (ctx, gys) => [...resizeRule(ctx, gys), null, null, null],
  Gather: gatherRule,
  ReduceSum: reduceSumRule,
  ReduceMean: reduceMeanRule,
  ReduceMax: reduceMaxRule,
  Softmax: softmaxRule,
};
