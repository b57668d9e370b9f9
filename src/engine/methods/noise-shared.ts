/**
 * Noise `shared` — one initial latent for all frames (Text2Video-Zero's ControlNet recipe,
 * ControlVideo's `same_frame_noise`): drawn once from `seed`; step noise of stochastic samplers still
 * comes from each frame's own generator (seed + i).
 */
import { TorchGenerator } from "../../random/torch-generator.js";
import type { HostTensor } from "../../tensor.js";
import type { VideoMethod } from "../method.js";

export function sharedNoise(): VideoMethod {
  let shared: HostTensor<"float32"> | undefined;
  return {
    id: "noise:shared",
    role: "noise",
    frameSeed: (i, info) => info.seed + BigInt(i),
    initialNoise: (ctx) => {
      shared ??= new TorchGenerator(ctx.info.seed).randn([1, ...ctx.info.latentShape]);
      return Promise.resolve(shared);
    },
  };
}
