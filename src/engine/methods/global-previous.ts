/**
 * Content from the previous frame (the founding study's strategy 4 with Uni-ControlNet's global
 * adapter): the global (content) adapter of every frame after the first is conditioned on the
 * previous frame's output, so each frame takes its look from the one before. Frame 0 has no content
 * reference (the render's own `--global` image, if any). Sequential: one new frame per batch.
 */
import { InvalidArgumentError } from "../../errors.js";
import type { VideoMethod } from "../method.js";

export function globalFromPrevious(): VideoMethod {
  return {
    id: "reference:previous-output",
    role: "reference",
    sequential: true,
    check: (_info, context) => {
      if (!context.globalAdapter)
        throw new InvalidArgumentError(
          "--global previous",
          "a model with a global (content) adapter",
          "none",
          {
            hint: "use --uni uni.ckpt (Uni-ControlNet's global adapter takes the previous frame's content)",
          },
        );
    },
    reference: async (fresh, output) => {
      const first = fresh[0];
      return first === undefined || first === 0 ? undefined : [await output(first - 1)];
    },
  };
}
