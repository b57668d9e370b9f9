/** CLIPVisionModelWithProjection: config, graph modules, CLIPImageProcessor preprocessing and runner. */
export { ClipVisionRunner, type ClipVisionLoadOptions, type ClipVisionOutputs } from "./clip-vision-model.js";
export { type CLIPVisionConfig, parseCLIPVisionConfig } from "./config.js";
export { CLIP_VISION_OUTPUTS, type ClipVisionGraphOptions, buildCLIPVisionGraph } from "./graph.js";
export * from "./preprocess.js";
export * from "./vision-transformer.js";
export { type ClipVisionSpec, resolveClipVisionSpec } from "./validate.js";
