/**
 * A tiny UNet2DConditionModel config (two levels, 8/16 channels) and its noise prediction on fixed
 * random inputs, for tests of config variants built from it.
 */
import { type WeightStore } from "../../src/nn/weight-store.js";
import { buildUNet2DConditionModel } from "../../src/models/unet/build.js";
import { parseUNet2DConditionModelConfig } from "../../src/models/unet/config.js";
import { type HostTensor, tensor } from "../../src/tensor.js";
import { randomTensor } from "./graph-reference.js";
import { runGraph } from "./run-graph.js";
import { bindGraph } from "./tiny-sd.js";

export const TINY_UNET = {
  block_out_channels: [8, 16],
  down_block_types: ["CrossAttnDownBlock2D", "DownBlock2D"],
  up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D"],
  attention_head_dim: 2,
  cross_attention_dim: 12,
  layers_per_block: 1,
  norm_num_groups: 4,
};

/** noise_pred of TINY_UNET + `json` on `store`: batch 2, 5x7 latents, timesteps 981 and 0.25. */
export async function tinyUNetNoise(
  json: Record<string, unknown>,
  store: WeightStore,
  feeds: Readonly<Record<string, HostTensor>> = {},
): Promise<HostTensor> {
  const { config } = parseUNet2DConditionModelConfig("test config", { ...TINY_UNET, ...json });
  const { g, w } = bindGraph(store);
  buildUNet2DConditionModel(w, config);
  const out = await runGraph(g, {
    sample: randomTensor([2, 4, 5, 7], 1),
    timestep: tensor("float32", [2], Float32Array.of(981, 0.25)),
    encoder_hidden_states: randomTensor([2, 3, 12], 2),
    ...feeds,
  });
  const noise = out["noise_pred"];
  if (!noise) throw new Error("no noise_pred");
  return noise;
}
