/**
 * Attention `first+previous` — Tune-A-Video's sparse-causal attention: frame i reads the keys/values
 * of frame 0 and frame i-1 (concatenated). A batch that starts at frame i > 1 is given frame 0 and
 * frame i-1 as anchors, with the keys/values they had when they were generated (`storedAnchors`:
 * frame i-1's attended to frames 0 and i-2, and so on back to frame 0). So every `--batch` gives the
 * frames of the whole video in one batch, the exact Tune-A-Video computation, at the cost of one
 * frame's keys/values kept per batch boundary (on disk in the work folder, so a resumed render and
 * farm segments continue exactly).
 */
import type { CrossFrameSetting } from "../../models/unet/build.js";
import type { VideoMethod } from "../method.js";

export function sparseCausalAttention(videos: number): VideoMethod {
  return {
    id: "attention:first+previous",
    role: "attention",
    // Recorded so that a render begun when the previous frame was denoised again is not resumed.
    settings: { previous: "stored keys/values" },
    crossFrame: (): CrossFrameSetting => ({
      batchSize: videos,
      mode: "first-and-previous",
      anchorCache: true,
    }),
    anchorCache: () => [0],
    storedAnchors: true,
    anchors: (fresh) => {
      const first = fresh[0] ?? 0;
      return first === 0 ? [] : first === 1 ? [0] : [0, first - 1];
    },
  };
}
