/**
 * The two AutoencoderKL graphs (diffusers models/autoencoders/autoencoder_kl.py, 0.26.3):
 *
 * - encoder: `image` [B, in_channels, H, W] (in [-1, 1]) -> encoder -> quant_conv -> moments, split
 *   into `mean` and `logvar` (DiagonalGaussianDistribution: logvar clamped to [-30, 20]).
 * - decoder: `latents` [B, latent_channels, h, w] (unscaled: the caller divides by scaling_factor)
 *   -> post_quant_conv -> decoder -> `sample` [B, out_channels, H, W].
 *
 * Both bind the same checkpoint; binding problems of either are reported together in one
 * MissingWeightsError. With `intermediates`, the encoder also outputs `encoder_output` (before
 * quant_conv) and `moments`, and the decoder `post_quant_conv`.
 */
import { GraphError, MissingWeightsError } from "../../errors.js";
import { GraphBuilder, type Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { Conv2d } from "../../nn/conv.js";
import type { GraphBuildOptions } from "../../nn/module.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { type BindOptions, type WeightReport, WeightScope } from "../../nn/weights.js";
import { describeProblems } from "../../nn/weights-hint.js";
import { Decoder } from "./decoder.js";
import { Encoder } from "./encoder.js";
import type { VaeSpec } from "./validate.js";

export interface VaeGraphOptions extends GraphBuildOptions {
  /** Float dtype of weights and activations (default "float32"). */
  readonly dtype?: "float32" | "float16";
  /** Translates checkpoint keys to diffusers keys (e.g. the LDM key map). */
  readonly keyMap?: (storeKey: string) => string | undefined;
  /** Adds the intermediate outputs named in the file comment (default false). */
  readonly intermediates?: boolean;
}

export interface AutoencoderKLGraphs {
  readonly encoder: GraphBuilder;
  readonly decoder: GraphBuilder;
}

/** Key prefixes bound by each graph (the other graph's keys are not "unexpected" to it). */
const ENCODER_KEYS = (k: string): boolean => k.startsWith("encoder.") || k.startsWith("quant_conv.");
const DECODER_KEYS = (k: string): boolean => k.startsWith("decoder.") || k.startsWith("post_quant_conv.");

/** A fresh graph named `name` and a root weight scope over `store` with the options' dtype, key map and lowerings. */
function bindGraph(
  name: string,
  store: WeightStore,
  options: VaeGraphOptions,
): { graph: GraphBuilder; w: WeightScope } {
  const graph = new GraphBuilder({ name });
  const bind: BindOptions = {
    ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
    ...(options.keyMap === undefined ? {} : { keyMap: options.keyMap }),
    ...(options.attention === undefined ? {} : { attention: options.attention }),
    ...(options.groupNorm === undefined ? {} : { groupNorm: options.groupNorm }),
  };
  return { graph, w: WeightScope.bind(graph, store, bind) };
}

function buildEncoder(
  spec: VaeSpec,
  store: WeightStore,
  options: VaeGraphOptions,
): { graph: GraphBuilder; w: WeightScope } {
  const c = spec.config;
  const { graph: g, w } = bindGraph("vae_encoder", store, options);
  const encoder = new Encoder(w.at("encoder"), spec);
  const moments2 = 2 * c.latent_channels;
  const quant_conv = new Conv2d(w.at("quant_conv"), {
    inChannels: moments2,
    outChannels: moments2,
    kernelSize: 1,
  });
  const image = g.input("image", w.dtype, ["batch", c.in_channels, "height", "width"]);
  const h = encoder.forward(image);
  const moments = quant_conv.forward(h);
  const [mean, logvar] = g.scope("posterior", () => op.Split(g, moments, 1, { count: 2 }));
  if (!mean || !logvar) throw new GraphError("Split", "internal: moments split into fewer than 2 outputs");
  g.output(mean, "mean");
  g.output(
    g.scope("posterior", () => op.Min(g, op.Max(g, logvar, -30), 20)),
    "logvar",
  );
  if (options.intermediates) {
    g.output(h, "encoder_output");
    g.output(moments, "moments");
  }
  return { graph: g, w };
}

function buildDecoder(
  spec: VaeSpec,
  store: WeightStore,
  options: VaeGraphOptions,
): { graph: GraphBuilder; w: WeightScope } {
  const c = spec.config;
  const { graph: g, w } = bindGraph("vae_decoder", store, options);
  const post_quant_conv = new Conv2d(w.at("post_quant_conv"), {
    inChannels: c.latent_channels,
    outChannels: c.latent_channels,
    kernelSize: 1,
  });
  const decoder = new Decoder(w.at("decoder"), spec);
  const latents = g.input("latents", w.dtype, ["batch", c.latent_channels, "latent_height", "latent_width"]);
  const z: Value = post_quant_conv.forward(latents);
  g.output(decoder.forward(z), "sample");
  if (options.intermediates) g.output(z, "post_quant_conv");
  return { graph: g, w };
}

/** Builds both graphs and checks the checkpoint covers them exactly (one MissingWeightsError otherwise). */
export function buildAutoencoderKLGraphs(
  spec: VaeSpec,
  store: WeightStore,
  options: VaeGraphOptions = {},
): AutoencoderKLGraphs {
  const enc = buildEncoder(spec, store, options);
  const dec = buildDecoder(spec, store, options);
  const a = enc.w.report({ ignoreUnexpected: DECODER_KEYS });
  const b = dec.w.report({ ignoreUnexpected: ENCODER_KEYS });
  const problems: WeightReport = {
    bound: a.bound + b.bound,
    missing: [...a.missing, ...b.missing],
    unexpected: [...new Set([...a.unexpected, ...b.unexpected])],
    misshaped: [...a.misshaped, ...b.misshaped],
    wrongDType: [...a.wrongDType, ...b.wrongDType],
  };
  if (
    problems.missing.length +
      problems.unexpected.length +
      problems.misshaped.length +
      problems.wrongDType.length >
    0
  ) {
    throw new MissingWeightsError(store.name, problems.missing, problems.unexpected, problems.misshaped, {
      hint: `AutoencoderKL: ${describeProblems(problems, [...store.keys()])}`,
    });
  }
  return { encoder: enc.graph, decoder: dec.graph };
}
