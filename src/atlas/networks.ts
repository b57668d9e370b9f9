/**
 * The networks of Neural Layered Atlases (ykasten/layered-neural-atlases, implicit_neural_networks.py
 * and config/config.json) as graph functions: the positional encoding `positionalEncoding_vec`
 * (frequencies float32(2^j·π), frequency-major [sin of every coordinate, cos of every coordinate]
 * blocks, no raw input) and the `IMLP` (ReLU before every layer but the first, the encoded input
 * concatenated after the activation at skip layers, tanh on every output). Parameters are graph
 * values named as the release's state_dict keys, `<net>.hidden.<i>.weight` ([out, in]) and `.bias`,
 * prefixed by the net's role (mapping1 = M_f, mapping2 = M_b, alpha, atlas).
 *
 * The release feeds skip layers `x.detach()`: no gradient reaches the network input through a skip
 * connection. The builder's autodiff has no stop-gradient op, so {@link stopGradient} routes the
 * value through an int64 round trip (fixed point with 2^-40 resolution, exact for |x| ≥ 2^-16):
 * autodiff only follows float values, so nothing upstream of the cast gets a gradient from it.
 */
import { InvalidArgumentError } from "../errors.js";
import type { GraphBuilder, Value } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { type HostTensor, tensor } from "../tensor.js";

/** One IMLP (the constructor arguments of the release's class). */
export interface ImlpSpec {
  readonly inputDim: number;
  readonly outputDim: number;
  readonly hiddenDim: number;
  /** Counts the output layer. */
  readonly numLayers: number;
  readonly skipLayers: readonly number[];
  readonly positional: boolean;
  /** Number of PE frequencies L (2·inputDim·L features). */
  readonly positionalDim: number;
  /**
   * (optional; not in the release) a multiresolution grid encoding of a 2-D input instead of PE (see
   * {@link gridEncoding}); its tables are parameters `<prefix>.grid.<level>`.
   */
  readonly grid?: GridSpec;
  /**
   * (optional; not in the release, mapping nets only) a learnt affine map of (x, y) per frame applied
   * before the net (see {@link frameTransform}); its table is the parameter `<prefix>.frames`.
   */
  readonly frameAffine?: FrameAffineSpec;
  /** (optional, default true as in the release) tanh on the output (IMLP `use_tanh`). */
  readonly tanh?: boolean;
}

/**
 * A per-frame affine pre-transform of a mapping net's input: (x, y) → (I + linearScale·P_f)·(x, y) +
 * scale·t_f with the frame's row [P_f (2×2, row-major), t_f] of the table `<prefix>.frames` [N, 6]
 * (zeros are the identity; `atlas fit` starts from the clip, ./frame-init.ts). The net then only has
 * to learn what a camera's pan, zoom and roll do not explain; a small smooth MLP of (x, y, t) cannot
 * follow a long pan to the fraction of a pixel that a sharp atlas needs.
 */
export interface FrameAffineSpec {
  /** Frames of the clip (t = f/(N/2) − 1 picks row f). */
  readonly frames: number;
  /** Adam's step on the shift t_f is lr × scale (as {@link GridSpec.scale}). */
  readonly scale: number;
  /** The same for P_f (0: shifts only). */
  readonly linearScale: number;
}

/**
 * A multiresolution grid encoding of a 2-D input (Instant-NGP's encoding with dense, unhashed tables):
 * per level a table of R×R vertices over [-1, 1]² with `features` values each, bilinearly
 * interpolated at the input; the levels' features are concatenated, coarse to fine.
 */
export interface GridSpec {
  /** Vertices per side of each level, coarse to fine. */
  readonly resolutions: readonly number[];
  /** Values per vertex. */
  readonly features: number;
  /**
   * The encoding uses table × scale, so Adam's step on a table value is lr × scale: the tables learn
   * faster than the MLP weights (Instant-NGP trains its tables at lr 1e-2) with one optimizer.
   */
  readonly scale: number;
}

/**
 * The grid the fast atlas uses: 6 levels, 16 to 512 vertices per side (≈ 1.6 vertices per pixel of a
 * 128² frame at the release's uv scale 0.8), 2 values each, scale 10. A 1024 level cost 1.5× per
 * iteration on the 9-frame clip at 128² without a better PSNR per iteration.
 */
export const DEFAULT_ATLAS_GRID: GridSpec = {
  resolutions: [16, 32, 64, 128, 256, 512],
  features: 2,
  scale: 10,
};

function checkGrid(grid: GridSpec): void {
  if (grid.resolutions.length === 0 || grid.resolutions.some((r) => !Number.isInteger(r) || r < 2))
    throw new InvalidArgumentError("grid resolutions", "one or more integers ≥ 2", grid.resolutions);
  if (!Number.isInteger(grid.features) || grid.features < 1)
    throw new InvalidArgumentError("grid features", "a positive integer", grid.features);
}

/**
 * The release's nets with the atlas (texture) net replaced by a grid encoding and a small MLP
 * (`layers` Linear layers of `atlasWidth`, no PE, no skips): most of the texture lives in the tables,
 * which cost a few gathers per sample instead of a wide, deep MLP (fits converge about 5x sooner).
 */
export function gridAtlasNets(
  width: number,
  options: { grid?: GridSpec; atlasWidth?: number; layers?: number } = {},
): AtlasNets {
  const grid = options.grid ?? DEFAULT_ATLAS_GRID;
  const atlasWidth = options.atlasWidth ?? 64;
  const layers = options.layers ?? 3;
  for (const [name, v] of [
    ["atlas width", atlasWidth],
    ["atlas layers", layers],
  ] as const)
    if (!Number.isInteger(v) || v < 1) throw new InvalidArgumentError(name, "a positive integer", v);
  checkGrid(grid);
  const base = releaseNets(width);
  return {
    ...base,
    atlas: {
      inputDim: 2,
      outputDim: 3,
      hiddenDim: atlasWidth,
      numLayers: layers,
      skipLayers: [],
      positional: false,
      positionalDim: 0,
      grid,
    },
  };
}

/** The four nets of one atlas model. */
export type NetName = "mapping1" | "mapping2" | "alpha" | "atlas";
export const NET_NAMES: readonly NetName[] = ["mapping1", "mapping2", "alpha", "atlas"];

export type AtlasNets = Readonly<Record<NetName, ImlpSpec>>;

/**
 * The release's nets (config/config.json) with the given hidden widths (release: 256 each).
 * M_f: 6 layers, M_b: 4 layers, no PE (the config's PE switches are off); alpha: 8 layers, PE 5;
 * atlas: 8 layers, PE 10, skips [4, 7].
 */
export function releaseNets(width: number | Partial<Record<NetName, number>> = 256): AtlasNets {
  const w = (n: NetName): number => (typeof width === "number" ? width : (width[n] ?? 256));
  for (const n of NET_NAMES) {
    if (!Number.isInteger(w(n)) || w(n) < 1)
      throw new InvalidArgumentError(`width of ${n}`, "a positive integer", w(n));
  }
  return {
    mapping1: {
      inputDim: 3,
      outputDim: 2,
      hiddenDim: w("mapping1"),
      numLayers: 6,
      skipLayers: [],
      positional: false,
      positionalDim: 4,
    },
    mapping2: {
      inputDim: 3,
      outputDim: 2,
      hiddenDim: w("mapping2"),
      numLayers: 4,
      skipLayers: [],
      positional: false,
      positionalDim: 2,
    },
    alpha: {
      inputDim: 3,
      outputDim: 1,
      hiddenDim: w("alpha"),
      numLayers: 8,
      skipLayers: [],
      positional: true,
      positionalDim: 5,
    },
    atlas: {
      inputDim: 2,
      outputDim: 3,
      hiddenDim: w("atlas"),
      numLayers: 8,
      skipLayers: [4, 7],
      positional: true,
      positionalDim: 10,
    },
  };
}

/** The mapping nets with a per-frame affine pre-transform of `frames` rows (see {@link FrameAffineSpec}). */
export function withFrameAffine(
  nets: AtlasNets,
  frames: number,
  options: { scale?: number; linearScale?: number } = {},
): AtlasNets {
  if (!Number.isInteger(frames) || frames < 1)
    throw new InvalidArgumentError("frames", "a positive integer", frames);
  const frameAffine: FrameAffineSpec = {
    frames,
    scale: options.scale ?? 4,
    linearScale: options.linearScale ?? 0.5,
  };
  return {
    ...nets,
    mapping1: { ...nets.mapping1, frameAffine },
    mapping2: { ...nets.mapping2, frameAffine },
  };
}

/** Width of the encoded input (first layer's and skip layers' extra input). */
export function encodedDim(spec: ImlpSpec): number {
  if (spec.grid) return spec.grid.resolutions.length * spec.grid.features;
  return spec.positional ? 2 * spec.inputDim * spec.positionalDim : spec.inputDim;
}

/** [in, out] of every layer. */
export function layerShapes(spec: ImlpSpec): [number, number][] {
  const enc = encodedDim(spec);
  return Array.from({ length: spec.numLayers }, (_, i) => {
    const inF = i === 0 ? enc : spec.skipLayers.includes(i) ? spec.hiddenDim + enc : spec.hiddenDim;
    return [inF, i === spec.numLayers - 1 ? spec.outputDim : spec.hiddenDim];
  });
}

/** Parameter names and shapes (state_dict order) of one net, prefixed `<prefix>.`. */
export function parameterShapes(prefix: string, spec: ImlpSpec): [string, number[]][] {
  const frames: [string, number[]][] = spec.frameAffine
    ? [[`${prefix}.frames`, [spec.frameAffine.frames, 6]]]
    : [];
  const grid = (spec.grid?.resolutions ?? []).map((r, l): [string, number[]] => [
    `${prefix}.grid.${l}`,
    [r * r, spec.grid?.features ?? 0],
  ]);
  return [
    ...frames,
    ...grid,
    ...layerShapes(spec).flatMap(([inF, outF], i): [string, number[]][] => [
      [`${prefix}.hidden.${i}.weight`, [outF, inF]],
      [`${prefix}.hidden.${i}.bias`, [outF]],
    ]),
  ];
}

/** All parameter names and shapes of a model, nets in {@link NET_NAMES} order (the release's Adam groups). */
export function modelParameterShapes(nets: AtlasNets): [string, number[]][] {
  return NET_NAMES.flatMap((n) => parameterShapes(n, nets[n]));
}

/** The PE frequencies float32(2^j·π), j < L. */
export function peFrequencies(count: number): Float32Array {
  return Float32Array.from({ length: count }, (_, j) => 2 ** j * Math.PI);
}

/**
 * `positionalEncoding_vec(x, b)`: [K, d] -> [K, 2·d·L], per frequency j the block
 * [sin(b_j·x_1..x_d), cos(b_j·x_1..x_d)].
 */
export function positionalEncoding(g: GraphBuilder, x: Value, frequencies: number): Value {
  const b = g.constant(tensor("float32", [frequencies, 1], peFrequencies(frequencies)));
  // [K, 1, d] * [L, 1] -> [K, L, d]; cat on d -> [K, L, 2d] -> [K, L·2d]. Built in this order, no
  // Transpose: ORT's Transpose of [K, 2d, L] with these small inner dims took 10 ms per fit step.
  const proj = op.Mul(g, op.Unsqueeze(g, x, [1]), b);
  const both = op.Concat(g, [op.Sin(g, proj), op.Cos(g, proj)], 2);
  const d = x.shape[1];
  if (typeof d !== "number")
    throw new InvalidArgumentError("positionalEncoding input", "a static number of coordinates", x.shape);
  return op.Reshape(g, both, [-1, 2 * d * frequencies]);
}

/**
 * The grid encoding of `x` [K, 2] in [-1, 1]² (see {@link GridSpec}) with the tables
 * `<prefix>.grid.<l>` [R², F] from `params`: [K, levels·F]. Per level the position
 * p = (x + 1)/2·(R − 1) (clamped to the table) picks the cell's four vertices (one Gather of [K, 4]
 * indices y·R + x) and weighs them bilinearly with the fractional part. The gradient reaches the
 * tables (Gather's rule: a ScatterND add) and the input (through the weights), so the mapping nets
 * learn from the colours.
 */
export function gridEncoding(
  g: GraphBuilder,
  x: Value,
  grid: GridSpec,
  prefix: string,
  params: ParameterValues,
  taps?: GridTaps,
): Value {
  if (x.shape[1] !== 2) throw new InvalidArgumentError("gridEncoding input", "[K, 2] coordinates", x.shape);
  checkGrid(grid);
  const levels = grid.resolutions.map((r, l) => {
    const table = params.get(`${prefix}.grid.${l}`);
    if (!table) throw new InvalidArgumentError("params", `${prefix}.grid.${l}`, [...params.keys()]);
    // position in vertex units, kept inside the table so the cell's far corner exists
    const p = op.Min(g, op.Max(g, op.Mul(g, op.Add(g, x, 1), 0.5 * (r - 1)), 0), r - 1 - 1e-3);
    const cell = op.Cast(g, p, "int64"); // p ≥ 0: truncation is floor; no gradient path
    const frac = op.Sub(g, p, op.Cast(g, cell, "float32"));
    const [cx, cy] = op.Split(g, cell, 1, [1, 1]) as [Value, Value];
    const [fx, fy] = op.Split(g, frac, 1, [1, 1]) as [Value, Value];
    const corner = op.Add(g, op.Mul(g, cy, r), cx); // [K, 1]
    const idx = op.Add(g, corner, g.constantOf("int64", [4], [0, 1, r, r + 1])); // [K, 4]
    const [gx, gy] = [op.Sub(g, 1, fx), op.Sub(g, 1, fy)];
    const weights = op.Concat(
      g,
      [op.Mul(g, gx, gy), op.Mul(g, fx, gy), op.Mul(g, gx, fy), op.Mul(g, fx, fy)],
      1,
    ); // [K, 4], the order of the offsets
    const values = op.Gather(g, table, idx, 0); // [K, 4, F]
    const name = `${prefix}.grid.${l}`;
    // a second lookup would need its rows added to the first's, which the taps do not do
    if (taps?.has(name)) throw new InvalidArgumentError("gridTaps", "one grid encoding per table", name);
    taps?.set(name, { rows: values, index: idx });
    return op.ReduceSum(g, op.Mul(g, values, op.Unsqueeze(g, weights, [2])), [1], { keepdims: false });
  });
  return op.Mul(g, levels.length === 1 ? (levels[0] as Value) : op.Concat(g, levels, 1), grid.scale);
}

/**
 * `x` [K, 3] (x, y, t) with (x, y) moved by the frame's affine map (see {@link FrameAffineSpec}); the
 * row is t's frame, round((t + 1)·N/2) clamped to the table. The gradient reaches the table (Gather's
 * rule) and (x, y); none reaches t through the index.
 */
export function frameTransform(
  g: GraphBuilder,
  x: Value,
  spec: FrameAffineSpec,
  prefix: string,
  params: ParameterValues,
): Value {
  if (x.shape[1] !== 3) throw new InvalidArgumentError("frameTransform input", "[K, 3] (x, y, t)", x.shape);
  const table = params.get(`${prefix}.frames`);
  if (!table) throw new InvalidArgumentError("params", `${prefix}.frames`, [...params.keys()]);
  const [px, py, t] = op.Split(g, x, 1, [1, 1, 1]) as [Value, Value, Value];
  const row = op.Min(
    g,
    op.Max(g, op.Add(g, op.Mul(g, op.Add(g, t, 1), spec.frames / 2), 0.5), 0),
    spec.frames - 0.5,
  );
  const index = op.Reshape(g, op.Cast(g, row, "int64"), [-1]); // row ≥ 0: truncation is floor
  const scales = g.constantOf(
    "float32",
    [6],
    [spec.linearScale, spec.linearScale, spec.scale, spec.linearScale, spec.linearScale, spec.scale],
  );
  const rows = op.Mul(g, op.Gather(g, table, index, 0), scales); // [K, 6]
  const [a, b, tx, c, d, ty] = op.Split(g, rows, 1, [1, 1, 1, 1, 1, 1]) as Value[] as [
    Value,
    Value,
    Value,
    Value,
    Value,
    Value,
  ];
  const u = op.Add(g, op.Add(g, px, op.Add(g, op.Mul(g, a, px), op.Mul(g, b, py))), tx);
  const v = op.Add(g, op.Add(g, py, op.Add(g, op.Mul(g, c, px), op.Mul(g, d, py))), ty);
  return op.Concat(g, [u, v, t], 1);
}

/**
 * The rows each grid table gives the encoding, by table name: `rows` [K, 4, F] is the Gather's output
 * and `index` [K, 4] (int64) the table rows it read. A training step asks for the loss's gradient
 * with respect to `rows` instead of the table: the same numbers without a dense [R², F] gradient
 * (zeros but for a few thousand rows) computed, copied and scanned every step.
 */
export type GridTaps = Map<string, { readonly rows: Value; readonly index: Value }>;

const FIXED_POINT = 2 ** 40;

/**
 * The value of `x` without a gradient path (torch `x.detach()`), for |x| < 2^23: an int64 fixed-point
 * round trip with resolution 2^-40 (see the file comment).
 */
export function stopGradient(g: GraphBuilder, x: Value): Value {
  const fixed = op.Cast(g, op.Mul(g, x, FIXED_POINT), "int64");
  return op.Mul(g, op.Cast(g, fixed, "float32"), 1 / FIXED_POINT);
}

/** Graph values of one net's parameters by state_dict key (without the net prefix). */
export type ParameterValues = ReadonlyMap<string, Value>;

export interface ImlpOutputs {
  /** tanh output [K, outputDim]. */
  readonly output: Value;
  /** Each layer's Linear output (before the ReLU / tanh). */
  readonly layers: readonly Value[];
}

/**
 * IMLP.forward on `x` [K, inputDim] with the parameters `params` (`<prefix>.hidden.<i>.weight|bias`).
 * With `gridTaps`, a grid encoding records the rows it reads there (see {@link GridTaps}).
 */
export function imlp(
  g: GraphBuilder,
  spec: ImlpSpec,
  prefix: string,
  params: ParameterValues,
  x: Value,
  gridTaps?: GridTaps,
): ImlpOutputs {
  return g.scope(prefix, () => {
    const input = spec.frameAffine ? frameTransform(g, x, spec.frameAffine, prefix, params) : x;
    const encoded = spec.grid
      ? gridEncoding(g, input, spec.grid, prefix, params, gridTaps)
      : spec.positional
        ? positionalEncoding(g, input, spec.positionalDim)
        : input;
    const detached = spec.skipLayers.length > 0 ? stopGradient(g, encoded) : encoded;
    const layers: Value[] = [];
    let h = encoded;
    for (let i = 0; i < spec.numLayers; i++) {
      const weight = params.get(`${prefix}.hidden.${i}.weight`);
      const bias = params.get(`${prefix}.hidden.${i}.bias`);
      if (!weight || !bias)
        throw new InvalidArgumentError("params", `${prefix}.hidden.${i}.weight and .bias`, [
          ...params.keys(),
        ]);
      if (i > 0) h = op.Relu(g, h);
      if (spec.skipLayers.includes(i)) h = op.Concat(g, [h, detached], 1);
      h = op.Gemm(g, h, weight, bias, { transB: true });
      layers.push(h);
    }
    return { output: spec.tanh === false ? h : op.Tanh(g, h), layers };
  });
}

/** Declares every parameter of `nets` as a float32 graph input; returns them by name. */
export function parameterInputs(
  g: GraphBuilder,
  nets: AtlasNets,
  only?: readonly NetName[],
): Map<string, Value> {
  const out = new Map<string, Value>();
  for (const n of only ?? NET_NAMES)
    for (const [name, shape] of parameterShapes(n, nets[n])) out.set(name, g.input(name, "float32", shape));
  return out;
}

/** alpha = 0.99·0.5·(raw + 1) + 0.001, in the release's op order. */
export function mapAlpha(g: GraphBuilder, raw: Value): Value {
  return op.Add(g, op.Mul(g, op.Mul(g, op.Add(g, raw, 1), 0.5), 0.99), 0.001);
}

/** Atlas colour (out + 1)·0.5. */
export function mapColour(g: GraphBuilder, raw: Value): Value {
  return op.Mul(g, op.Add(g, raw, 1), 0.5);
}

/**
 * Initial parameters as torch.nn.Linear draws them (kaiming-uniform a=√5: U(±1/√in) for weight and
 * bias) from `rand()` values of a seeded generator, in state_dict order.
 */
export function initialParameters(
  nets: AtlasNets,
  rand: (count: number) => Float32Array,
): Map<string, HostTensor<"float32">> {
  const out = new Map<string, HostTensor<"float32">>();
  for (const [name, shape] of modelParameterShapes(nets)) {
    if (name.endsWith(".frames")) {
      // the identity: every frame's affine map starts at I, no shift
      out.set(name, tensor("float32", shape, new Float32Array(shape.reduce((a, b) => a * b, 1))));
      continue;
    }
    const level = /^(\w+)\.grid\.\d+$/.exec(name);
    if (level) {
      // Instant-NGP's table init U(±1e-4), in units of the spec's scale
      const scale = nets[level[1] as NetName].grid?.scale ?? 1;
      const n = shape.reduce((a, b) => a * b, 1);
      out.set(
        name,
        tensor(
          "float32",
          shape,
          rand(n).map((u) => ((u * 2 - 1) * 1e-4) / scale),
        ),
      );
      continue;
    }
    if (!name.endsWith(".weight")) continue;
    const [outF = 0, inF = 1] = shape;
    const bound = 1 / Math.sqrt(inF);
    const uniform = (n: number): Float32Array => rand(n).map((u) => (u * 2 - 1) * bound);
    out.set(name, tensor("float32", shape, uniform(outF * inF)));
    out.set(name.replace(/\.weight$/, ".bias"), tensor("float32", [outF], uniform(outF)));
  }
  return out;
}
