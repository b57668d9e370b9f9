/**
 * Conformance kind `nla`: Neural Layered Atlases (ykasten/layered-neural-atlases, run unmodified by
 * the fixture's generator) against src/atlas: the networks (`fwd.*`), the flow consistency residual
 * (`data.*`), one training iteration and the next (`it0.*`, `it1.*`: every loss term, the total,
 * the gradients of every parameter, the parameters after Adam), the loss schedule (`sched.*`), one
 * mapping pre-training iteration (`pretrain.*`), and the rendering / edit propagation of
 * evaluate.py / only_edit.py (`render.*`, `edit.*`). Network specs, loss weights and sizes come
 * from case.json (`networks`, `config`, `derived`); tolerances from `tolerance.suggested_max_abs_err`.
 */
import { ConfigError, UnsupportedError } from "../../errors.js";
import { GraphBuilder } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import type { Value } from "../../graph/builder.js";
import { type HostTensor, tensor, toFloat32 } from "../../tensor.js";
import { openGraphSession } from "../../train/graph-session.js";
import { Adam, type AdamOptions } from "../../train/optim/index.js";
import { lossConfigFromJson } from "../../atlas/config.js";
import { type AtlasData, batchFeeds, flowResidual, prepareAtlasData } from "../../atlas/data.js";
import {
  COEFFICIENT_NAMES,
  LOSS_NAMES,
  mapBlocks,
  buildStepGraph,
  coefficientsAt,
} from "../../atlas/losses.js";
import {
  type AtlasNets,
  type ImlpSpec,
  imlp,
  mapAlpha,
  mapColour,
  modelParameterShapes,
  parameterShapes,
  peFrequencies,
  positionalEncoding,
} from "../../atlas/networks.js";
import { buildPretrainGraph, pretrainXyt } from "../../atlas/pretrain.js";
import {
  FOREGROUND_CROP,
  applyEdit,
  atlasTexture,
  backgroundCrop,
  evaluatePixels,
  openRenderer,
  reconstructFromAtlases,
  rigidityMaps,
} from "../../atlas/render.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { caseFile, fixtureName, isRecord, readTensorFile } from "./model-fixture.js";

type Tensors = ReadonlyMap<string, HostTensor>;

function must(map: Tensors, name: string, file: string): HostTensor {
  const t = map.get(name);
  if (!t) throw new ConfigError(file, name, "a tensor in the fixture files", undefined);
  return t;
}

function specOf(file: string, json: unknown, name: string): ImlpSpec {
  if (!isRecord(json)) throw new ConfigError(file, `networks.${name}`, "an IMLP spec", json);
  const n = (k: string): number => {
    const v = json[k];
    if (typeof v !== "number") throw new ConfigError(file, `networks.${name}.${k}`, "a number", v);
    return v;
  };
  const skips = json.skip_layers;
  if (json.apply_softmax === true)
    throw new UnsupportedError(`networks.${name}.apply_softmax (IMLP with a softmax output)`);
  return {
    inputDim: n("input_dim"),
    outputDim: n("output_dim"),
    hiddenDim: n("hidden_dim"),
    numLayers: n("num_layers"),
    skipLayers: Array.isArray(skips) ? skips.map(Number) : [],
    positional: json.use_positional === true,
    positionalDim: n("positional_dim"),
    tanh: json.use_tanh !== false,
  };
}

/** The Adam settings of `derived.adam` (train.py: Adam(lr), torch's defaults otherwise). */
function adamOf(file: string, derived: Record<string, unknown>, lr: number): AdamOptions {
  const a = isRecord(derived.adam) ? derived.adam : {};
  const betas = Array.isArray(a.betas) ? a.betas.map(Number) : [0.9, 0.999];
  if (betas.length !== 2 || betas.some((b) => !Number.isFinite(b)))
    throw new ConfigError(file, "derived.adam.betas", "two numbers", a.betas);
  const number = (key: string, fallback: number): number => {
    const v = a[key] ?? fallback;
    if (typeof v !== "number") throw new ConfigError(file, `derived.adam.${key}`, "a number", v);
    return v;
  };
  for (const flag of ["amsgrad", "maximize"])
    if (a[flag] === true) throw new UnsupportedError(`derived.adam.${flag} in an nla fixture`);
  return {
    lr,
    betas: [betas[0] ?? 0.9, betas[1] ?? 0.999],
    eps: number("eps", 1e-8),
    weightDecay: number("weight_decay", 0),
  };
}

const f32t = (shape: number[], data: ArrayLike<number>): HostTensor<"float32"> =>
  tensor("float32", shape, Float32Array.from(data));

export async function runNlaFixture(ctx: FixtureContext): Promise<ConformanceRow[]> {
  const file = caseFile(ctx);
  const fixture = fixtureName(ctx, "nla");
  const tolerance = isRecord(ctx.caseJson.tolerance) ? ctx.caseJson.tolerance : {};
  const suggested = isRecord(tolerance.suggested_max_abs_err) ? tolerance.suggested_max_abs_err : {};
  const config = isRecord(ctx.caseJson.config) ? ctx.caseJson.config : {};
  const networks = isRecord(ctx.caseJson.networks) ? ctx.caseJson.networks : {};
  const derived = isRecord(ctx.caseJson.derived) ? ctx.caseJson.derived : {};
  const weights = await readTensorFile(ctx, "weights_file", "weights.safetensors");
  const inputs = await readTensorFile(ctx, "inputs_file", "inputs.safetensors");
  const outputs = await readTensorFile(ctx, "outputs_file", "outputs.safetensors");
  const rows: ConformanceRow[] = [];
  const tolOf = (name: string): number => {
    const direct = suggested[name];
    if (typeof direct === "number") return direct;
    const group = Object.entries(suggested).find(
      ([k]) => k.endsWith("*") && name.startsWith(k.slice(0, -1)),
    )?.[1];
    return typeof group === "number" ? group : 0;
  };
  const seen = new Set<string>();
  const row = (name: string, got: HostTensor | undefined, tol = tolOf(name)): void => {
    const want = outputs.get(name);
    if (!want) return;
    seen.add(name);
    rows.push(got ? compareTensors(fixture, name, got, want, tol) : failedRow(fixture, name, "not computed"));
  };

  const nets: AtlasNets = {
    mapping1: specOf(file, networks.mapping1, "mapping1"),
    mapping2: specOf(file, networks.mapping2, "mapping2"),
    alpha: specOf(file, networks.alpha, "alpha"),
    atlas: specOf(file, networks.atlas, "atlas"),
  };
  const lossConfig = lossConfigFromJson(file, config);
  const numOf = (k: string): number => {
    const v = derived[k];
    if (typeof v !== "number") throw new ConfigError(file, `derived.${k}`, "a number", v);
    return v;
  };
  const [W, H, N] = [numOf("W"), numOf("H"), numOf("N")];
  // The batch the reference drew (derived.B says the same unless the fixture was cut by hand)
  const B = inputs.get("batch_inds.iter0")?.data.length ?? numOf("B");
  const lr = typeof derived.lr === "number" ? derived.lr : 1e-4;
  const adam = adamOf(file, derived, lr);
  const param = (name: string): HostTensor<"float32"> => toFloat32(must(weights, name, file));

  // 1. networks
  await forwardRows(ctx, nets, networks, weights, inputs, row);

  // 2. data: consistency residuals and masks
  const frames = must(inputs, "frames", file);
  const masks = must(inputs, "mask", file);
  const flows = (name: string): { width: number; height: number; data: Float32Array }[] => {
    const t = toFloat32(must(inputs, name, file));
    return Array.from({ length: N - 1 }, (_, i) => ({
      width: W,
      height: H,
      data: t.data.slice(i * W * H * 2, (i + 1) * W * H * 2),
    }));
  };
  const data = await prepareAtlasData({
    width: W,
    height: H,
    count: N,
    frames: frames.data as Uint8Array,
    masks: masks.data as Uint8Array,
    flowFw: flows("flow_fw"),
    flowBw: flows("flow_bw"),
  });
  const resFw: number[] = [];
  const resBw: number[] = [];
  for (let i = 0; i + 1 < N; i++) {
    resFw.push(...(await flowResidual(data.flowFw[i] as never, data.flowBw[i] as never)));
    resBw.push(...(await flowResidual(data.flowBw[i] as never, data.flowFw[i] as never)));
  }
  row("data.flow_residual_fw", f32t([N - 1, H, W], resFw));
  row("data.flow_residual_bw", f32t([N - 1, H, W], resBw));
  // masks: the fixture's [1, H, W, N] layout
  const maskLayout = (m: Uint8Array): HostTensor => {
    const out = new Uint8Array(H * W * N);
    for (let f = 0; f < N; f++) for (let k = 0; k < H * W; k++) out[k * N + f] = m[f * H * W + k] ?? 0;
    return tensor("uint8", [1, H, W, N], out);
  };
  row("data.flow_mask_fw", maskLayout(data.maskFw), 0);
  row("data.flow_mask_bw", maskLayout(data.maskBw), 0);

  // 3. training iterations
  const names = modelParameterShapes(nets).map(([n]) => n);
  const g = new GraphBuilder({ name: "nla_step" });
  buildStepGraph(g, nets, { batch: B, largerDim: Math.max(W, H) }, lossConfig, { diagnostics: true });
  const session = await openGraphSession(g);
  try {
    const initial = new Map(names.map((n) => [n, Float32Array.from(param(n).data)]));
    const batch = (key: string): number[] =>
      Array.from(must(inputs, key, file).data as ArrayLike<number | bigint>, Number);
    const runStep = async (
      params: ReadonlyMap<string, Float32Array>,
      indices: number[],
      iteration: number,
    ): Promise<Record<string, HostTensor>> => {
      const feeds: Record<string, HostTensor> = batchFeeds(
        data,
        indices,
        lossConfig,
        coefficientsAt(lossConfig, iteration),
      );
      for (const [n, shape] of modelParameterShapes(nets))
        feeds[n] = tensor("float32", shape, params.get(n) as Float32Array);
      const out = await session.run(feeds);
      // use_gradient_loss false: train.py's gradient_loss is 0.0 (its weight is 0 in lossConfig)
      if (config.use_gradient_loss === false) out["loss.gradient"] = f32t([], [0]);
      return out;
    };
    const gradMap = (out: Record<string, HostTensor>): Map<string, Float32Array> =>
      new Map(names.map((n) => [n, toFloat32(out[`grad.${n}`] as HostTensor).data]));
    const recorded = (prefix: string): Map<string, Float32Array> =>
      new Map(names.map((n) => [n, toFloat32(must(outputs, `${prefix}.${n}`, file)).data]));
    const shapeOf = new Map(modelParameterShapes(nets));

    // iteration 0
    const iter0 = batch("batch_inds.iter0");
    const out0 = await runStep(initial, iter0, 0);
    for (const l of LOSS_NAMES) row(`it0.loss.${l}`, out0[`loss.${l}`]);
    for (const n of names) row(`it0.grad.${n}`, out0[`grad.${n}`]);
    for (const k of ["uv1", "uv2", "alpha", "rgb1", "rgb2", "rgb"]) row(`it0.${k}`, out0[k]);
    for (const l of ["rigidity1", "rigidity2", "global_rigidity1", "global_rigidity2"])
      row(`it0.per_sample.${l}`, out0[`per_sample.${l}`]);
    const feeds0 = batchFeeds(data, iter0, lossConfig, coefficientsAt(lossConfig, 0));
    const pick = (t: HostTensor, rowsWanted: number[], block: number, width: number): HostTensor => {
      const src = toFloat32(t).data;
      const outData = new Float32Array(rowsWanted.length * width);
      rowsWanted.forEach((r, i) =>
        outData.set(src.subarray((block * B + r) * width, (block * B + r + 1) * width), i * width),
      );
      return tensor("float32", [rowsWanted.length, width], outData);
    };
    row("it0.xyt", pick(feeds0.xyt_map as HostTensor, [...Array(B).keys()], 0, 3));
    row("it0.rgb_gt", feeds0.rgb_gt);
    row("it0.alpha_mask", feeds0.alpha_mask);
    row("it0.rgb_dx_gt", feeds0.rgb_dx_gt);
    row("it0.rgb_dy_gt", feeds0.rgb_dy_gt);
    for (const [dir, w] of [
      ["fw", "flow_w_fw"],
      ["bw", "flow_w_bw"],
    ] as const) {
      const wv = toFloat32(feeds0[w] as HostTensor).data;
      const relevant = [...Array(B).keys()].filter((i) => wv[i] === 1);
      row(
        `it0.flow_${dir}.relevant`,
        tensor("int64", [relevant.length], BigInt64Array.from(relevant.map(BigInt))),
        0,
      );
      row(
        `it0.flow_${dir}.xyt_match`,
        pick(
          feeds0.xyt_map as HostTensor,
          relevant,
          mapBlocks(lossConfig).indexOf(dir === "fw" ? "flow_fw" : "flow_bw"),
          3,
        ),
      );
    }

    // the optimiser alone on the recorded gradients, then end to end with ours
    const replay = new Adam(adam);
    const replayed = new Map([...initial].map(([n, v]) => [n, v.slice()]));
    replay.step(replayed, recorded("it0.grad"));
    let worstReplay = 0;
    for (const n of names) {
      const want = toFloat32(must(outputs, `it0.params_after.${n}`, file)).data;
      const got = replayed.get(n) as Float32Array;
      for (let i = 0; i < want.length; i++)
        worstReplay = Math.max(worstReplay, Math.abs((got[i] ?? 0) - (want[i] ?? 0)));
    }
    const replayTol =
      typeof tolerance.params_after_from_recorded_grads_max_abs_err === "number"
        ? tolerance.params_after_from_recorded_grads_max_abs_err
        : 1e-6;
    rows.push({
      fixture,
      tensor: "it0.params_after.* (Adam on recorded it0.grad)",
      maxAbsError: worstReplay,
      tolerance: replayTol,
      pass: worstReplay <= replayTol,
    });
    const ours = new Adam(adam);
    const after0 = new Map([...initial].map(([n, v]) => [n, v.slice()]));
    ours.step(after0, gradMap(out0));
    endToEndRows(fixture, "it0", names, after0, outputs, tolerance, shapeOf, row, rows);

    // iteration 1 from the reference's state after step 0
    const start1 = recorded("it0.params_after");
    const out1 = await runStep(start1, batch("batch_inds.iter1"), 1);
    for (const l of LOSS_NAMES) row(`it1.loss.${l}`, out1[`loss.${l}`]);
    for (const n of names) row(`it1.grad.${n}`, out1[`grad.${n}`]);
    const after1 = new Map([...start1].map(([n, v]) => [n, v.slice()]));
    replay.step(after1, gradMap(out1));
    endToEndRows(fixture, "it1", names, after1, outputs, tolerance, shapeOf, row, rows);

    // schedule: the iterations the outputs name (else the two switches and the iterations after them)
    const named = [...outputs.keys()].flatMap((k) => {
      const m = /^sched\.iter(\d+)\./.exec(k);
      return m ? [Number(m[1])] : [];
    });
    const switches = [
      lossConfig.stopGlobalRigidity,
      lossConfig.stopGlobalRigidity + 1,
      lossConfig.stopBootstrapping,
      lossConfig.stopBootstrapping + 1,
    ].filter((i) => i >= 0);
    for (const it of [...new Set(named.length > 0 ? named : switches)].sort((a, b) => a - b)) {
      const out = await runStep(initial, iter0, it);
      row(`sched.iter${it}.loss.total`, out["loss.total"]);
      const c = coefficientsAt(lossConfig, it);
      row(
        `sched.iter${it}.alpha_bootstrapping_factor`,
        f32t([], [c[COEFFICIENT_NAMES.indexOf("alpha_bootstrapping")] ?? NaN]),
      );
      row(
        `sched.iter${it}.global_rigidity_coeff_fg`,
        f32t([], [c[COEFFICIENT_NAMES.indexOf("global_rigidity_fg")] ?? NaN]),
      );
    }
  } finally {
    await session.release();
  }

  // 5. rendering and edit propagation
  await renderRowsOf(
    nets,
    lossConfig.uvMappingScale,
    lossConfig.derivativeAmount,
    data,
    weights,
    inputs,
    file,
    derived,
    row,
  );

  // 4. pre-training of mapping1 (one iteration = one Adam step per frame)
  await pretrainRows(
    nets.mapping1,
    N,
    Math.max(W, H),
    lossConfig.uvMappingScale,
    adam,
    weights,
    inputs,
    file,
    row,
  );

  // Every reference tensor must have been compared: a name this runner does not know fails.
  for (const name of outputs.keys())
    if (!seen.has(name))
      rows.push(failedRow(fixture, name, "not computed by this runner (an output it does not know)"));
  return rows;
}

function endToEndRows(
  fixture: string,
  prefix: string,
  names: readonly string[],
  after: ReadonlyMap<string, Float32Array>,
  outputs: Tensors,
  tolerance: Record<string, unknown>,
  shapeOf: ReadonlyMap<string, number[]>,
  row: (name: string, got: HostTensor | undefined, tol?: number) => void,
  rows: ConformanceRow[],
): void {
  const spec = isRecord(tolerance.params_after_end_to_end) ? tolerance.params_after_end_to_end : {};
  const maxErr = typeof spec.max_abs_err === "number" ? spec.max_abs_err : 2.5e-4;
  const fraction =
    typeof spec["within_1e-5_fraction_at_least"] === "number" ? spec["within_1e-5_fraction_at_least"] : 0.995;
  let within = 0;
  let total = 0;
  for (const n of names) {
    const got = after.get(n) as Float32Array;
    row(`${prefix}.params_after.${n}`, tensor("float32", shapeOf.get(n) ?? [got.length], got), maxErr);
    const want = outputs.get(`${prefix}.params_after.${n}`);
    if (!want) continue;
    const w = toFloat32(want).data;
    for (let i = 0; i < w.length; i++) {
      total++;
      if (Math.abs((got[i] ?? 0) - (w[i] ?? 0)) <= 1e-5) within++;
    }
  }
  const share = total === 0 ? 0 : within / total;
  rows.push({
    fixture,
    tensor: `${prefix}.params_after.* share within 1e-5`,
    maxAbsError: 1 - share,
    tolerance: 1 - fraction,
    pass: share >= fraction,
    note: `${within}/${total} elements`,
  });
}

async function forwardRows(
  ctx: FixtureContext,
  nets: AtlasNets,
  networks: Record<string, unknown>,
  weights: Tensors,
  inputs: Tensors,
  row: (name: string, got: HostTensor | undefined, tol?: number) => void,
): Promise<void> {
  const file = caseFile(ctx);
  const xyt = toFloat32(must(inputs, "xyt_samples", file));
  const uvs = toFloat32(must(inputs, "uv_samples", file));
  const k = xyt.shape[0] ?? 0;
  const g = new GraphBuilder({ name: "nla_forward" });
  const x = g.input("xyt", "float32", [k, 3]);
  const u = g.input("uv", "float32", [k, 2]);
  const specs: Record<string, ImlpSpec> = { ...nets };
  if (networks.mapping1_pe !== undefined)
    specs.mapping1_pe = specOf(file, networks.mapping1_pe, "mapping1_pe");
  const params = new Map<string, Value>();
  const feeds: Record<string, HostTensor> = { xyt, uv: uvs };
  for (const [prefix, spec] of Object.entries(specs))
    for (const [n, shape] of parameterShapes(prefix, spec)) {
      params.set(n, g.input(n, "float32", shape));
      feeds[n] = toFloat32(must(weights, n, file));
    }
  const outs: [string, Value][] = [];
  for (const [prefix, spec] of Object.entries(specs)) {
    if (spec.positional) {
      const input = spec.inputDim === 2 ? u : x;
      outs.push([`fwd.pe.${prefix}`, positionalEncoding(g, input, spec.positionalDim)]);
      row(
        `fwd.pe_freqs.${prefix}`,
        tensor("float32", [spec.positionalDim], peFrequencies(spec.positionalDim)),
        0,
      );
    }
  }
  const m1 = imlp(g, specs.mapping1 as ImlpSpec, "mapping1", params, x).output;
  const m2 = imlp(g, specs.mapping2 as ImlpSpec, "mapping2", params, x).output;
  outs.push(["fwd.mapping1.uv", m1], ["fwd.mapping2.uv", m2]);
  if (specs.mapping1_pe)
    outs.push(["fwd.mapping1_pe.uv", imlp(g, specs.mapping1_pe, "mapping1_pe", params, x).output]);
  const alphaRaw = imlp(g, nets.alpha, "alpha", params, x).output;
  const alpha = mapAlpha(g, alphaRaw);
  outs.push(["fwd.alpha.raw", alphaRaw], ["fwd.alpha.alpha", alpha]);
  const atlas = imlp(g, nets.atlas, "atlas", params, u);
  outs.push(["fwd.atlas.raw", atlas.output]);
  atlas.layers.forEach((l, i) => outs.push([`fwd.atlas.layer${i}`, l]));
  const rgbFg = mapColour(g, imlp(g, nets.atlas, "atlas", params, op.Add(g, op.Mul(g, m1, 0.5), 0.5)).output);
  const rgbBg = mapColour(g, imlp(g, nets.atlas, "atlas", params, op.Sub(g, op.Mul(g, m2, 0.5), 0.5)).output);
  outs.push(["fwd.rgb_fg", rgbFg], ["fwd.rgb_bg", rgbBg]);
  outs.push(["fwd.rgb", op.Add(g, op.Mul(g, rgbFg, alpha), op.Mul(g, rgbBg, op.Sub(g, 1, alpha)))]);
  for (const [name, v] of outs) g.output(v, name);
  const session = await openGraphSession(g);
  try {
    const result = await session.run(feeds);
    for (const [name] of outs) row(name, result[name]);
  } finally {
    await session.release();
  }
}

async function pretrainRows(
  spec: ImlpSpec,
  frames: number,
  largerDim: number,
  scale: number,
  adamOptions: AdamOptions,
  weights: Tensors,
  inputs: Tensors,
  file: string,
  row: (name: string, got: HostTensor | undefined, tol?: number) => void,
): Promise<void> {
  const is = must(inputs, "pretrain.i_s", file);
  const js = must(inputs, "pretrain.j_s", file);
  const samples = is.shape[1] ?? 0;
  const g = new GraphBuilder({ name: "nla_pretrain" });
  const names = buildPretrainGraph(g, spec, "mapping1", samples, scale);
  const session = await openGraphSession(g);
  const shapes = new Map(parameterShapes("mapping1", spec));
  try {
    const params = new Map(names.map((n) => [n, Float32Array.from(toFloat32(must(weights, n, file)).data)]));
    const adam = new Adam(adamOptions);
    const losses: number[] = [];
    for (let f = 0; f < frames; f++) {
      const rowsI = Array.from((is.data as Int32Array).subarray(f * samples, (f + 1) * samples));
      const colsJ = Array.from((js.data as Int32Array).subarray(f * samples, (f + 1) * samples));
      const feeds: Record<string, HostTensor> = { xyt: pretrainXyt(rowsI, colsJ, f, frames, largerDim) };
      for (const n of names) feeds[n] = tensor("float32", shapes.get(n) ?? [], params.get(n) as Float32Array);
      const out = await session.run(feeds);
      losses.push(toFloat32(out.loss as HostTensor).data[0] ?? NaN);
      adam.step(params, new Map(names.map((n) => [n, toFloat32(out[`grad.${n}`] as HostTensor).data])));
    }
    row("pretrain.loss", f32t([frames], losses));
    for (const n of names)
      row(
        `pretrain.params_after.${n}`,
        tensor("float32", shapes.get(n) ?? [], params.get(n) as Float32Array),
      );
  } finally {
    await session.release();
  }
}

async function renderRowsOf(
  nets: AtlasNets,
  scale: number,
  delta: number,
  data: AtlasData,
  weights: Tensors,
  inputs: Tensors,
  file: string,
  derived: Record<string, unknown>,
  row: (name: string, got: HostTensor | undefined, tol?: number) => void,
): Promise<void> {
  const params = new Map(
    modelParameterShapes(nets).map(([n]) => [n, Float32Array.from(toFloat32(must(weights, n, file)).data)]),
  );
  const R = typeof derived.atlas_image_resolution_R === "number" ? derived.atlas_image_resolution_R : 64;
  const { frames: N, height: H, width: W } = data;
  const renderer = await openRenderer(nets, params);
  try {
    const maps = await evaluatePixels(renderer, data);
    row("render.uv1", f32t([N, H, W, 2], maps.uv1));
    row("render.uv2", f32t([N, H, W, 2], maps.uv2));
    row("render.alpha", f32t([N, H, W], maps.alpha));
    row("render.recon", f32t([N, H, W, 3], maps.recon));
    const crop = backgroundCrop(maps);
    row("render.bg_crop", f32t([5], [crop.minx, crop.miny, crop.edge, crop.maxx, crop.maxy]));
    const fgTex = await atlasTexture(renderer, R, FOREGROUND_CROP);
    const bgTex = await atlasTexture(renderer, R, crop);
    row("render.atlas_fg", f32t([R, R, 3], fgTex));
    row("render.atlas_bg", f32t([R, R, 3], bgTex));
    const fgImg = { resolution: R, channels: 3, data: fgTex, crop: FOREGROUND_CROP };
    const bgImg = { resolution: R, channels: 3, data: bgTex, crop };
    const rec = reconstructFromAtlases(maps, fgImg, bgImg);
    row("render.recon_from_atlas", f32t([N, H, W, 3], rec.rgb));
    row("render.relevant_fg", tensor("uint8", [N, H, W], rec.relevantFg), 0);
    row("render.relevant_bg", tensor("uint8", [N, H, W], rec.relevantBg), 0);
    const edit = (name: string, c: typeof crop | typeof FOREGROUND_CROP) => {
      const t = must(inputs, name, file);
      const res = t.shape[0] ?? 0;
      return {
        resolution: res,
        channels: t.shape[2] ?? 4,
        data: Float64Array.from(t.data as Uint8Array, (v) => v / 255),
        crop: c,
      };
    };
    const edited = applyEdit(maps, data.rgb, edit("edit_fg", FOREGROUND_CROP), edit("edit_bg", crop));
    row("edit.video", f32t([N, H, W, 3], edited));
    const [r1, r2] = await rigidityMaps(renderer, maps, scale, delta);
    row("render.rigidity1", f32t([N, H, W], r1));
    row("render.rigidity2", f32t([N, H, W], r2));
  } finally {
    await renderer.release();
  }
}

export const nlaKind: FixtureKind = {
  kind: "nla",
  description:
    "Neural Layered Atlases: networks, one training step (losses, gradients, Adam), schedule, pre-training, atlas rendering and edit propagation",
  run: (ctx) => runNlaFixture(ctx),
};

export type { AtlasData };
