/**
 * The Neural Layered Atlases training step as ONE graph (ykasten/layered-neural-atlases train.py +
 * loss_utils.py): both mapping nets, the alpha net and the shared atlas net evaluated once each on
 * every point the losses need (rows stacked into one batch per net), every loss term, the weighted
 * total and, with {@link buildStepGraph}, its gradients wrt all parameters.
 *
 * All derivatives in the losses are finite differences, as in the release (the rigidity Jacobian
 * from backward differences M(x−Δ, y, t), M(x, y−Δ, t); the gradient loss from +1 px shifts), so
 * the outer reverse-mode autodiff only needs first-order rules. The host (./data.ts) computes the
 * normalised coordinates of every point; the graph receives:
 *
 * - `xyt_map` [9B, 3]: P (the batch), P+x̂ and P+ŷ (gradient loss, normalised by W/2 as the release
 *   does), the local-rigidity points (y−Δ rows then x−Δ rows), the global-rigidity points, the
 *   forward-flow and backward-flow matches; both mapping nets run on it;
 * - `xyt_alpha` [5B, 3]: P, P+x̂, P+ŷ, forward and backward matches (the alpha net);
 * - `rgb_gt`, `rgb_dx_gt`, `rgb_dy_gt` [B, 3], `alpha_mask` [B, 1], `flow_w_fw`, `flow_w_bw` [B, 1]
 *   (1 where the consistency mask passes: the flow terms average over those rows only),
 *   `coefficients` [9] ({@link COEFFICIENT_NAMES}; the schedule sets them per iteration), and
 *   `denominators` [3]: the whole batch's size and forward / backward consistent-row counts. Every
 *   mean is a sum over the graph's rows divided by these, so a batch split into shards (one graph
 *   run each, see ./step.ts) gives losses and gradients that add up to the whole batch's.
 */
import type { GraphBuilder, Value } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { tensor } from "../tensor.js";
import { gradients } from "../graph/autodiff/index.js";
import { InvalidArgumentError } from "../errors.js";
import {
  type AtlasNets,
  type GridTaps,
  NET_NAMES,
  imlp,
  mapAlpha,
  mapColour,
  modelParameterShapes,
  parameterInputs,
} from "./networks.js";

/** Loss weights and schedule of the release's config/config.json. */
export interface AtlasLossConfig {
  readonly uvMappingScale: number;
  /**
   * (optional; not in the release) the background mapping's uv per normalised pixel in the rigidity
   * and flow terms (default `uvMappingScale`): a fit whose background was fitted into the atlas
   * smaller (`--frame-affine` on a long pan) measures its stretch against that scale.
   */
  readonly uvMappingScaleBackground?: number;
  readonly derivativeAmount: number;
  readonly globalDerivativeFg: number;
  readonly globalDerivativeBg: number;
  readonly rigidityCoeff: number;
  readonly globalRigidityCoeffFg: number;
  readonly globalRigidityCoeffBg: number;
  readonly rgbCoeff: number;
  readonly opticalFlowCoeff: number;
  readonly alphaBootstrappingFactor: number;
  readonly alphaFlowFactor: number;
  readonly sparsityCoeff: number;
  readonly gradientLossCoeff: number;
  /** Global rigidity while iteration <= this (inclusive). */
  readonly stopGlobalRigidity: number;
  /** Bootstrapping weight 0 once iteration > this. */
  readonly stopBootstrapping: number;
}

export const RELEASE_LOSS_CONFIG: AtlasLossConfig = {
  uvMappingScale: 0.8,
  derivativeAmount: 1,
  globalDerivativeFg: 100,
  globalDerivativeBg: 100,
  rigidityCoeff: 1,
  globalRigidityCoeffFg: 5,
  globalRigidityCoeffBg: 50,
  rgbCoeff: 5000,
  opticalFlowCoeff: 5,
  alphaBootstrappingFactor: 2000,
  alphaFlowFactor: 49,
  sparsityCoeff: 1000,
  gradientLossCoeff: 1000,
  stopGlobalRigidity: 5000,
  stopBootstrapping: 10000,
};

/** Order of the `coefficients` input. */
export const COEFFICIENT_NAMES = [
  "rigidity",
  "global_rigidity_fg",
  "global_rigidity_bg",
  "rgb",
  "optical_flow",
  "alpha_bootstrapping",
  "alpha_flow",
  "sparsity",
  "gradient",
] as const;

/** The coefficients in force at `iteration` (train.py's schedule; `bootstrapping: false` = no mask). */
export function coefficientsAt(
  config: AtlasLossConfig,
  iteration: number,
  options: { readonly bootstrapping?: boolean } = {},
): Float32Array {
  const global = iteration <= config.stopGlobalRigidity;
  const boot = iteration <= config.stopBootstrapping && (options.bootstrapping ?? true);
  return Float32Array.from([
    config.rigidityCoeff,
    global ? config.globalRigidityCoeffFg : 0,
    global ? config.globalRigidityCoeffBg : 0,
    config.rgbCoeff,
    config.opticalFlowCoeff,
    boot ? config.alphaBootstrappingFactor : 0,
    config.alphaFlowFactor,
    config.sparsityCoeff,
    config.gradientLossCoeff,
  ]);
}

/** Loss outputs of the step graph (train.py's local names in the comments). */
export const LOSS_NAMES = [
  "rgb", // rgb_loss
  "gradient", // gradient_loss
  "sparsity", // rgb_loss_sparsity
  "rigidity1",
  "rigidity2",
  "global_rigidity1",
  "global_rigidity2",
  "flow1",
  "flow2",
  "flow_alpha",
  "alpha_bootstrapping",
  "total",
] as const;
export type LossName = (typeof LOSS_NAMES)[number];

/** Frame geometry the graph's constants depend on. */
export interface StepGeometry {
  /** Batch size B. */
  readonly batch: number;
  /** max(W, H). */
  readonly largerDim: number;
}

/** Row blocks of `xyt_map` and `xyt_alpha` (multiples of B). */
export const MAP_BLOCKS = [
  "p",
  "xp1",
  "yp1",
  "rig_y",
  "rig_x",
  "grig_y",
  "grig_x",
  "flow_fw",
  "flow_bw",
  "grig_bg_y",
  "grig_bg_x",
] as const;
export type MapBlock = (typeof MAP_BLOCKS)[number];

/**
 * The row blocks of `xyt_map` for a config: the background's global-rigidity points get their own
 * blocks only when its Δ differs from the foreground's (the release uses 100 px for both).
 */
export function mapBlocks(config: AtlasLossConfig, globalRigidity = true): readonly MapBlock[] {
  const all = config.globalDerivativeFg === config.globalDerivativeBg ? MAP_BLOCKS.slice(0, 9) : MAP_BLOCKS;
  // without global rigidity (after its stop iteration) its points are not evaluated at all
  return globalRigidity ? all : all.filter((b) => !b.startsWith("grig"));
}
export const ALPHA_BLOCKS = ["p", "xp1", "yp1", "flow_fw", "flow_bw"] as const;

export interface StepValues {
  readonly losses: Readonly<Record<LossName, Value>>;
  readonly uv1: Value;
  readonly uv2: Value;
  readonly alpha: Value;
  readonly rgb1: Value;
  readonly rgb2: Value;
  readonly rgb: Value;
  readonly perSample: Readonly<
    Record<"rigidity1" | "rigidity2" | "global_rigidity1" | "global_rigidity2", Value>
  >;
}

const rowsOf = (g: GraphBuilder, v: Value, block: number, b: number): Value =>
  op.Slice(g, v, { starts: [block * b], ends: [(block + 1) * b], axes: [0] });
const col = (g: GraphBuilder, v: Value, j: number): Value =>
  op.Slice(g, v, { starts: [j], ends: [j + 1], axes: [1] });
const sumCols = (g: GraphBuilder, v: Value): Value => op.ReduceSum(g, v, [1], { keepdims: true });
/** Squared L2 norm per row, [K, 1]. */
const sqNorm = (g: GraphBuilder, v: Value): Value => sumCols(g, op.Mul(g, v, v));

/**
 * `get_rigidity_loss` per sample ([B, 1]) from the uv at P and at the y−Δ / x−Δ points.
 */
function rigidity(
  g: GraphBuilder,
  uv: Value,
  uvY: Value,
  uvX: Value,
  largerDim: number,
  scale: number,
  delta: number,
): Value {
  const toJ = (d: Value): Value => op.Div(g, op.Div(g, op.Div(g, op.Mul(g, d, largerDim), 2), scale), delta);
  const dy = op.Sub(g, uv, uvY);
  const dx = op.Sub(g, uv, uvX);
  const duDx = toJ(col(g, dx, 0));
  const duDy = toJ(col(g, dy, 0));
  const dvDx = toJ(col(g, dx, 1));
  const dvDy = toJ(col(g, dy, 1));
  const sq = (v: Value): Value => op.Mul(g, v, v);
  const j00 = op.Add(g, sq(duDx), sq(dvDx));
  const j01 = op.Add(g, op.Mul(g, duDx, duDy), op.Mul(g, dvDx, dvDy));
  const j11 = op.Add(g, sq(duDy), sq(dvDy));
  const a = op.Add(g, j00, 0.001);
  const d = op.Add(g, j11, 0.001);
  const det = op.Sub(g, op.Mul(g, a, d), op.Mul(g, j01, j01));
  const frob = (p: Value, q: Value, r: Value): Value =>
    safeSqrt(g, op.Add(g, op.Add(g, op.Add(g, sq(p), sq(q)), sq(q)), sq(r)));
  const inv = (v: Value): Value => op.Div(g, v, det);
  return op.Add(g, frob(j00, j01, j11), frob(inv(d), inv(op.Neg(g, j01)), inv(a)));
}

/**
 * √s whose gradient is 0, not 0·∞ = NaN, where s = 0 (torch's norm backward masks a zero norm the
 * same way): two mapped points can coincide exactly once a mapping's tanh saturates. Bit for bit √s
 * for s ≥ 1e-30.
 */
function safeSqrt(g: GraphBuilder, s: Value): Value {
  return op.Sqrt(g, op.Max(g, s, 1e-30));
}

/** Builds the forward step (all losses) on graph inputs; returns its values. */
export interface StepForwardOptions {
  /**
   * (optional, default true) false: the global-rigidity points are not part of `xyt_map` and the
   * global terms are 0 (the graph for iterations after `stopGlobalRigidity`).
   */
  readonly globalRigidity?: boolean;
  /** (optional) where the grid encodings record the table rows they read (see `GridTaps`). */
  readonly gridTaps?: GridTaps;
}

export function buildStepForward(
  g: GraphBuilder,
  nets: AtlasNets,
  geometry: StepGeometry,
  config: AtlasLossConfig,
  params: ReadonlyMap<string, Value>,
  options: StepForwardOptions = {},
): StepValues {
  const b = geometry.batch;
  const D = geometry.largerDim;
  const global = options.globalRigidity ?? true;
  const blocks = mapBlocks(config, global);
  const xytMap = g.input("xyt_map", "float32", [blocks.length * b, 3]);
  const xytAlpha = g.input("xyt_alpha", "float32", [ALPHA_BLOCKS.length * b, 3]);
  const rgbGt = g.input("rgb_gt", "float32", [b, 3]);
  const dxGt = g.input("rgb_dx_gt", "float32", [b, 3]);
  const dyGt = g.input("rgb_dy_gt", "float32", [b, 3]);
  const maskGt = g.input("alpha_mask", "float32", [b, 1]);
  const wFw = g.input("flow_w_fw", "float32", [b, 1]);
  const wBw = g.input("flow_w_bw", "float32", [b, 1]);
  const coefficients = g.input("coefficients", "float32", [COEFFICIENT_NAMES.length]);
  const denominators = g.input("denominators", "float32", [3]);
  const denom = (i: number): Value =>
    op.Reshape(g, op.Slice(g, denominators, { starts: [i], ends: [i + 1] }), []);

  // means over the batch are sums over this graph's rows divided by the WHOLE batch's counts (the
  // `denominators` feed), so that shards of one batch add up to the full step (data-parallel)
  const sumAll = (v: Value): Value => op.ReduceSum(g, v, [0, 1], { keepdims: false });
  const meanAll = (_g: GraphBuilder, v: Value): Value => op.Div(g, sumAll(v), denom(0));
  const taps = options.gridTaps;
  const uv1All = imlp(g, nets.mapping1, "mapping1", params, xytMap, taps).output;
  const uv2All = imlp(g, nets.mapping2, "mapping2", params, xytMap, taps).output;
  const alphaAll = mapAlpha(g, imlp(g, nets.alpha, "alpha", params, xytAlpha, taps).output);
  const m = (v: Value, name: MapBlock): Value => rowsOf(g, v, blocks.indexOf(name), b);
  const al = (name: (typeof ALPHA_BLOCKS)[number]): Value =>
    rowsOf(g, alphaAll, ALPHA_BLOCKS.indexOf(name), b);

  // atlas on [fg(P), bg(P), fg(P+x), bg(P+x), fg(P+y), bg(P+y)]
  const fg = (uv: Value): Value => op.Add(g, op.Mul(g, uv, 0.5), 0.5);
  const bg = (uv: Value): Value => op.Sub(g, op.Mul(g, uv, 0.5), 0.5);
  const atlasIn = op.Concat(
    g,
    (["p", "xp1", "yp1"] as const).flatMap((blk) => [fg(m(uv1All, blk)), bg(m(uv2All, blk))]),
    0,
  );
  const colours = mapColour(g, imlp(g, nets.atlas, "atlas", params, atlasIn, taps).output);
  const c = (k: number): Value => rowsOf(g, colours, k, b);
  const composite = (c1: Value, c2: Value, a: Value): Value =>
    op.Add(g, op.Mul(g, c1, a), op.Mul(g, c2, op.Sub(g, 1, a)));

  const uv1 = m(uv1All, "p");
  const uv2 = m(uv2All, "p");
  const alpha = al("p");
  const rgb1 = c(0);
  const rgb2 = c(1);
  const rgb = composite(rgb1, rgb2, alpha);

  // gradient loss (Eq. 7)
  const rgbX = composite(c(2), c(3), al("xp1"));
  const rgbY = composite(c(4), c(5), al("yp1"));
  const gradient = meanAll(
    g,
    op.Add(
      g,
      sqNorm(g, op.Sub(g, dxGt, op.Sub(g, rgbX, rgb))),
      sqNorm(g, op.Sub(g, dyGt, op.Sub(g, rgbY, rgb))),
    ),
  );
  const rgbLoss = meanAll(g, sqNorm(g, op.Sub(g, rgb, rgbGt)));
  const sparsity = meanAll(g, sqNorm(g, op.Mul(g, rgb1, op.Sub(g, 1, alpha))));

  // rigidity (Eq. 9), local and global; the background's at its own scale when it has one
  const s = config.uvMappingScale;
  const sBg = config.uvMappingScaleBackground ?? s;
  const rig = (all: Value, yb: MapBlock, xb: MapBlock, delta: number): Value =>
    rigidity(g, m(all, "p"), m(all, yb), m(all, xb), D, all === uv2All ? sBg : s, delta);
  const r1 = rig(uv1All, "rig_y", "rig_x", config.derivativeAmount);
  const r2 = rig(uv2All, "rig_y", "rig_x", config.derivativeAmount);
  const zeros = g.constant(tensor("float32", [b, 1], new Float32Array(b)));
  const gr1 = global ? rig(uv1All, "grig_y", "grig_x", config.globalDerivativeFg) : zeros;
  const gr2 = !global
    ? zeros
    : blocks.includes("grig_bg_y")
      ? rig(uv2All, "grig_bg_y", "grig_bg_x", config.globalDerivativeBg)
      : rig(uv2All, "grig_y", "grig_x", config.globalDerivativeBg);

  // optical flow (Eq. 11): mean over the consistent rows, weighted by alpha / 1 - alpha
  const maskedMean = (v: Value, w: Value): Value =>
    op.Div(g, sumAll(op.Mul(g, v, w)), op.Max(g, denom(w === wFw ? 1 : 2), 1));
  const flowDistance = (all: Value, blk: "flow_fw" | "flow_bw", w: Value): Value => {
    const d = op.Sub(g, m(all, blk), m(all, "p"));
    // rows outside the mask get +1 under the root (no 0-norm gradient); they are weighted 0 anyway
    const norm = safeSqrt(g, op.Add(g, sqNorm(g, d), op.Sub(g, 1, w)));
    return op.Div(g, op.Mul(g, norm, D), 2 * (all === uv2All ? sBg : s));
  };
  const flowLoss = (all: Value, weight: Value): Value =>
    op.Add(
      g,
      op.Mul(g, maskedMean(op.Mul(g, flowDistance(all, "flow_bw", wBw), weight), wBw), 0.5),
      op.Mul(g, maskedMean(op.Mul(g, flowDistance(all, "flow_fw", wFw), weight), wFw), 0.5),
    );
  const flow1 = flowLoss(uv1All, alpha);
  const flow2 = flowLoss(uv2All, op.Sub(g, 1, alpha));
  // alpha flow (Eq. 12)
  const flowAlpha = op.Mul(
    g,
    op.Add(
      g,
      maskedMean(op.Abs(g, op.Sub(g, alpha, al("flow_fw"))), wFw),
      maskedMean(op.Abs(g, op.Sub(g, al("flow_bw"), alpha)), wBw),
    ),
    0.5,
  );
  // bootstrapping: BCE(alpha, mask)
  const bce = meanAll(
    g,
    op.Sub(
      g,
      op.Mul(g, op.Neg(g, maskGt), op.Log(g, alpha)),
      op.Mul(g, op.Sub(g, 1, maskGt), op.Log(g, op.Sub(g, 1, alpha))),
    ),
  );

  const meanOf = (v: Value): Value => meanAll(g, v);
  const k = (name: (typeof COEFFICIENT_NAMES)[number]): Value =>
    op.Reshape(
      g,
      op.Slice(g, coefficients, {
        starts: [COEFFICIENT_NAMES.indexOf(name)],
        ends: [COEFFICIENT_NAMES.indexOf(name) + 1],
      }),
      [],
    );
  const losses = {
    rgb: rgbLoss,
    gradient,
    sparsity,
    rigidity1: meanOf(r1),
    rigidity2: meanOf(r2),
    global_rigidity1: meanOf(gr1),
    global_rigidity2: meanOf(gr2),
    flow1,
    flow2,
    flow_alpha: flowAlpha,
    alpha_bootstrapping: bce,
  };
  const terms: Value[] = [
    op.Mul(g, k("rigidity"), op.Add(g, losses.rigidity1, losses.rigidity2)),
    op.Mul(g, k("global_rigidity_fg"), losses.global_rigidity1),
    op.Mul(g, k("global_rigidity_bg"), losses.global_rigidity2),
    op.Mul(g, losses.rgb, k("rgb")),
    op.Mul(g, k("optical_flow"), op.Add(g, flow1, flow2)),
    op.Mul(g, bce, k("alpha_bootstrapping")),
    op.Mul(g, flowAlpha, k("alpha_flow")),
    op.Mul(g, sparsity, k("sparsity")),
    op.Mul(g, gradient, k("gradient")),
  ];
  const total = terms.slice(1).reduce((acc, t) => op.Add(g, acc, t), terms[0] as Value);
  const flat = (v: Value): Value => op.Reshape(g, v, [b]);
  return {
    losses: { ...losses, total },
    uv1,
    uv2,
    alpha,
    rgb1,
    rgb2,
    rgb,
    perSample: {
      rigidity1: flat(r1),
      rigidity2: flat(r2),
      global_rigidity1: flat(gr1),
      global_rigidity2: flat(gr2),
    },
  };
}

export interface StepGraphOptions extends StepForwardOptions {
  /** (optional, default false) also output uv1/uv2/alpha/rgb1/rgb2/rgb and the per-sample rigidity terms. */
  readonly diagnostics?: boolean;
}

/**
 * The whole training step in `g`: inputs = parameters (state_dict names) + the batch inputs above;
 * outputs `loss.<name>` for every {@link LOSS_NAMES} entry and `grad.<param>` for every parameter but
 * the grid tables. A grid table's gradient comes as the rows it read: `grad_rows.<table>` [n, F] and
 * `grad_index.<table>` [n] (int64; a row may repeat: the gradient is their sum per row).
 */
export function buildStepGraph(
  g: GraphBuilder,
  nets: AtlasNets,
  geometry: StepGeometry,
  config: AtlasLossConfig,
  options: StepGraphOptions = {},
): void {
  const params = parameterInputs(g, nets, NET_NAMES);
  const taps: GridTaps = new Map();
  const v = buildStepForward(g, nets, geometry, config, params, { ...options, gridTaps: taps });
  const names = modelParameterShapes(nets)
    .map(([n]) => n)
    .filter((n) => !taps.has(n));
  const tapped = [...taps];
  const { grads } = gradients(g, v.losses.total, [
    ...names.map((n) => params.get(n) as Value),
    ...tapped.map(([, t]) => t.rows),
  ]);
  grads.slice(0, names.length).forEach((gr, i) => g.output(gr, `grad.${names[i] ?? i}`));
  tapped.forEach(([name, t], i) => {
    const gr = grads[names.length + i] as Value;
    const features = gr.shape[2];
    if (typeof features !== "number")
      throw new InvalidArgumentError(`rows of ${name}`, "a static number of features", gr.shape);
    g.output(op.Reshape(g, gr, [-1, features]), `grad_rows.${name}`);
    g.output(op.Reshape(g, t.index, [-1]), `grad_index.${name}`);
  });
  for (const name of LOSS_NAMES) g.output(v.losses[name], `loss.${name}`);
  if (options.diagnostics) {
    for (const [name, val] of [
      ["uv1", v.uv1],
      ["uv2", v.uv2],
      ["alpha", v.alpha],
      ["rgb1", v.rgb1],
      ["rgb2", v.rgb2],
      ["rgb", v.rgb],
    ] as const)
      g.output(val, name);
    for (const [name, val] of Object.entries(v.perSample)) g.output(val, `per_sample.${name}`);
  }
}
