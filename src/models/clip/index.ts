/** CLIPTextModel: config, graph modules and runner. */
export {
  CLIPTextModel,
  type CLIPTextEncodeOptions,
  type CLIPTextModelLoadOptions,
  type CLIPTextOutputs,
} from "./clip-text-model.js";
export { type CLIPTextConfig, parseCLIPTextConfig, readCLIPTextConfig } from "./config.js";
export { type ClipGraphOptions, buildCLIPTextGraph } from "./graph.js";
export * from "./text-transformer.js";
export { type ClipSpec, resolveClipSpec } from "./validate.js";
