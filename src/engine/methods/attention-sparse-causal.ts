/**
 * Attention `first+previous` — Tune-A-Video's sparse-causal attention: frame i reads the keys/values
 * of frame 0 and frame i-1 (concatenated). Within a batch this is exact; a batch that starts at frame
 * i > 1 gets frames 0 and i-1 prepended as anchors, and the anchor i-1 there attends to [0 ; 0]
 * instead of [0 ; i-2], so results depend slightly on `--batch` (all frames in one batch is the
 * exact Tune-A-Video computation). Frame 0 (which attends to itself) is taken from the anchor cache;
 * the anchor i-1 is denoised again.
 */
import type { CrossFrameSetting } from "../../models/unet/build.js";
import type { VideoMethod } from "../method.js";

export function sparseCausalAttention(videos: number): VideoMethod {
  return {
    id: "attention:first+previous",
    role: "attention",
    crossFrame: (): CrossFrameSetting => ({
      batchSize: videos,
      mode: "first-and-previous",
      anchorCache: true,
    }),
    anchorCache: () => [0],
    anchors: (fresh) => {
      const first = fresh[0] ?? 0;
      return first === 0 ? [] : first === 1 ? [0] : [0, first - 1];
    },
  };
}
