/**
 * Reverse-mode autodiff over the graph builder (see backward.ts) and the choice of trainable
 * parameters (parameters.ts). Gradients are ONNX nodes in the same graph.
 */
export {
  type BackwardOptions,
  type BackwardResult,
  type Seed,
  backward,
  checkpointByScope,
  differentiableOps,
  gradients,
} from "./backward.js";
export { type ParameterPattern, matchesParameter, promoteToInputs, selectParameters } from "./parameters.js";
export { outputFlatGradients } from "./outputs.js";
export type { GradientRule } from "./rule.js";
