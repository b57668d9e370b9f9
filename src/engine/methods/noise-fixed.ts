/**
 * Noise `fixed` — the same seed for every frame: each frame is generated as an independent image with
 * seed `seed` (initial noise and step noise from a generator seeded alike), as re-running an image
 * tool per frame would. With a deterministic sampler this equals `shared`.
 */
import type { VideoMethod } from "../method.js";

export function fixedNoise(): VideoMethod {
  return {
    id: "noise:fixed",
    role: "noise",
    frameSeed: (_i, info) => info.seed,
    initialNoise: (_ctx, own) => Promise.resolve(own),
  };
}
