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
import { CallArgs, type PyCall, argsOf, kwNum, pyRepr } from "./gradients-call-args.js";
import { evaluate, parseStatements } from "./gradients-expr.js";
import {
  type Forward,
  attentionModule,
  feedForward,
  imlp,
  positionalEncoding,
  resnetBlock,
  timestepEmbedding,
} from "./gradients-modules.js";
import { caseFile, fixtureName, isRecord, readTensorFile } from "./model-fixture.js";

/** A case being built: its graph, feeds, differentiated values and module parameters. */
export class CaseGraph {
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

const tupleNums = (s: string): number[] =>
  [...s.matchAll(/-?\d+(?:\.\d+)?(?:e-?\d+)?/g)].map((m) => Number(m[0]));

const CONV2D = ["input", "weight", "bias", "stride", "padding", "dilation", "groups"] as const;
const PAD = ["input", "pad", "mode", "value"] as const;

/** torch F.pad(x, (left, right, top, bottom, ...)): pairs from the last axis backwards. */
function pad(c: CaseGraph, call: PyCall): Value {
  const a = new CallArgs("F.pad", call, PAD);
  const x = c.input(a.name("input") ?? "x");
  const p = a.numbers("pad", []);
  a.only("mode", ["constant"], "only constant padding has a gradient rule");
  if (p.length % 2 !== 0 || p.length > 2 * x.rank || p.some((v) => v < 0 || !Number.isInteger(v)))
    throw new UnsupportedError(`F.pad pad=${pyRepr(p)}`, {
      hint: "give an even number of non-negative integers, two per padded axis",
    });
  const pads = Array<number>(2 * x.rank).fill(0);
  for (let i = 0; i < p.length / 2; i++) {
    const axis = x.rank - 1 - i;
    pads[axis] = p[2 * i] ?? 0;
    pads[x.rank + axis] = p[2 * i + 1] ?? 0;
  }
  return op.Pad(c.g, x, pads, { value: a.num("value", 0) });
}

/**
 * torch F.conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1): stride,
 * padding and dilation per axis (`(2, 1)`), padding also 'valid' or 'same' (stride 1; the odd
 * extra row / column of 'same' goes after, as torch pads it).
 */
function conv2d(c: CaseGraph, call: string): Forward {
  const a = argsOf(call, "F.conv2d", CONV2D);
  const input = a.call("input");
  if (input && input.fn !== "F.pad")
    throw new UnsupportedError(`F.conv2d input ${input.fn}(...)`, { hint: "a tensor name or F.pad(...)" });
  const x = input ? pad(c, input) : c.input(a.name("input") ?? "x");
  const weight = c.input(a.name("weight") ?? "weight");
  const biasName = a.name("bias");
  const bias = biasName === undefined ? null : c.input(biasName);
  const strides = a.perAxis("stride", 1, 2);
  const dilations = a.perAxis("dilation", 1, 2);
  const padding = a.value("padding");
  let pads: number[];
  if (padding === "valid") pads = [0, 0, 0, 0];
  else if (padding === "same") {
    if (strides.some((s) => s !== 1))
      throw new UnsupportedError("F.conv2d padding='same' with a stride", {
        hint: "torch refuses it too: padding='same' needs stride 1",
      });
    const kernel = weight.shape.slice(2).map(Number);
    const total = kernel.map((k, i) => (dilations[i] ?? 1) * (k - 1));
    const begin = total.map((t) => Math.floor(t / 2));
    pads = [...begin, ...total.map((t, i) => t - (begin[i] ?? 0))];
  } else if (typeof padding === "string")
    throw new UnsupportedError(`F.conv2d padding='${padding}'`, { hint: "use 'same', 'valid' or numbers" });
  else {
    const [ph = 0, pw = 0] = a.perAxis("padding", 0, 2);
    pads = [ph, pw, ph, pw];
  }
  return {
    output: op.Conv(c.g, x, weight, bias, { strides, pads, dilations, group: a.num("groups", 1) }),
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
  if (/FeedForward\(/.test(call)) return feedForward(c, call);
  if (/TimestepEmbedding\(/.test(call)) return timestepEmbedding(c, call);
  if (/ResnetBlock2D\(/.test(call)) return resnetBlock(c, call);
  if (/positionalEncoding_vec/.test(call))
    return { output: positionalEncoding(g, c.input("x"), c.input("b")) };
  if (/IMLP\(/.test(call)) return imlp(c, call);
  // Everything else is a Python expression over the inputs (torch functions, slicing, permute, ...).
  const outputs = Array.isArray(c.spec.outputs) ? c.spec.outputs.map(String) : ["output"];
  return evaluate(g, parseStatements(call), (name) => c.input(name), outputs);
}

/**
 * Runs one case (`spec` = case.json `cases.<name>`) on the fixture's tensors: a row per output and
 * gradient with a reference, and a failing row for every reference tensor of the case that this
 * runner did not compute.
 */
export async function runGradientCase(
  name: string,
  spec: Record<string, unknown>,
  inputs: ReadonlyMap<string, HostTensor>,
  outputs: ReadonlyMap<string, HostTensor>,
  fixture = "gradients/ops",
): Promise<ConformanceRow[]> {
  const c = new CaseGraph(name, spec, inputs);
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
    const at = `${fixture}/${c.name}`;
    const row = (key: string, got: HostTensor | undefined): void => {
      const want = outputs.get(`${c.name}.${key}`);
      const bound = tol[key];
      if (!want && bound === undefined) return; // not part of the fixture
      if (!want) rows.push(failedRow(at, key, "no reference in the outputs file"));
      else if (typeof bound !== "number") rows.push(failedRow(at, key, "no max_abs_err bound in case.json"));
      else if (!got) rows.push(failedRow(at, key, "not computed"));
      else rows.push(compareTensors(at, key, got, want, bound));
    };
    for (const name of Object.keys(forward)) row(`out.${name}`, out[`out.${name}`]);
    wrtPlain.forEach(([name], i) => row(`grad.${name}`, out[`grad.${i}`]));
    c.params.forEach((p, i) => {
      const t = out[`grad.${wrtPlain.length + i}`];
      row(`grad.${p.name}`, t ? toCheckpointLayout(p, t) : undefined);
    });
    const listed = Array.isArray(c.spec.gradients) ? c.spec.gradients.map(String) : [];
    const stored = [...outputs.keys()]
      .filter((k) => k.startsWith(`${c.name}.`))
      .map((k) => k.slice(c.name.length + 1));
    for (const k of new Set([...listed, ...Object.keys(tol), ...stored])) {
      if (!rows.some((r) => r.tensor === k)) rows.push(failedRow(at, k, "not computed by this runner"));
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
      rows.push(...(await runGradientCase(name, spec, inputs, outputs, fixture)));
    } catch (error) {
      if (ctx.signal?.aborted) throw error;
      const message = error instanceof Error ? error.message : String(error);
      rows.push(failedRow(`${fixture}/${name}`, "-", `error: ${message}`));
    }
  }
  // reference tensors of no case (`<case>.<tensor>` names)
  const names = Object.keys(cases);
  for (const key of outputs.keys())
    if (!names.some((n) => key.startsWith(`${n}.`)))
      rows.push(failedRow(fixture, key, "not computed by this runner (no case of that name)"));
  if (rows.length === 0) throw new UnsupportedError(`${fixture}: a fixture without cases`);
  return rows;
}
