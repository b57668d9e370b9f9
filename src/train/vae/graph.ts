/**
 * The AutoencoderKL training graph: one ONNX model computing the VAE loss and its gradients. The
 * forward pass is that of diffusers' `AutoencoderKL.forward(sample, sample_posterior=True)` (0.26.3):
 * encoder -> quant_conv -> DiagonalGaussianDistribution (logvar clamped to [-30, 20], z = mean +
 * exp(0.5 logvar) * noise, the noise fed as the input `noise`) -> post_quant_conv -> decoder. The loss
 * is that of the LDM autoencoder (taming/ldm `LPIPSWithDiscriminator` without its perceptual and
 * adversarial terms, logvar 0): the reconstruction error summed over each image's pixels (L1 by
 * default, or squared) plus kl_weight times the KL divergence of the posterior against N(0, I),
 * `0.5 * sum(mean^2 + var - 1 - logvar)` per image, both averaged over the batch. Gradients of the
 * trainable parameters come from src/graph/autodiff in the same graph.
 *
 * Inputs: `image` [B, in_channels, H, W] in [-1, 1], `noise` [B, latent_channels, H/f, W/f], then
 * the trainable parameters. Outputs: `loss`, `rec` (mean per-element reconstruction error), `kl`
 * (per image, batch mean), `mean` (the posterior mean), `grad.<i>` (parameter i's gradient).
 */
import { GraphError } from "../../errors.js";
import { type BackwardOptions, type ParameterPattern, gradients } from "../../graph/autodiff/index.js";
import { GraphBuilder, type Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { Decoder } from "../../models/vae/decoder.js";
import { Encoder } from "../../models/vae/encoder.js";
import type { VaeSpec } from "../../models/vae/validate.js";
import { Conv2d } from "../../nn/conv.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { WeightScope } from "../../nn/weights.js";
import { type TrainableParameter, makeTrainable, trackLayouts } from "../parameters.js";

/** Reconstruction term: LDM's absolute error ("l1", default) or the squared error ("l2"). */
export type VaeReconstructionLoss = "l1" | "l2";

export interface VaeTrainingGraphOptions {
  /** Images per step. */
  readonly batch: number;
  /** Image size (multiples of the VAE's downsampling factor). */
  readonly height: number;
  readonly width: number;
  /** (optional, default "l1") see VaeReconstructionLoss. */
  readonly reconstruction?: VaeReconstructionLoss;
  /** (optional, default 1e-6, LDM's kl-f4/f8 configs) weight of the KL term. */
  readonly klWeight?: number;
  /** (optional, default every parameter) diffusers-key patterns of the trained parameters. */
  readonly trainable?: readonly ParameterPattern[];
  /** (optional) activation recompute, passed to `gradients` (see docs/training.md). */
  readonly checkpoint?: BackwardOptions["checkpoint"];
}

export interface VaeTrainingGraph {
  readonly graph: GraphBuilder;
  /** The trained parameters, in the order of the `grad.<i>` outputs. */
  readonly params: readonly TrainableParameter[];
  /** Latent size [channels, height, width] of the `noise` input. */
  readonly latentShape: readonly [number, number, number];
}

/** Builds the graph of the file comment over `store` (diffusers keys). */
export function buildVaeTrainingGraph(
  spec: VaeSpec,
  store: WeightStore,
  options: VaeTrainingGraphOptions,
): VaeTrainingGraph {
  const c = spec.config;
  const f = spec.downsampleFactor;
  const { batch, height, width } = options;
  const latentShape = [c.latent_channels, height / f, width / f] as const;
  const tracker = trackLayouts(store);
  const g = new GraphBuilder({ name: "vae_training" });
  const w = WeightScope.bind(g, tracker.store);
  const image = g.input("image", "float32", [batch, c.in_channels, height, width]);
  const noise = g.input("noise", "float32", [batch, ...latentShape]);

  const encoder = new Encoder(w.at("encoder"), spec);
  const m2 = 2 * c.latent_channels;
  const quantConv = new Conv2d(w.at("quant_conv"), { inChannels: m2, outChannels: m2, kernelSize: 1 });
  const postQuantConv = new Conv2d(w.at("post_quant_conv"), {
    inChannels: c.latent_channels,
    outChannels: c.latent_channels,
    kernelSize: 1,
  });
  const decoder = new Decoder(w.at("decoder"), spec);

  const moments = quantConv.forward(encoder.forward(image));
  const [mean, rawLogvar] = g.scope("posterior", () => op.Split(g, moments, 1, { count: 2 }));
  if (!mean || !rawLogvar) throw new GraphError("Split", "internal: moments split into fewer than 2 outputs");
  const { z, kl } = g.scope("posterior", () => {
    const logvar = op.Min(g, op.Max(g, rawLogvar, -30), 20);
    const variance = op.Exp(g, logvar);
    const std = op.Exp(g, op.Mul(g, logvar, 0.5));
    const sampled = op.Add(g, mean, op.Mul(g, std, noise));
    // 0.5 * sum(mean^2 + var - 1 - logvar) over [C, h, w], then the batch mean.
    const terms = op.Sub(g, op.Sub(g, op.Add(g, op.Mul(g, mean, mean), variance), 1), logvar);
    const perImage = op.Mul(g, op.ReduceSum(g, terms, [1, 2, 3], { keepdims: false }), 0.5);
    return { z: sampled, kl: op.ReduceMean(g, perImage, [0], { keepdims: false }) };
  });
  const reconstruction = decoder.forward(postQuantConv.forward(z));
  w.finish();

  const { loss, rec } = g.scope("loss", () => {
    const d = op.Sub(g, image, reconstruction);
    const err: Value = options.reconstruction === "l2" ? op.Mul(g, d, d) : op.Abs(g, d);
    const perImage = op.ReduceSum(g, err, [1, 2, 3], { keepdims: false });
    const recSum = op.ReduceMean(g, perImage, [0], { keepdims: false });
    return {
      loss: op.Add(g, recSum, op.Mul(g, kl, options.klWeight ?? 1e-6)),
      rec: op.ReduceMean(g, err, [0, 1, 2, 3], { keepdims: false }),
    };
  });
  const params = makeTrainable(g, tracker, options.trainable);
  const { grads } = gradients(
    g,
    loss,
    params.map((p) => p.value),
    options.checkpoint ? { checkpoint: options.checkpoint } : {},
  );
  g.output(loss, "loss");
  g.output(rec, "rec");
  g.output(kl, "kl");
  g.output(mean, "mean");
  grads.forEach((gr, i) => g.output(gr, `grad.${i}`));
  return { graph: g, params, latentShape: [...latentShape] as [number, number, number] };
}
