/**
 * Fresh UNet2DConditionModel weights for training a model from scratch (the demo recipe): the keys
 * and shapes the graph builder requests for `config`, initialised as PyTorch initialises the
 * diffusers modules (src/train/vae/init.ts initTorchDefault), and the config.json diffusers 0.26.3
 * writes for it.
 */
import { cp, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GraphBuilder } from "../graph/builder.js";
import { readAutoencoderKLConfig } from "../models/vae/config.js";
import { withAtomicDir } from "../util/atomic-write.js";
import { openSafetensors, serializeSafetensors } from "../weights/safetensors.js";
import { controlNetFromUNet } from "./loop/controlnet-init.js";
import { type UNet2DConditionModelConfig, parseUNet2DConditionModelConfig } from "../models/unet/config.js";
import { UNet2DConditionModel } from "../models/unet/unet-2d-condition.js";
import { WeightScope } from "../nn/weights.js";
import type { HostTensor, Shape } from "../tensor.js";
import { initTorchDefault, shapeRecorder } from "./vae/init.js";

/** Every parameter key of a UNet2DConditionModel of `config` and its checkpoint shape. */
export function unetParameterShapes(
  config: UNet2DConditionModelConfig,
  file = "config.json",
): Map<string, Shape> {
  const shapes = new Map<string, Shape>();
  const g = new GraphBuilder({ name: "unet_shapes" });
  const w = WeightScope.bind(g, shapeRecorder(shapes));
  const side = 2 ** config.block_out_channels.length;
  const cross = Array.isArray(config.cross_attention_dim)
    ? (config.cross_attention_dim[0] ?? 0)
    : config.cross_attention_dim;
  new UNet2DConditionModel(w, config, file).forward({
    sample: g.input("sample", "float32", [1, config.in_channels, side, side]),
    timestep: g.input("timestep", "float32", [1]),
    encoderHiddenStates: g.input("encoder_hidden_states", "float32", [1, 2, cross]),
  });
  // the graph binds the transformers' proj_in/proj_out as Linears; without use_linear_projection
  // diffusers stores them as 1x1 convolutions
  if (config.use_linear_projection !== true) {
    for (const [key, shape] of shapes) {
      if (/\.proj_(in|out)\.weight$/.test(key) && shape.length === 2) shapes.set(key, [...shape, 1, 1]);
    }
  }
  return shapes;
}

/** A fresh UNet: its parsed config (from a partial config.json object) and seeded weights. */
export function initUNet(
  json: Readonly<Record<string, unknown>>,
  seed: bigint,
  file = "unet/config.json",
): { config: UNet2DConditionModelConfig; weights: Map<string, HostTensor<"float32">> } {
  const { config } = parseUNet2DConditionModelConfig(file, { _class_name: "UNet2DConditionModel", ...json });
  return { config, weights: initTorchDefault(unetParameterShapes(config, file), seed) };
}

/** The config.json object of a UNet config (diffusers 0.26.3's `save_pretrained` fields). */
export function unetConfigJson(config: UNet2DConditionModelConfig): Record<string, unknown> {
  return { _class_name: "UNet2DConditionModel", _diffusers_version: "0.26.3", ...config };
}

/**
 * A copy of the pipeline folder `model` (a UNet with a ControlNet made from it, as the demo model)
 * with the same architecture at its initial weights: a fresh UNet (PyTorch's default init, `seed`)
 * and ControlNet.from_unet of it (zero convolutions), the other components as they are. The
 * baseline "random weights" of the demo model's report and tests.
 */
export async function writeInitialCopy(model: string, out: string, seed: bigint): Promise<void> {
  await withAtomicDir(
    out,
    async (temp) => {
      await cp(model, temp, { recursive: true });
      const configFile = join(model, "unet", "config.json");
      const json = JSON.parse(await readFile(configFile, "utf8")) as Record<string, unknown>;
      const { config, weights } = initUNet(json, seed, configFile);
      const unetFile = join(temp, "unet", WEIGHTS_FILE);
      await writeFile(unetFile, serializeSafetensors(weights, { format: "pt" }));
      const vae = await readAutoencoderKLConfig(join(model, "vae", "config.json"));
      const factor = 2 ** (vae.config.block_out_channels.length - 1);
      const net = controlNetFromUNet(config, await openSafetensors(unetFile), factor, seed);
      const tensors = new Map<string, HostTensor>();
      for (const key of net.weights.keys()) tensors.set(key, await net.weights.read(key));
      await mkdir(join(temp, "controlnet"), { recursive: true });
      await writeFile(
        join(temp, "controlnet", WEIGHTS_FILE),
        serializeSafetensors(tensors, { format: "pt" }),
      );
      await writeFile(
        join(temp, "controlnet", "config.json"),
        `${JSON.stringify(net.configJson, null, 2)}\n`,
      );
    },
    { canReplace: () => undefined },
  );
}

const WEIGHTS_FILE = "diffusion_pytorch_model.safetensors";
