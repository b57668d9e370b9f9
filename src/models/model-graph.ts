/** What the model graph builders (unet/build.ts, controlnet/build.ts, motion/build.ts) return. */
import type { WeightReport } from "../nn/weights.js";

export interface ModelGraph<M, W = WeightReport> {
  /** The module the graph was built from (its spec, submodules and key paths). */
  readonly model: M;
  /** Graph input names, in order. */
  readonly inputs: readonly string[];
  /** Graph output names, in order. */
  readonly outputs: readonly string[];
  /** Weight coverage of the binding (no missing or mis-shaped keys, or the build threw). */
  readonly weights: W;
}
