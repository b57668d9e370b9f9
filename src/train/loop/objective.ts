/**
 * The denoising objective of diffusers' examples/text_to_image/train_text_to_image.py (0.26.3) as
 * one ONNX graph plus host-side noising: for latents x0, noise n ~ N(0, 1) (+ noise_offset * N(0, 1)
 * per sample and channel), timesteps t uniform in [0, num_train_timesteps), the UNet sees
 * add_noise(x0, n, t) = sqrt(acp[t]) x0 + sqrt(1 - acp[t]) n and is trained towards n ("epsilon") or
 * the velocity sqrt(acp[t]) n - sqrt(1 - acp[t]) x0 ("v_prediction") with the mean squared error over
 * every element. The graph computes the loss and the gradients of the trainable parameters
 * (src/graph/autodiff); the frozen weights stay initializers.
 *
 * ControlNet training (diffusers examples/controlnet/train_controlnet.py): the ControlNet sees the
 * same noisy latents, timesteps and text plus the control image, its residuals (scale 1) enter the
 * frozen UNet, and only ControlNet parameters train (or, with `trainUnet`, the UNet's too: both
 * models learn together, which is how a small model trained from scratch learns to follow its control
 * quickly). Both models share one graph: the ControlNet's weights are bound under the key prefix
 * `controlnet.` so their names cannot clash with the UNet's.
 */
import { join } from "node:path";
import { GraphBuilder } from "../../graph/builder.js";
import { isFloatDType } from "../../graph/dtype.js";
import { type ParameterPattern, gradients, outputFlatGradients } from "../../graph/autodiff/index.js";
import * as op from "../../graph/ops/index.js";
import type { UNet2DConditionModelConfig } from "../../models/unet/config.js";
import { UNet2DConditionModel } from "../../models/unet/unet-2d-condition.js";
import type { ControlNetModelConfig } from "../../models/controlnet/config.js";
import { ControlNetModel } from "../../models/controlnet/controlnet-model.js";
import { InvalidArgumentError } from "../../errors.js";
import { matchesParameter } from "../../graph/autodiff/index.js";
import { type TensorFileLike, type WeightStore, safetensorsStore } from "../../nn/weight-store.js";
import { WeightScope } from "../../nn/weights.js";
import type { TorchGenerator } from "../../random/torch-generator.js";
import { type HostTensor, tensor } from "../../tensor.js";
import type { SafetensorsFile } from "../../weights/safetensors.js";
import { type TrainableParameter, makeTrainable, trackLayouts } from "../parameters.js";

export type PredictionType = "epsilon" | "v_prediction";

export interface TrainingGraph {
  readonly graph: GraphBuilder;
  /** The trainable parameters, in the order of the `grad.<i>` outputs. */
  readonly params: readonly TrainableParameter[];
  /** Key prefix of the trained component's parameters in the graph ("" or CONTROLNET_PREFIX; "" when both train). */
  readonly prefix: string;
}

/** Graph key prefix of the ControlNet's weights in a ControlNet training graph. */
export const CONTROLNET_PREFIX = "controlnet.";

/** The ControlNet of a ControlNet training graph (its parameters are the trainable ones). */
export interface TrainedControlNet {
  readonly config: ControlNetModelConfig;
  readonly weights: TensorFileLike;
  /** Its config.json (copied into checkpoints), or the config's text when it has no file. */
  readonly configFile: string;
  readonly configText?: string;
}

/** `a`'s keys as they are and `b`'s under `prefix`, as one store. */
function joinStores(a: WeightStore, b: WeightStore, prefix: string): WeightStore {
  const inner = (key: string): [WeightStore, string] =>
    key.startsWith(prefix) ? [b, key.slice(prefix.length)] : [a, key];
  return {
    name: `${a.name} + ${b.name}`,
    keys: () => [...a.keys(), ...[...b.keys()].map((k) => prefix + k)],
    info: (key) => {
      const [store, k] = inner(key);
      return store.info(k);
    },
    source: (key) => {
      const [store, k] = inner(key);
      return store.source(k);
    },
  };
}

export interface TrainingGraphOptions {
  /** [batch, channels, height, width] of the latents. */
  readonly latentShape: readonly [number, number, number, number];
  /** [sequence, hidden] of the prompt embeddings. */
  readonly contextShape: readonly [number, number];
  /**
   * (optional, default every parameter of the trained model) diffusers-key patterns of the
   * parameters to train (keys of the trained model, without the ControlNet prefix).
   */
  readonly trainable?: readonly ParameterPattern[];
  /** (optional) train this ControlNet (input `controlnet_cond` [B, channels, H, W]); the UNet is frozen. */
  readonly controlnet?: TrainedControlNet;
  /** (optional, default false) with `controlnet`: train the UNet as well (patterns then match both). */
  readonly trainUnet?: boolean;
  /** [height, width] of the control image (required with `controlnet`). */
  readonly controlSize?: readonly [number, number];
}

/** The trainable keys among `keys` (under `prefix`): a pattern that selects nothing is an error. */
function chooseTrainable(
  keys: readonly string[],
  prefix: string,
  patterns: readonly ParameterPattern[] | undefined,
): RegExp[] {
  const own = keys.filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  const exact = (k: string): RegExp => new RegExp(`^${(prefix + k).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
  if (patterns === undefined) return own.map(exact);
  const unused = patterns.filter((p) => !own.some((k) => matchesParameter(k, p)));
  if (unused.length > 0) {
    throw new InvalidArgumentError(
      "trainable patterns",
      "patterns that each match at least one parameter",
      unused.map(String),
      {
        hint: `a pattern is a module-name suffix such as "attn1.to_q"; keys look like ${own.slice(0, 4).join(", ")}`,
      },
    );
  }
  return own.filter((k) => patterns.some((p) => matchesParameter(k, p))).map(exact);
}

/**
 * Inputs `sample`, `timestep` (float32 [B]), `encoder_hidden_states`, `target` and one per trainable
 * parameter (its diffusers key); outputs `loss` (scalar) and `grad.<i>` per parameter.
 */
export function buildTrainingGraph(
  unetDir: string,
  config: UNet2DConditionModelConfig,
  weights: SafetensorsFile,
  options: TrainingGraphOptions,
): TrainingGraph {
  const net = options.controlnet;
  const prefix = net && options.trainUnet !== true ? CONTROLNET_PREFIX : "";
  const unetStore = safetensorsStore(weights);
  const tracker = trackLayouts(
    net ? joinStores(unetStore, safetensorsStore(net.weights), CONTROLNET_PREFIX) : unetStore,
  );
  const g = new GraphBuilder({ name: net ? "controlnet_training" : "unet_training" });
  const w = WeightScope.bind(g, tracker.store);
  const model = new UNet2DConditionModel(w, config, join(unetDir, "config.json"));
  const [b] = options.latentShape;
  const sample = g.input("sample", "float32", [...options.latentShape]);
  const timestep = g.input("timestep", "float32", [b]);
  const context = g.input("encoder_hidden_states", "float32", [b, ...options.contextShape]);
  const target = g.input("target", "float32", [...options.latentShape]);
  let residuals = {};
  if (net) {
    const [h = 0, wd = 0] = options.controlSize ?? [];
    const cond = g.input("controlnet_cond", "float32", [b, net.config.conditioning_channels, h, wd]);
    const control = new ControlNetModel(w.at(CONTROLNET_PREFIX.slice(0, -1)), net.config, net.configFile);
    const out = control.forward({
      sample,
      timestep,
      encoderHiddenStates: context,
      controlnetCond: cond,
      conditioningScale: g.scalar(1, "float32"),
    });
    residuals = {
      downBlockAdditionalResiduals: out.downBlockResSamples,
      midBlockAdditionalResidual: out.midBlockResSample,
    };
  }
  const pred = model.forward({ sample, timestep, encoderHiddenStates: context, ...residuals });
  w.finish();
  const diff = op.Sub(g, pred, target);
  const loss = op.ReduceMean(g, op.Mul(g, diff, diff), [0, 1, 2, 3], { keepdims: false });
  const keys = g.initializers.filter((i) => isFloatDType(i.dtype)).map((i) => i.name);
  const params = makeTrainable(g, tracker, chooseTrainable(keys, prefix, options.trainable));
  const { grads } = gradients(
    g,
    loss,
    params.map((p) => p.value),
  );
  g.output(loss, "loss");
  outputFlatGradients(g, grads);
  return { graph: g, params, prefix };
}

export interface NoisedBatch {
  readonly noisy: HostTensor<"float32">;
  readonly target: HostTensor<"float32">;
  readonly timesteps: Float32Array;
}

const f32 = Math.fround;

/**
 * Draws noise (then the offset noise, then the timesteps, the order of the diffusers script) from
 * `generator` and returns the UNet input and target for `latents` [B, C, h, w].
 */
export function noiseBatch(
  latents: HostTensor<"float32">,
  generator: TorchGenerator,
  alphasCumprod: Float32Array,
  prediction: PredictionType,
  noiseOffset = 0,
): NoisedBatch {
  const [b = 1, c = 1] = latents.shape;
  const noise = generator.randn(latents.shape).data;
  const per = latents.data.length / b;
  const plane = per / c;
  if (noiseOffset !== 0) {
    const offset = generator.randn([b, c, 1, 1]).data;
    const k = f32(noiseOffset);
    for (let i = 0; i < noise.length; i++) {
      noise[i] = f32((noise[i] ?? 0) + f32(k * (offset[Math.floor(i / plane)] ?? 0)));
    }
  }
  const count = alphasCumprod.length;
  const u = generator.rand([b]).data;
  const timesteps = Float32Array.from(u, (x) => Math.min(count - 1, Math.floor(x * count)));
  const noisy = new Float32Array(latents.data.length);
  const target = new Float32Array(latents.data.length);
  for (let i = 0; i < noisy.length; i++) {
    const a = alphasCumprod[timesteps[Math.floor(i / per)] ?? 0] ?? 0;
    const sa = f32(Math.sqrt(a));
    const sb = f32(Math.sqrt(f32(1 - a)));
    const x = latents.data[i] ?? 0;
    const n = noise[i] ?? 0;
    noisy[i] = f32(f32(sa * x) + f32(sb * n));
    target[i] = prediction === "epsilon" ? n : f32(f32(sa * n) - f32(sb * x));
  }
  return {
    noisy: tensor("float32", latents.shape, noisy),
    target: tensor("float32", latents.shape, target),
    timesteps,
  };
}
