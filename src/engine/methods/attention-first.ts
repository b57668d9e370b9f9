/**
 * Attention `first` — Text2Video-Zero's cross-frame attention: every self-attention (UNet and
 * ControlNet) reads the keys/values of frame 0. Frame 0 is prepended to every later batch as an
 * anchor: it attends only to itself, so denoising it again from its recorded noise and controls
 * reproduces it exactly, and any batch size gives the same video (Text2Video-Zero's chunking).
 * Frame 0's keys/values are recorded once and fed to every later batch (the anchor cache), so
 * frame 0 is not denoised again.
 */
import type { CrossFrameSetting } from "../../models/unet/build.js";
import type { VideoMethod } from "../method.js";

/** `videos` = 2 with classifier-free guidance (the batch is [uncond frames, cond frames]), else 1. */
export function firstFrameAttention(videos: number): VideoMethod {
  return {
    id: "attention:first",
    role: "attention",
    crossFrame: (): CrossFrameSetting => ({ batchSize: videos, mode: "first", anchorCache: true }),
    anchors: (fresh) => (fresh[0] === 0 ? [] : [0]),
    anchorCache: () => [0],
  };
}
