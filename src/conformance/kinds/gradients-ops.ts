/**
 * The `gradients/ops` fixture: for each case, the forward call (torch / diffusers / NLA code as
 * case.json `call` spells it) is built as a graph from the engine's own ops and modules (nn Linear,
 * Attention, diffusers FeedForward, ResnetBlock2D, TimestepEmbedding), parameters bound from the
 * case's inputs and promoted to graph inputs; the backward comes from src/graph/autodiff seeded with
 * the case's upstream gradients. Hyper-parameters (strides, groups, eps, heads, dims, slices, ...)
 * are read from the call strings; every output and gradient is compared with its own bound.
 */
import { ConfigError, UnsupportedError } from "../../errors.js";
import { GraphBuilder, type Value } from "../../graph/builder.js";
import { backward } from "../../graph/autodiff/index.js";
import * as op from "../../graph/ops/index.js";
import { TimestepEmbedding, Timesteps } from "../../models/unet/embeddings.js";
import { ResnetBlock2D } from "../../models/unet/resnet.js";
import { FeedForward } from "../../models/unet/transformer-2d.js";
import { Attention } from "../../nn/attention.js";
import { Linear } from "../../nn/linear.js";
import { mapStore } from "../../nn/weight-store.js";
import { WeightScope } from "../../nn/weights.js";
import { type HostTensor, tensor } from "../../tensor.js";
import {
  type TrainableParameter,
  makeTrainable,
  toCheckpointLayout,
  trackLayouts,
} from "../../train/parameters.js";
import { openGraphSession } from "../../train/graph-session.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext } from "../types.js";
import { evaluate, parseStatements } from "./gradients-expr.js";
import { caseFile, fixtureName, isRecord, readTensorFile } from "./model-fixture.js";

/** A case being built: its graph, feeds, differentiated values and module parameters. */
class CaseGraph {
  readonly g: GraphBuilder;
  readonly feeds: Record<string, HostTensor> = {};
  /** fixture input name -> graph input (plain inputs). */
  readonly plain = new Map<string, Value>();
  params: TrainableParameter[] = [];

  constructor(
    readonly name: string,
    readonly spec: Record<string, unknown>,
    private readonly inputs: ReadonlyMap<string, HostTensor>,
  ) {
    this.g = new GraphBuilder({ name: name.replace(/[^\w]/g, "_") });
  }

  tryTensor(input: string): HostTensor | undefined {
    return this.inputs.get(`${this.name}.${input}`);
  }

  tensor(input: string): HostTensor {
    const t = this.inputs.get(`${this.name}.${input}`);
    if (!t) throw new ConfigError("inputs.safetensors", `${this.name}.${input}`, "a tensor", undefined);
    return t;
  }

  /** The case input `input` as a graph input (fed from the fixture). */
  input(input: string, graphName = input): Value {
    const existing = this.plain.get(graphName);
    if (existing) return existing;
    const t = this.tensor(input);
    const v = this.g.input(graphName.replace(/\./g, "_"), t.dtype, [...t.shape]);
    this.feeds[v.name] = t;
    if (graphName === input) this.plain.set(input, v);
    return v;
  }

  /** Whether the fixture differentiates `input`. */
  requiresGrad(input: string): boolean {
    const inputs = isRecord(this.spec.inputs) ? this.spec.inputs : {};
    const i = inputs[input];
    return isRecord(i) && i.requires_grad === true;
  }

  /** Binds the case's module parameters (inputs named like a state_dict) for `make`. */
  module<M>(make: (w: WeightScope) => M, explicit?: readonly string[]): { model: M; finish: () => void } {
    const names =
      explicit ??
      (Array.isArray(this.spec.module_parameters)
        ? this.spec.module_parameters.map(String)
        : Object.keys(isRecord(this.spec.inputs) ? this.spec.inputs : {}).filter((k) => k.includes(".")));
    const tracker = trackLayouts(mapStore(Object.fromEntries(names.map((n) => [n, this.tensor(n)]))));
    const w = WeightScope.bind(this.g, tracker.store);
    const model = make(w);
    return {
      model,
      finish: () => {
        w.finish();
        this.params = makeTrainable(this.g, tracker);
      },
    };
  }
}

const kw = (call: string, name: string): string | undefined =>
  new RegExp(`${name}\\s*=\\s*([^,)]+(?:\\([^)]*\\))?)`).exec(call.split("#")[0] ?? "")?.[1]?.trim();
const kwNum = (call: string, name: string, fallback: number): number => {
  const v = kw(call, name);
  return v === undefined || v === "None" ? fallback : Number(v);
};
const tupleNums = (s: string): number[] =>
  [...s.matchAll(/-?\d+(?:\.\d+)?(?:e-?\d+)?/g)].map((m) => Number(m[0]));

/** The forward outputs of a case, by output name. */
type Forward = Record<string, Value>;

function conv2d(c: CaseGraph, call: string): Forward {
  const g = c.g;
  let x = c.input("x");
  const pad = /F\.pad\(\s*x\s*,\s*\(([^)]*)\)/.exec(call);
  if (pad) {
    const [l = 0, r = 0, t = 0, b = 0] = tupleNums(pad[1] ?? "");
    x = op.Pad(g, x, [0, 0, t, l, 0, 0, b, r]);
  }
  const pair = (name: string, fallback: number): [number, number] => {
    const v = kw(call, name);
    const nums = v === undefined ? [fallback] : tupleNums(v);
    return [nums[0] ?? fallback, nums[1] ?? nums[0] ?? fallback];
  };
  const [ph, pw] = pair("padding", 0);
  const bias = isRecord(c.spec.inputs) && "bias" in c.spec.inputs ? c.input("bias") : null;
  return {
    output: op.Conv(g, x, c.input("weight"), bias, {
      strides: pair("stride", 1),
      pads: [ph, pw, ph, pw],
      dilations: pair("dilation", 1),
      group: kwNum(call, "groups", 1),
    }),
  };
}

function sdpa(c: CaseGraph, call: string): Forward {
  const g = c.g;
  const q = c.input("q");
  const k = c.input("k");
  const v = c.input("v");
  const m = /(\d+(?:\.\d+)?)\s*\*\*\s*-0\.5/.exec(call);
  const headDim = Number(q.shape[q.rank - 1]);
  const scale = (m ? Number(m[1]) : headDim) ** -0.5;
  let scores = op.MatMul(g, op.Mul(g, q, scale), op.Transpose(g, k, [0, 1, 3, 2]));
  if (/masked_fill|causal/.test(call)) {
    const s = Number(q.shape[2]);
    const l = Number(k.shape[2]);
    const mask = Array.from({ length: s * l }, (_, i) => (i % l <= Math.floor(i / l) ? 0 : -Infinity));
    scores = op.Add(g, scores, g.constantOf("float32", [s, l], mask));
  }
  const probs = op.Softmax(g, scores, -1);
  return { output: op.MatMul(g, probs, v), probs };
}

function attentionModule(c: CaseGraph, call: string): Forward {
  const hidden = c.input("hidden_states");
  const queryDim = kwNum(call, "query_dim", Number(hidden.shape[2]));
  const cross = kw(call, "cross_attention_dim");
  const { model, finish } = c.module(
    (w) =>
      new Attention(w, {
        queryDim,
        ...(cross === undefined || cross === "None" ? {} : { crossAttentionDim: Number(cross) }),
        heads: kwNum(call, "heads", 8),
        dimHead: kwNum(call, "dim_head", 64),
        bias: kw(call, "bias") === "True",
      }),
  );
  const ehs = /encoder_hidden_states\s*=/.test(call) ? c.input("encoder_hidden_states") : undefined;
  const output = model.forward(hidden, ehs ? { encoderHiddenStates: ehs } : {});
  finish();
  return { output };
}

function positionalEncoding(g: GraphBuilder, x: Value, b: Value): Value {
  // [N, d] -> [N, d, L] -> cat(sin, cos) on dim 1 -> [N, 2d, L] -> transpose -> [N, L * 2d]
  const proj = op.Mul(g, op.Unsqueeze(g, x, [2]), b);
  const both = op.Concat(g, [op.Sin(g, proj), op.Cos(g, proj)], 1);
  return op.Reshape(g, op.Transpose(g, both, [0, 2, 1]), [Number(x.shape[0]), -1]);
}

function imlp(c: CaseGraph, call: string): Forward {
  const g = c.g;
  const numLayers = kwNum(call, "num_layers", 8);
  const outputDim = kwNum(call, "output_dim", 1);
  const hidden = kwNum(call, "hidden_dim", 256);
  const positional = kw(call, "use_positional") !== "False";
  const positionalDim = kwNum(call, "positional_dim", 10);
  const skips = tupleNums(/skip_layers\s*=\s*\[([^\]]*)\]/.exec(call)?.[1] ?? "4, 6");
  const inputDim = kwNum(call, "input_dim", 2);
  const b = Float32Array.from({ length: positionalDim }, (_, j) => 2 ** j * Math.PI);
  const encode = (x: Value): Value =>
    positional
      ? positionalEncoding(g, x, g.constant({ dtype: "float32", shape: [positionalDim], data: b }))
      : x;
  const x = c.input("x");
  // IMLP.forward: input = x.detach() (the skip path carries no gradient): a second, undifferentiated feed
  const detached = encode(c.input("x", "x_detached"));
  const enc = positional ? 2 * inputDim * positionalDim : inputDim;
  const { model: layers, finish } = c.module((w) =>
    Array.from({ length: numLayers }, (_, i) => {
      const inF = i === 0 ? enc : skips.includes(i) ? hidden + enc : hidden;
      return new Linear(w.at("hidden").at(i), {
        inFeatures: inF,
        outFeatures: i === numLayers - 1 ? outputDim : hidden,
      });
    }),
  );
  let h = encode(x);
  layers.forEach((layer, i) => {
    if (i > 0) h = op.Relu(g, h);
    if (skips.includes(i)) h = op.Concat(g, [h, detached], 1);
    h = layer.forward(h);
  });
  finish();
  return { output: op.Tanh(g, h) };
}

/** Builds one case's forward outputs from its family and call. */
function buildForward(c: CaseGraph): Forward {
  const call = String(c.spec.call ?? "");
  const family = String(c.spec.family ?? "");
  const g = c.g;
  if (/F\.conv2d/.test(call)) return conv2d(c, call);
  if (/F\.group_norm/.test(call)) {
    return {
      output: op.GroupNormalizationComposite(g, c.input("x"), c.input("weight"), c.input("bias"), {
        numGroups: kwNum(call, "num_groups", 1),
        epsilon: kwNum(call, "eps", 1e-5),
      }),
    };
  }
  if (/F\.layer_norm/.test(call)) {
    const dims = tupleNums(/layer_norm\(\s*x\s*,\s*\(([^)]*)\)/.exec(call)?.[1] ?? "");
    return {
      output: op.LayerNormalization(g, c.input("x"), c.input("weight"), c.input("bias"), {
        axis: -Math.max(1, dims.length),
        epsilon: kwNum(call, "eps", 1e-5),
      }),
    };
  }
  if (/F\.linear/.test(call)) {
    const x = c.input("x");
    const weight = c.tensor("weight");
    const hasBias = /weight\s*,\s*bias/.test(call);
    const { model, finish } = c.module(
      (w) =>
        new Linear(w, {
          inFeatures: Number(weight.shape[1]),
          outFeatures: Number(weight.shape[0]),
          bias: hasBias,
        }),
      hasBias ? ["weight", "bias"] : ["weight"],
    );
    const output = model.forward(x);
    finish();
    return { output };
  }
  if (family === "attention" && /Attention\(/.test(call)) return attentionModule(c, call);
  if (family === "attention") return sdpa(c, call);
  if (/FeedForward\(/.test(call)) {
    const x = c.input("x");
    const { model, finish } = c.module(
      (w) => new FeedForward(w, Number(x.shape[x.rank - 1]), kwNum(call, "mult", 4)),
    );
    const output = model.forward(x);
    finish();
    return { output };
  }
  if (/TimestepEmbedding\(/.test(call)) {
    const [inCh = 0, embed = 0] = tupleNums(/TimestepEmbedding\(([^)]*)\)/.exec(call)?.[1] ?? "");
    const proj = new Timesteps({
      numChannels: tupleNums(/Timesteps\(([^)]*)\)/.exec(call)?.[1] ?? "")[0] ?? inCh,
      flipSinToCos: kw(call, "flip_sin_to_cos") !== "False",
      downscaleFreqShift: kwNum(call, "downscale_freq_shift", 1),
    });
    const t = c.input("timesteps");
    const { model, finish } = c.module(
      (w) => new TimestepEmbedding(w, { inChannels: inCh, timeEmbedDim: embed }),
    );
    const output = model.forward(proj.forward(g, t));
    finish();
    return { output };
  }
  if (/ResnetBlock2D\(/.test(call)) {
    const x = c.input("x");
    const temb = c.input("temb");
    const inChannels = kwNum(call, "in_channels", Number(x.shape[1]));
    const { model, finish } = c.module(
      (w) =>
        new ResnetBlock2D(w, {
          inChannels,
          outChannels: kwNum(call, "out_channels", inChannels),
          tembChannels: kwNum(call, "temb_channels", Number(temb.shape[1])),
          groups: kwNum(call, "groups", 32),
          eps: kwNum(call, "eps", 1e-6),
        }),
    );
    const output = model.forward(x, temb);
    finish();
    return { output };
  }
  if (/positionalEncoding_vec/.test(call))
    return { output: positionalEncoding(g, c.input("x"), c.input("b")) };
  if (/IMLP\(/.test(call)) return imlp(c, call);
  // Everything else is a Python expression over the inputs (torch functions, slicing, permute, ...).
  const outputs = Array.isArray(c.spec.outputs) ? c.spec.outputs.map(String) : ["output"];
  return evaluate(g, parseStatements(call), (name) => c.input(name), outputs);
}

async function runCase(
  c: CaseGraph,
  outputs: ReadonlyMap<string, HostTensor>,
  fixture: string,
): Promise<ConformanceRow[]> {
  const g = c.g;
  const forward = buildForward(c);
  const upstream = isRecord(c.spec.upstream_gradients) ? c.spec.upstream_gradients : {};
  const seeds = Object.entries(forward).map(([name, value]) => {
    const key = upstream[name];
    if (typeof key !== "string")
      throw new ConfigError("case.json", `cases.${c.name}.upstream_gradients.${name}`, "a tensor name", key);
    // a tensor of inputs.safetensors, or "scalar 0.7" (also stored as <case>.grad_output.<name>)
    const scalar = /^scalar\s+(\S+)$/.exec(key);
    const stored = `grad_output.${name}`;
    const t = scalar
      ? (c.tryTensor(stored) ?? tensor("float32", [], Float32Array.from([Number(scalar[1])])))
      : c.tensor(key.startsWith(`${c.name}.`) ? key.slice(c.name.length + 1) : key);
    const v = g.input(stored.replace(/\./g, "_"), "float32", [...value.shape.map(Number)]);
    c.feeds[v.name] = t;
    return { value, grad: v };
  });
  const wrtPlain = [...c.plain.entries()].filter(([name]) => c.requiresGrad(name));
  const wrt = [...wrtPlain.map(([, v]) => v), ...c.params.map((p) => p.value)];
  const { grads } = backward(g, seeds, wrt);
  for (const [name, value] of Object.entries(forward)) g.output(value, `out.${name}`);
  grads.forEach((gr, i) => g.output(gr, `grad.${i}`));
  for (const p of c.params) c.feeds[p.name] = await p.initial();
  const session = await openGraphSession(g);
  try {
    const out = await session.run(c.feeds);
    const tol = isRecord(c.spec.max_abs_err) ? c.spec.max_abs_err : {};
    const rows: ConformanceRow[] = [];
    const row = (key: string, got: HostTensor | undefined): void => {
      const want = outputs.get(`${c.name}.${key}`);
      const bound = tol[key];
      if (!want || typeof bound !== "number") return;
      rows.push(
        got
          ? compareTensors(`${fixture}/${c.name}`, key, got, want, bound)
          : failedRow(`${fixture}/${c.name}`, key, "not computed"),
      );
    };
    for (const name of Object.keys(forward)) row(`out.${name}`, out[`out.${name}`]);
    wrtPlain.forEach(([name], i) => row(`grad.${name}`, out[`grad.${i}`]));
    c.params.forEach((p, i) => {
      const t = out[`grad.${wrtPlain.length + i}`];
      row(`grad.${p.name}`, t ? toCheckpointLayout(p, t) : undefined);
    });
    const listed = Array.isArray(c.spec.gradients) ? c.spec.gradients.map(String) : [];
    for (const k of [...listed, ...Object.keys(tol)]) {
      if (!rows.some((r) => r.tensor === k)) rows.push(failedRow(`${fixture}/${c.name}`, k, "not computed"));
    }
    return rows;
  } finally {
    await session.release();
  }
}

export async function runGradientOpsFixture(ctx: FixtureContext): Promise<ConformanceRow[]> {
  const fixture = fixtureName(ctx, "gradients/ops");
  const cases = ctx.caseJson.cases;
  if (!isRecord(cases)) throw new ConfigError(caseFile(ctx), "cases", "an object of case -> spec", cases);
  const inputs = await readTensorFile(ctx, "inputs_file", "inputs.safetensors");
  const outputs = await readTensorFile(ctx, "outputs_file", "outputs.safetensors");
  const rows: ConformanceRow[] = [];
  for (const [name, spec] of Object.entries(cases)) {
    if (!isRecord(spec)) throw new ConfigError(caseFile(ctx), `cases.${name}`, "an object", spec);
    try {
      rows.push(...(await runCase(new CaseGraph(name, spec, inputs), outputs, fixture)));
    } catch (error) {
      if (ctx.signal?.aborted) throw error;
      const message = error instanceof Error ? error.message : String(error);
      rows.push(failedRow(`${fixture}/${name}`, "-", `error: ${message}`));
    }
  }
  if (rows.length === 0) throw new UnsupportedError(`${fixture}: a fixture without cases`);
  return rows;
}
