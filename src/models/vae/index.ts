/** AutoencoderKL: config, graph modules and runner. */
export {
  AutoencoderKL,
  type AutoencoderKLLoadOptions,
  type EncodeLatentsOptions,
  type RunBatchOptions,
} from "./autoencoder-kl.js";
export { type AutoencoderKLConfig, parseAutoencoderKLConfig, readAutoencoderKLConfig } from "./config.js";
export { Decoder } from "./decoder.js";
export { Encoder } from "./encoder.js";
export { type AutoencoderKLGraphs, type VaeGraphOptions, buildAutoencoderKLGraphs } from "./graphs.js";
export {
  type LatentDistribution,
  type SampleOptions,
  drawNoise,
  posteriorStd,
  samplePosterior,
  scaleTensor,
  unscaleTensor,
} from "./posterior.js";
export { type VaeSpec, resolveVaeSpec } from "./validate.js";
export * from "./blocks.js";
