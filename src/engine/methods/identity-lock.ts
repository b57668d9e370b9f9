/**
 * Identity lock: the IP-Adapter's reference image of every batch after the first is frame 0's own
 * output, so a character or object keeps the look it got in frame 0 (the reference-image route of
 * IP-Adapter used for consistency, as ComfyUI video workflows feed a generated key frame back). The
 * batch that makes frame 0 has no reference from this method (the render's own `--ip-image`, if any,
 * or none). Frames after the first batch depend only on frame 0, so a render split into segments
 * (the farm) stays exact.
 */
import { InvalidArgumentError } from "../../errors.js";
import type { Image } from "../../image.js";
import type { VideoMethod } from "../method.js";

export function identityLock(): VideoMethod {
  let reference: readonly Image[] | undefined;
  return {
    id: "reference:first-output",
    role: "reference",
    check: (_info, context) => {
      if (!context.ipAdapter)
        throw new InvalidArgumentError(
          "--ip-image first-output",
          "an --ip-adapter to take the reference",
          "none",
          {
            hint: "add --ip-adapter FILE (an IP-Adapter SD1.5 file with its image encoder)",
          },
        );
    },
    reference: async (fresh, output) => {
      if (fresh.includes(0)) return undefined;
      reference ??= [await output(0)];
      return reference;
    },
  };
}
