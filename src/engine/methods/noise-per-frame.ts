/**
 * Noise `per-frame` — the founding study's `seed += i`: frame i starts from the noise of seed + i
 * (and draws its step noise from the same generator), so frame i equals `steadyframe image --seed
 * <seed + i>` with the same control map. Independent noise per frame: the flicker baseline.
 */
import type { VideoMethod } from "../method.js";

export function perFrameNoise(): VideoMethod {
  return {
    id: "noise:per-frame",
    role: "noise",
    frameSeed: (i, info) => info.seed + BigInt(i),
    initialNoise: (_ctx, own) => Promise.resolve(own),
  };
}
