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

/** Width of the encoded input (first layer's and skip layers' extra input). */
export function encodedDim(spec: ImlpSpec): number {
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
  return layerShapes(spec).flatMap(([inF, outF], i): [string, number[]][] => [
    [`${prefix}.hidden.${i}.weight`, [outF, inF]],
    [`${prefix}.hidden.${i}.bias`, [outF]],
  ]);
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
  const b = g.constant(tensor("float32", [frequencies], peFrequencies(frequencies)));
  // [K, d, 1] * [L] -> [K, d, L]; cat on d -> [K, 2d, L]; -> [K, L, 2d] -> [K, L·2d]
  const proj = op.Mul(g, op.Unsqueeze(g, x, [2]), b);
  const both = op.Concat(g, [op.Sin(g, proj), op.Cos(g, proj)], 1);
  const d = x.shape[1];
  if (typeof d !== "number")
    throw new InvalidArgumentError("positionalEncoding input", "a static number of coordinates", x.shape);
  return op.Reshape(g, op.Transpose(g, both, [0, 2, 1]), [-1, 2 * d * frequencies]);
}

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
 */
export function imlp(
  g: GraphBuilder,
  spec: ImlpSpec,
  prefix: string,
  params: ParameterValues,
  x: Value,
): ImlpOutputs {
  return g.scope(prefix, () => {
    const encoded = spec.positional ? positionalEncoding(g, x, spec.positionalDim) : x;
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
    return { output: op.Tanh(g, h), layers };
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
    if (!name.endsWith(".weight")) continue;
    const [outF = 0, inF = 1] = shape;
    const bound = 1 / Math.sqrt(inF);
    const uniform = (n: number): Float32Array => rand(n).map((u) => (u * 2 - 1) * bound);
    out.set(name, tensor("float32", shape, uniform(outF * inF)));
    out.set(name.replace(/\.weight$/, ".bias"), tensor("float32", [outF], uniform(outF)));
  }
  return out;
}
