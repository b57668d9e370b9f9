/**
 * Noise `mixed` — a shared latent plus a per-frame residual: z_i = sqrt(1 - r) * shared + sqrt(r) * own_i,
 * with `own_i` the frame's seed + i draw and r in [0, 1] the residual's share of the variance (0 is
 * `shared`, 1 is `per-frame`; unit variance throughout). Keeps most of the structure shared while
 * letting details change.
 */
import { InvalidArgumentError } from "../../errors.js";
import { TorchGenerator } from "../../random/torch-generator.js";
import { tensor, type HostTensor } from "../../tensor.js";
import type { VideoMethod } from "../method.js";

export function mixedNoise(ratio = 0.2): VideoMethod {
  if (!(ratio >= 0 && ratio <= 1))
    throw new InvalidArgumentError("--noise-ratio", "a number in [0, 1]", ratio);
  let shared: HostTensor<"float32"> | undefined;
  const a = Math.sqrt(1 - ratio);
  const b = Math.sqrt(ratio);
  return {
    id: "noise:mixed",
    role: "noise",
    settings: { ratio },
    frameSeed: (i, info) => info.seed + BigInt(i),
    initialNoise: (ctx, own) => {
      const s = (shared ??= new TorchGenerator(ctx.info.seed).randn([1, ...ctx.info.latentShape]));
      return Promise.resolve(
        tensor(
          "float32",
          own.shape,
          own.data.map((x, k) => Math.fround(a * (s.data[k] ?? 0) + b * x)),
        ),
      );
    },
  };
}
