/**
 * Gradient rules of the linear ops: MatMul (numpy batch broadcasting: gradients summed over the
 * broadcast batch dims), Gemm and Conv (any strides, pads incl. asymmetric ones, dilations, groups).
 * Conv: grad_x is, at stride 1 on large inputs, a Conv of dy with the flipped, transposed kernel,
 * else a ConvTranspose with the output padding that restores x's size (stride 2 on an even size
 * needs 1); grad_w is one GEMM of dy and an im2col matrix built from one strided Slice per kernel tap.
 */
import type { GraphBuilder, Value } from "../builder.js";
import { attr } from "../builder.js";
import * as op from "../ops/index.js";
import { tensorOf } from "../tensor-of.js";
import { staticShape, unbroadcast } from "./helpers.js";
import type { GradientRule, RuleContext } from "./rule.js";

/** Swaps the last two axes. */
function transposeLast(g: GraphBuilder, x: Value): Value {
  const perm = x.shape.map((_, i) => i);
  const n = perm.length;
  [perm[n - 2], perm[n - 1]] = [n - 1, n - 2];
  return op.Transpose(g, x, perm);
}

const matMulRule: GradientRule = (ctx, [gy]) => {
  if (!gy) return [null, null];
  const { g } = ctx;
  let a = ctx.input(0);
  let b = ctx.input(1);
  let dy = gy;
  // numpy promotion of 1-D operands: [K] -> [1, K] / [K, 1]
  const aVector = a.rank === 1;
  const bVector = b.rank === 1;
  if (aVector) {
    a = op.Unsqueeze(g, a, [0]);
    dy = op.Unsqueeze(g, dy, [-2]);
  }
  if (bVector) {
    b = op.Unsqueeze(g, b, [1]);
    dy = op.Unsqueeze(g, dy, [-1]);
  }
  let ga: Value | null = null;
  let gb: Value | null = null;
  if (ctx.needs[0]) {
    ga = unbroadcast(g, op.MatMul(g, dy, transposeLast(g, b)), a);
    if (aVector) ga = op.Squeeze(g, ga, [0]);
  }
  if (ctx.needs[1]) {
    if (b.rank === 2 && a.rank > 2) {
      // A weight shared over every leading dim: one GEMM over the flattened rows.
      const k = staticShape("MatMul", a).at(-1) ?? 0;
      const n = staticShape("MatMul", dy).at(-1) ?? 0;
      const a2 = op.Reshape(g, a, [-1, k]);
      const dy2 = op.Reshape(g, dy, [-1, n]);
      gb = op.Gemm(g, a2, dy2, null, { transA: true });
    } else {
      gb = unbroadcast(g, op.MatMul(g, transposeLast(g, a), dy), b);
    }
    if (bVector) gb = op.Squeeze(g, gb, [1]);
  }
  return [ga, gb];
};

const gemmRule: GradientRule = (ctx, [gy]) => {
  if (!gy) return [null, null, null];
  const { g } = ctx;
  const a = ctx.input(0);
  const b = ctx.input(1);
  const alpha = ctx.float("alpha", 1);
  const beta = ctx.float("beta", 1);
  const transA = ctx.int("transA", 0) === 1;
  const transB = ctx.int("transB", 0) === 1;
  const scaled = alpha === 1 ? gy : op.Mul(g, gy, alpha);
  // Y = A' B' with A' = transA ? A^T : A. dA' = dY B'^T, dB' = A'^T dY.
  const ga = ctx.needs[0]
    ? transA
      ? op.Gemm(g, b, scaled, null, { transA: transB, transB: true }) // dA = B' dY^T
      : op.Gemm(g, scaled, b, null, { transB: !transB })
    : null;
  const gb = ctx.needs[1]
    ? transB
      ? op.Gemm(g, scaled, a, null, { transA: true, transB: transA }) // dB = dY^T A'
      : op.Gemm(g, a, scaled, null, { transA: !transA })
    : null;
  const c = ctx.inputs[2];
  const gc = c && ctx.needs[2] ? gemmBiasGrad(g, beta === 1 ? gy : op.Mul(g, gy, beta), c) : null;
  return [ga, gb, gc];
};

/**
 * dC of a Gemm: dY [N, M] summed down to C. A row bias ([M] or [1, M]) with N known is one product
 * ones[N]·dY: ORT's ReduceSum over axis 0 is about 2.5 times slower than that MatMul at the shapes
 * of the atlas MLPs ([9000, 64]: 0.42 against 0.16 ms on 2 cores). Other shapes of C: unbroadcast.
 */
function gemmBiasGrad(g: GraphBuilder, gy: Value, c: Value): Value {
  const [n, m] = gy.shape;
  const rowBias = c.rank === 1 || (c.rank === 2 && c.shape[0] === 1);
  if (gy.rank !== 2 || typeof n !== "number" || n < 2 || !rowBias || c.shape[c.rank - 1] !== m)
    return unbroadcast(g, gy, c);
  const ones = g.node1(
    "ConstantOfShape",
    [g.int64s([n])],
    { value: attr.tensor(tensorOf(gy.dtype, [1], [1])) },
    { dtype: gy.dtype, shape: [n] },
  );
  const sum = op.MatMul(g, ones, gy); // [M]
  return c.rank === 1 ? sum : op.Unsqueeze(g, sum, [0]);
}

interface ConvGeometry {
  readonly spatial: number;
  readonly kernel: number[];
  readonly strides: number[];
  readonly dilations: number[];
  readonly pads: number[];
  readonly group: number;
}

function convGeometry(ctx: RuleContext, w: Value): ConvGeometry {
  const spatial = w.rank - 2;
  const kernel = staticShape("Conv", w).slice(2);
  if (ctx.string("auto_pad", "NOTSET") !== "NOTSET")
    throw ctx.error("auto_pad is not supported", "give explicit pads");
  return {
    spatial,
    kernel,
    strides: ctx.ints("strides") ?? Array<number>(spatial).fill(1),
    dilations: ctx.ints("dilations") ?? Array<number>(spatial).fill(1),
    pads: ctx.ints("pads") ?? Array<number>(spatial * 2).fill(0),
    group: ctx.int("group", 1),
  };
}

const INT64_MAX = 2 ** 62;

/**
 * Input positions (N x spatial) from which grad_x of a stride-1 Conv is a Conv of the flipped,
 * transposed kernel. That kernel costs two passes over the weights per step (Transpose + Slice),
 * repaid only when each weight is used at many positions: at [1, 640, 32, 32] (ORT CPU, 1 thread)
 * Conv 109 ms + kernel 22 ms against ConvTranspose 157 ms; at 1280 channels on 8x8 the kernel's
 * 115 ms exceed ConvTranspose's 73 ms.
 */
const MIN_POSITIONS_FOR_CONV = 1024;

/** Swaps the first two axes ([N, C, ...] <-> [C, N, ...]); a Reshape when either is 1. */
function swapLeading(g: GraphBuilder, x: Value, shape: readonly number[]): Value {
  const [a = 0, b = 0, ...rest] = shape;
  if (a === 1 || b === 1) return op.Reshape(g, x, [b, a, ...rest]);
  return op.Transpose(
    g,
    x,
    shape.map((_, i) => (i < 2 ? 1 - i : i)),
  );
}

/**
 * grad_x of Conv. Stride 1 on at least MIN_POSITIONS_FOR_CONV positions: a Conv of dy with the
 * kernel transposed per group ([C, M/G, ...]) and flipped, padded by dilation * (kernel - 1) - pad on
 * each side (ORT's CPU Conv is faster than its ConvTranspose). Otherwise, or when a pad exceeds
 * dilation * (kernel - 1): ConvTranspose(dy, w) with the output padding that restores x's size.
 */
function convInputGrad(ctx: RuleContext, gy: Value, geo: ConvGeometry): Value {
  const { g } = ctx;
  const x = ctx.input(0);
  const w = ctx.input(1);
  const xs = staticShape("Conv", x);
  const ys = staticShape("Conv", gy);
  const ws = staticShape("Conv", w);
  const convPads = geo.pads.map((p, j) => {
    const i = j % geo.spatial;
    return (geo.dilations[i] ?? 1) * ((geo.kernel[i] ?? 1) - 1) - p;
  });
  const positions = xs.reduce((a, b, i) => (i === 1 ? a : a * b), 1);
  if (
    positions >= MIN_POSITIONS_FOR_CONV &&
    geo.strides.every((s) => s === 1) &&
    convPads.every((p) => p >= 0)
  ) {
    const [m = 0, cg = 0, ...kernel] = ws;
    const mg = m / geo.group;
    // [M, C/G, ...k] -> [G, M/G, C/G, ...k] -> [G, C/G, M/G, ...k] -> [C, M/G, ...k], flipped
    let wt: Value;
    if (geo.group === 1) wt = swapLeading(g, w, ws);
    else {
      const split = op.Reshape(g, w, [geo.group, mg, cg, ...kernel]);
      const swapped = op.Transpose(g, split, [0, 2, 1, ...kernel.map((_, i) => 3 + i)]);
      wt = op.Reshape(g, swapped, [cg * geo.group, mg, ...kernel]);
    }
    const flipAxes = kernel.map((_, i) => 2 + i).filter((_, i) => (kernel[i] ?? 1) > 1);
    if (flipAxes.length > 0) {
      wt = op.Slice(g, wt, {
        starts: flipAxes.map(() => -1),
        ends: flipAxes.map(() => -INT64_MAX),
        axes: flipAxes,
        steps: flipAxes.map(() => -1),
      });
    }
    return op.Conv(g, gy, wt, null, { pads: convPads, dilations: geo.dilations, group: geo.group });
  }
  const outputPadding = geo.kernel.map((k, i) => {
    const s = geo.strides[i] ?? 1;
    const d = geo.dilations[i] ?? 1;
    const produced =
      s * ((ys[2 + i] ?? 0) - 1) + (k - 1) * d + 1 - (geo.pads[i] ?? 0) - (geo.pads[geo.spatial + i] ?? 0);
    return (xs[2 + i] ?? 0) - produced;
  });
  if (outputPadding.some((p, i) => p < 0 || p >= Math.max(geo.strides[i] ?? 1, geo.dilations[i] ?? 1))) {
    throw ctx.error(
      `cannot restore input ${JSON.stringify(xs)} (output padding ${JSON.stringify(outputPadding)})`,
    );
  }
  return g.node1(
    "ConvTranspose",
    [gy, w],
    {
      kernel_shape: attr.ints(geo.kernel),
      strides: attr.ints(geo.strides),
      dilations: attr.ints(geo.dilations),
      pads: attr.ints(geo.pads),
      group: attr.int(geo.group),
      output_padding: outputPadding.some((p) => p > 0) ? attr.ints(outputPadding) : undefined,
    },
    { dtype: x.dtype, shape: xs },
  );
}

/**
 * grad_w of Conv as one GEMM per group: dy [M, N * P] (P = output positions) times cols [C/G * K,
 * N * P]^T, where cols stacks one strided slice of the padded input (as [C, N, ...]) per kernel tap
 * (K taps). The product is [M, C/G * K], the weight's layout; the batch sum is inside the GEMM.
 */
function convWeightGrad(ctx: RuleContext, gy: Value, geo: ConvGeometry): Value {
  const { g } = ctx;
  const x = ctx.input(0);
  const w = ctx.input(1);
  const xs = staticShape("Conv", x);
  const [n = 0, c = 0, ...inSpatial] = xs;
  const ys = staticShape("Conv", gy);
  const [, m = 0, ...outSpatial] = ys;
  const rows = n * outSpatial.reduce((a, b) => a * b, 1);
  const taps = geo.kernel.reduce((a, b) => a * b, 1);
  const cg = c / geo.group;
  const mg = m / geo.group;
  const xt = swapLeading(g, x, xs); // [C, N, ...in]
  let cols: Value;
  const onePointKernel = taps === 1 && geo.strides.every((s) => s === 1) && !geo.pads.some((p) => p !== 0);
  if (onePointKernel && outSpatial.every((d, i) => d === inSpatial[i])) {
    cols = xt;
  } else {
    let padded = xt;
    if (geo.pads.some((p) => p !== 0)) {
      const begin = geo.pads.slice(0, geo.spatial);
      const end = geo.pads.slice(geo.spatial);
      padded = op.Pad(g, xt, [0, 0, ...begin, 0, 0, ...end]);
    }
    const slices: Value[] = [];
    for (let t = 0; t < taps; t++) {
      // kernel offset of tap t (row-major over the kernel dims)
      const offset: number[] = [];
      let rest = t;
      for (let i = geo.spatial - 1; i >= 0; i--) {
        const k = geo.kernel[i] ?? 1;
        offset[i] = rest % k;
        rest = Math.floor(rest / k);
      }
      const starts = offset.map((o, i) => o * (geo.dilations[i] ?? 1));
      const ends = starts.map((s, i) => s + ((outSpatial[i] ?? 1) - 1) * (geo.strides[i] ?? 1) + 1);
      const axes = offset.map((_, i) => 2 + i);
      const tap = op.Slice(g, padded, { starts, ends, axes, steps: geo.strides });
      slices.push(taps === 1 ? tap : op.Unsqueeze(g, tap, [1])); // [C, 1, N, ...out]
    }
    cols = slices.length === 1 ? (slices[0] ?? padded) : op.Concat(g, slices, 1); // [C, K, N, ...out]
  }
  const dyt = swapLeading(g, gy, ys); // [M, N, ...out]
  if (geo.group === 1) {
    const prod = op.Gemm(g, op.Reshape(g, dyt, [m, rows]), op.Reshape(g, cols, [c * taps, rows]), null, {
      transB: true,
    }); // [M, C * K]
    return op.Reshape(g, prod, staticShape("Conv", w));
  }
  const colsT = op.Transpose(g, op.Reshape(g, cols, [geo.group, cg * taps, rows]), [0, 2, 1]);
  const prod = op.MatMul(g, op.Reshape(g, dyt, [geo.group, mg, rows]), colsT); // [G, M/G, C/G * K]
  return op.Reshape(g, prod, staticShape("Conv", w));
}

const convRule: GradientRule = (ctx, [gy]) => {
  if (!gy) return [null, null, null];
  const w = ctx.input(1);
  const geo = convGeometry(ctx, w);
  const gx = ctx.needs[0] ? convInputGrad(ctx, gy, geo) : null;
  const gw = ctx.needs[1] ? convWeightGrad(ctx, gy, geo) : null;
  const b = ctx.inputs[2];
  const axes = [0, ...geo.kernel.map((_, i) => 2 + i)];
  const gb = b && ctx.needs[2] ? op.ReduceSum(ctx.g, gy, axes, { keepdims: false }) : null;
  return [gx, gw, gb];
};

export const LINEAR_RULES: Readonly<Record<string, GradientRule>> = {
  MatMul: matMulRule,
  Gemm: gemmRule,
  Conv: convRule,
};
