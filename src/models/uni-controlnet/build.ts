/**
 * Builds the three graphs of a Uni-ControlNet checkpoint (pure and synchronous):
 *
 * - `unet`: the SD UNet (../unet, the same builder as every UNet) with ControlNet-style residual
 *   inputs: LocalControlUNetModel adds the local residuals exactly where diffusers adds ControlNet's
 *   (`h_mid += res[-1]`; output block k concatenates `hs.pop() + res.pop()`).
 * - `local_adapter`: inputs `sample`, `timestep` float32 [batch], `encoder_hidden_states` (77 + K
 *   tokens), `local_conditions` [batch, 21, H, W] in [0, 1], `local_control_scales` float32 [R];
 *   outputs `down_block_res_samples.i`, `mid_block_res_sample` (scaled), optionally `intermediate.*`.
 * - `global_adapter`: input `global_emb` [batch, in_dim], output `global_tokens` [batch, K, in_dim].
 *
 * Every checkpoint key goes through ../../weights/key-maps/uni.ts; the weight check covers the whole
 * file at once: one MissingWeightsError lists every missing, unexpected and mis-shaped key of all
 * three graphs under the checkpoint's own names.
 */
import { GraphError, MissingWeightsError } from "../../errors.js";
import type { GraphBuilder, Value } from "../../graph/builder.js";
import { type WeightStore, randomWeights } from "../../nn/weight-store.js";
import { type WeightReport, WeightScope } from "../../nn/weights.js";
import type { DType } from "../../tensor.js";
import {
  type UniGraphPart,
  isOutsideUniGraphs,
  mapUniKey,
  originalUniKey,
  uniPartOf,
} from "../../weights/key-maps/uni.js";
import type { ModelGraph } from "../model-graph.js";
import { newGraph } from "../model-runner.js";
import { type CrossFrameSetting, buildUNet2DConditionModel, crossFrameTransform } from "../unet/build.js";
import type { UNet2DConditionModel } from "../unet/unet-2d-condition.js";
import { UNI_V15_CONFIG, type UniControlNetConfig, uniLdmLayout, uniUNetConfig } from "./config.js";
import { GlobalAdapter } from "./global-adapter.js";
import { LocalAdapter } from "./local-adapter.js";

export const LOCAL_ADAPTER_INPUT = {
  sample: "sample",
  timestep: "timestep",
  encoderHiddenStates: "encoder_hidden_states",
  localConditions: "local_conditions",
  scales: "local_control_scales",
} as const;
export const GLOBAL_ADAPTER_INPUT = "global_emb";
export const GLOBAL_ADAPTER_OUTPUT = "global_tokens";
export const LOCAL_MID_RESIDUAL = "mid_block_res_sample";
export const localDownResidualName = (i: number): string => `down_block_res_samples.${i}`;

export interface UniBuildOptions {
  /** (optional, default false) local adapter and UNet also output `intermediate.*`. */
  readonly intermediates?: boolean;
  /** (optional, default "float32") graph dtype. */
  readonly dtype?: DType;
  /** (optional) names the config in errors. */
  readonly configFile?: string;
  /** (optional) cross-frame attention in every self-attention of the UNet and the local adapter. */
  readonly crossFrame?: CrossFrameSetting;
}

export interface UniGraph<M> {
  readonly graph: GraphBuilder;
  readonly built: ModelGraph<M>;
}

export interface UniGraphs {
  readonly unet: UniGraph<UNet2DConditionModel>;
  readonly localAdapter: UniGraph<LocalAdapter>;
  readonly globalAdapter: UniGraph<GlobalAdapter>;
}

/** A scope over `store` that sees the keys of `part` under model names. */
function partScope(
  g: GraphBuilder,
  store: WeightStore,
  part: UniGraphPart,
  config: UniControlNetConfig,
  dtype?: DType,
): WeightScope {
  const layout = uniLdmLayout(config);
  return WeightScope.bind(g, store, {
    keyMap: (k) => mapUniKey(k, part, layout),
    ...(dtype ? { dtype } : {}),
  });
}

export function buildLocalAdapterGraph(
  root: WeightScope,
  config: UniControlNetConfig,
  options: UniBuildOptions = {},
): ModelGraph<LocalAdapter> {
  const g = root.graph;
  const dtype = root.dtype;
  const scope = options.crossFrame
    ? root.withOptions({ keyValueTransform: crossFrameTransform(options.crossFrame) })
    : root;
  const model = new LocalAdapter(scope.at("local_adapter"), config, options.configFile);
  const sample = g.input(LOCAL_ADAPTER_INPUT.sample, dtype, ["batch", config.in_channels, "height", "width"]);
  const timestep = g.input(LOCAL_ADAPTER_INPUT.timestep, "float32", ["batch"]);
  const context = g.input(LOCAL_ADAPTER_INPUT.encoderHiddenStates, dtype, [
    "batch",
    "sequence",
    config.context_dim,
  ]);
  const localConditions = g.input(LOCAL_ADAPTER_INPUT.localConditions, dtype, [
    "batch",
    config.local_channels,
    "cond_height",
    "cond_width",
  ]);
  const scales = g.input(LOCAL_ADAPTER_INPUT.scales, "float32", [model.numResiduals]);
  const taps: [string, Value][] = [];
  const res = model.forward(
    { sample, timestep, context, localConditions, scales },
    options.intermediates === true ? (name, v) => taps.push([name, v]) : undefined,
  );
  const outputs = res.downBlockResSamples.map((v, i) => g.output(v, localDownResidualName(i)).name);
  outputs.push(g.output(res.midBlockResSample, LOCAL_MID_RESIDUAL).name);
  for (const [name, v] of taps) outputs.push(g.output(v, `intermediate.${name}`).name);
  return { model, inputs: g.inputs.map((v) => v.name), outputs, weights: root.report() };
}

export function buildGlobalAdapterGraph(
  root: WeightScope,
  config: UniControlNetConfig,
): ModelGraph<GlobalAdapter> {
  const g = root.graph;
  const model = new GlobalAdapter(root.at("global_adapter"), config.global_adapter);
  const emb = g.input(GLOBAL_ADAPTER_INPUT, root.dtype, ["batch", config.global_adapter.in_dim]);
  const outputs = [g.output(model.forward(emb), GLOBAL_ADAPTER_OUTPUT).name];
  return { model, inputs: g.inputs.map((v) => v.name), outputs, weights: root.report() };
}

/**
 * The three graphs of a Uni-ControlNet over `store` (a uni.ckpt's keys, or a synthesizing store such as
 * `randomWeights()` for a benchmark). Throws one MissingWeightsError for the whole file.
 */
export function buildUniControlNetGraphs(
  store: WeightStore,
  config: UniControlNetConfig,
  options: UniBuildOptions = {},
): UniGraphs {
  const file = options.configFile ?? "Uni-ControlNet config";
  const unetGraph = newGraph("unet");
  const unetScope = partScope(unetGraph, store, "unet", config, options.dtype);
  let unetBuilt: ModelGraph<UNet2DConditionModel> | undefined;
  try {
    unetBuilt = buildUNet2DConditionModel(unetScope, uniUNetConfig(config, file), {
      residuals: true,
      intermediates: options.intermediates ?? false,
      configFile: file,
      ...(options.crossFrame ? { crossFrame: options.crossFrame } : {}),
    });
  } catch (error) {
    if (!(error instanceof MissingWeightsError)) throw error;
  }
  const localGraph = newGraph("uni-local-adapter");
  const localScope = partScope(localGraph, store, "local_adapter", config, options.dtype);
  const localBuilt = buildLocalAdapterGraph(localScope, config, options);
  const globalGraph = newGraph("uni-global-adapter");
  const globalScope = partScope(globalGraph, store, "global_adapter", config, options.dtype);
  const globalBuilt = buildGlobalAdapterGraph(globalScope, config);
  checkUniWeights(store, config, [
    ["unet", unetScope.report()],
    ["local_adapter", localScope.report()],
    ["global_adapter", globalScope.report()],
  ]);
  if (unetBuilt === undefined)
    throw new GraphError("UniControlNet", "internal: the UNet failed its weight check alone");
  return {
    unet: { graph: unetGraph, built: unetBuilt },
    localAdapter: { graph: localGraph, built: localBuilt },
    globalAdapter: { graph: globalGraph, built: globalBuilt },
  };
}

/**
 * Benchmark-ready: the three graphs of a full-size Uni-ControlNet (default uni_v15: SD-1.5 UNet, 13
 * residuals, 4 global tokens) with deterministic random weights. One step at 512² with CFG batch 2 =
 * global adapter on [2, 768] (once per run), local adapter on sample [2, 4, 64, 64], timestep [2],
 * encoder_hidden_states [2, 81, 768], local_conditions [2, 21, 512, 512], local_control_scales [13],
 * then the UNet with the 13 residuals it outputs.
 */
export function buildRandomUniControlNet(
  config: UniControlNetConfig = UNI_V15_CONFIG,
  options: UniBuildOptions & { readonly seed?: number } = {},
): UniGraphs {
  return buildUniControlNetGraphs(randomWeights({ seed: options.seed ?? 0 }), config, options);
}

/** One MissingWeightsError for all three graphs, keys named as in the checkpoint. */
function checkUniWeights(
  store: WeightStore,
  config: UniControlNetConfig,
  reports: readonly (readonly [UniGraphPart, WeightReport])[],
): void {
  const layout = uniLdmLayout(config);
  const missing: string[] = [];
  const unexpected: string[] = [];
  const misshaped: { key: string; expected: readonly number[]; actual: readonly number[] }[] = [];
  const wrongDType: string[] = [];
  for (const [part, r] of reports) {
    const name = (k: string): string => originalUniKey(k, part, layout);
    missing.push(...r.missing.map(name));
    unexpected.push(...r.unexpected.map(name));
    misshaped.push(...r.misshaped.map((m) => ({ ...m, key: name(m.key) })));
    wrongDType.push(...r.wrongDType);
  }
  if (!store.synthesize) {
    for (const key of store.keys())
      if (uniPartOf(key) === undefined && !isOutsideUniGraphs(key)) unexpected.push(key);
  }
  if (missing.length + unexpected.length + misshaped.length + wrongDType.length === 0) return;
  throw new MissingWeightsError(store.name, missing, unexpected, misshaped, {
    hint:
      (wrongDType.length > 0 ? `unusable dtypes: ${wrongDType.join(", ")}; ` : "") +
      "the file does not match this Uni-ControlNet configuration (uni_v15: SD-1.5 UNet + local and global adapters); " +
      "a checkpoint trained with another configuration needs that configuration",
  });
}
