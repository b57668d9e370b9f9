/**
 * Where an inflated UNet gets its config and weights, as Tune-A-Video loads them:
 *
 * - a tuned checkpoint (`train_tuneavideo.py` output: a pipeline folder whose `unet/` holds a
 *   UNet3DConditionModel config.json and `diffusion_pytorch_model.bin` or `.safetensors` with the 2D
 *   keys plus every `*_temp.*` key): loaded as is; every missing, unexpected or mis-shaped key is
 *   reported in one MissingWeightsError when the graph is bound;
 * - a Stable Diffusion UNet (`UNet3DConditionModel.from_pretrained_2d`): the 2D weights plus new
 *   temporal layers initialised as the release does (torch nn.Linear/LayerNorm defaults, then
 *   `attn_temp.to_out.0.weight` zeroed), drawn from a seeded torch generator.
 *
 * PyTorch `.bin` files are read by the allow-listed pickle reader (../../weights/pickle), which never
 * executes anything.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { FileNotFoundError } from "../../errors.js";
import { readJsonFile } from "../../config/parse.js";
import { GraphBuilder } from "../../graph/builder.js";
import { type WeightStore, mapStore, zeroWeights } from "../../nn/weight-store.js";
import { WeightScope } from "../../nn/weights.js";
import { TorchGenerator } from "../../random/torch-generator.js";
import { type HostTensor, type Shape, numel, tensor } from "../../tensor.js";
import { readTorchStateDict } from "../../weights/pickle/index.js";
import { openWeightsFile } from "../component-source.js";
import type { UNet2DConditionModelConfig } from "../unet/config.js";
import { type UNet3DConfig, parseUNet3DConditionModelConfig } from "./config.js";
import { UNet3DConditionModel } from "./model.js";

/** True for the keys Tune-A-Video adds to the 2D UNet (attn_temp.*, norm_temp.*). */
export const isTemporalKey = (key: string): boolean => /\.(attn_temp|norm_temp)\./.test(key);

export interface ResolvedUNet3D extends UNet3DConfig {
  readonly store: WeightStore;
  /** Identity of the weights for the model cache (null: none). */
  readonly weightsId: string | null;
  /** The config.json path (names it in errors). */
  readonly configName: string;
  /** The folder holding config.json and the weights. */
  readonly dir: string;
}

export interface UNet3DSourceOptions {
  /** (optional, default 0) seed of the new temporal layers of a 2D UNet. */
  readonly temporalSeed?: number;
}

const exists = async (path: string): Promise<boolean> =>
  (await stat(path).catch(() => undefined)) !== undefined;

/** `<dir>/unet` when `dir` is a pipeline folder, else `dir` (a unet folder). */
export async function unetFolder(dir: string): Promise<string> {
  return (await exists(join(dir, "unet", "config.json"))) ? join(dir, "unet") : dir;
}

/** Opens a unet folder's weights: diffusion_pytorch_model.safetensors, else the release's .bin. */
export async function openUNetWeights(dir: string): Promise<{ store: WeightStore; weightsId: string }> {
  const safetensors = join(dir, "diffusion_pytorch_model.safetensors");
  if (await exists(safetensors)) return openWeightsFile(safetensors);
  const bin = join(dir, "diffusion_pytorch_model.bin");
  const info = await stat(bin).catch(() => undefined);
  if (!info) {
    throw new FileNotFoundError(safetensors, "UNet weights", {
      hint: "expected diffusion_pytorch_model.safetensors or diffusion_pytorch_model.bin (a Tune-A-Video or diffusers unet/ folder)",
    });
  }
  const tensors = await readTorchStateDict(bin);
  return { store: mapStore(tensors, bin), weightsId: `${bin}:${info.size}:${info.mtimeMs}` };
}

/** Every temporal key of the inflated `config` with its shape (from a graph bound to zero weights). */
export function temporalParameterShapes(config: UNet2DConditionModelConfig): Map<string, Shape> {
  const g = new GraphBuilder({ name: "unet3d_keys" });
  const model = new UNet3DConditionModel(WeightScope.bind(g, zeroWeights()), config, 1);
  void model;
  const out = new Map<string, Shape>();
  for (const init of g.initializers) if (isTemporalKey(init.name)) out.set(init.name, [...init.shape]);
  return out;
}

/**
 * The release's initial temporal layers: nn.Linear default init (weights and biases uniform in
 * +-1/sqrt(fan_in)), `attn_temp.to_out.0.weight` zero, LayerNorm weight 1 and bias 0.
 */
export function initialTemporalWeights(
  config: UNet2DConditionModelConfig,
  seed = 0,
): Map<string, HostTensor> {
  const gen = new TorchGenerator(seed);
  const out = new Map<string, HostTensor>();
  const shapes = temporalParameterShapes(config);
  const fanIn = (key: string): number => {
    const weight = shapes.get(key.replace(/\.bias$/, ".weight"));
    return weight?.[1] ?? 1;
  };
  for (const [key, shape] of [...shapes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const n = numel(shape);
    let data: Float32Array;
    if (key.includes(".norm_temp.")) data = new Float32Array(n).fill(key.endsWith(".weight") ? 1 : 0);
    else if (key.endsWith("attn_temp.to_out.0.weight")) data = new Float32Array(n);
    else {
      const bound = 1 / Math.sqrt(fanIn(key));
      const u = gen.rand([n]).data;
      data = Float32Array.from(u, (v) => (2 * v - 1) * bound);
    }
    out.set(key, tensor("float32", shape, data));
  }
  return out;
}

/** A store holding the keys of `base` and of `extra` (extra wins on a clash). */
export function unionStore(base: WeightStore, extra: WeightStore, name = base.name): WeightStore {
  const extraKeys = new Set(extra.keys());
  return {
    name,
    keys: () => new Set([...base.keys(), ...extraKeys]),
    info: (key) => (extraKeys.has(key) ? extra.info(key) : base.info(key)),
    source: (key) => (extraKeys.has(key) ? extra.source(key) : base.source(key)),
  };
}

/**
 * Resolves a Tune-A-Video checkpoint folder (or its unet/), or a Stable Diffusion model folder (or
 * its unet/): config and weights, with new temporal layers for a 2D UNet.
 */
export async function resolveUNet3D(dir: string, options: UNet3DSourceOptions = {}): Promise<ResolvedUNet3D> {
  const folder = await unetFolder(dir);
  const configName = join(folder, "config.json");
  const parsed = parseUNet3DConditionModelConfig(configName, await readJsonFile(configName, "UNet config"));
  const { store, weightsId } = await openUNetWeights(folder);
  if (parsed.inflated) return { ...parsed, store, weightsId, configName, dir: folder };
  const seed = options.temporalSeed ?? 0;
  const temporal = mapStore(initialTemporalWeights(parsed.config, seed), "new temporal layers");
  return {
    ...parsed,
    store: unionStore(store, temporal),
    weightsId: `${weightsId}|temporal-init:${seed}`,
    configName,
    dir: folder,
  };
}
