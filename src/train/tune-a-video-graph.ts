/**
 * Tune-A-Video's training step as one graph (showlab/Tune-A-Video `train_tuneavideo.py`): the
 * inflated UNet's forward on noisy video latents, `F.mse_loss(model_pred, target, "mean")` over all
 * b*c*f*h*w elements, and the gradients of the trainable parameters only (the release freezes the
 * UNet, then unfreezes every parameter of a module whose name ends with one of trainable_modules).
 * One optimiser step then runs in TypeScript: clip_grad_norm_ over the trainable gradients, AdamW
 * (frozen weights get no gradient, hence no decay and no state), constant learning rate.
 */
import { InvalidArgumentError } from "../errors.js";
import { GraphBuilder } from "../graph/builder.js";
import { gradients } from "../graph/autodiff/index.js";
import * as op from "../graph/ops/index.js";
import { contextWidth } from "../models/unet3d/build.js";
import { UNet3DConditionModel } from "../models/unet3d/model.js";
import type { UNet2DConditionModelConfig } from "../models/unet/config.js";
import type { WeightStore } from "../nn/weight-store.js";
import { WeightScope } from "../nn/weights.js";
import { type HostTensor, numel, tensor, toFloat32 } from "../tensor.js";
import { type GraphSession, openGraphSession } from "./graph-session.js";
import { AdamW, clipGradNorm, globalGradNorm } from "./optim/index.js";
import { type TrainableParameter, makeTrainable, toCheckpointLayout, trackLayouts } from "./parameters.js";

/** The release's trainable_modules (configs/*.yaml). */
export const TUNE_A_VIDEO_TRAINABLE_MODULES = ["attn1.to_q", "attn2.to_q", "attn_temp"] as const;

/** The release's optimiser settings (train_tuneavideo.py defaults under configs/man-skiing.yaml). */
export const TUNE_A_VIDEO_OPTIMIZER = {
  learningRate: 3e-5,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamWeightDecay: 1e-2,
  adamEpsilon: 1e-8,
  maxGradNorm: 1.0,
} as const;

export interface TuneAVideoGraphOptions {
  /** Static latent shape [B, C, F, h, w]. */
  readonly latentShape: readonly [number, number, number, number, number];
  /** Text sequence length (77). */
  readonly sequence: number;
  /** (optional, default the release's) module-name suffixes to train. */
  readonly trainableModules?: readonly string[];
  /**
   * (optional, default "refuse") a trainable module name that matches nothing: refused (a typo, most
   * likely), or ignored as the release's `name.endswith(tuple(trainable_modules))` loop does.
   */
  readonly unmatchedModules?: "refuse" | "ignore";
  /** (optional) names the config in errors. */
  readonly configFile?: string;
}

export interface TuneAVideoStepGraph {
  readonly session: GraphSession;
  readonly params: readonly TrainableParameter[];
  readonly model: UNet3DConditionModel;
}

/** Builds and opens the training graph (inputs sample, timestep, encoder_hidden_states, target, parameters). */
export async function openTuneAVideoStepGraph(
  store: WeightStore,
  config: UNet2DConditionModelConfig,
  options: TuneAVideoGraphOptions,
): Promise<TuneAVideoStepGraph> {
  const shape = options.latentShape;
  const [batch, , frames] = shape;
  const tracker = trackLayouts(store);
  const g = new GraphBuilder({ name: "tune_a_video_step" });
  const w = WeightScope.bind(g, tracker.store);
  const model = new UNet3DConditionModel(w, config, frames, options.configFile);
  const sample = g.input("sample", "float32", [...shape]);
  const timestep = g.input("timestep", "float32", [batch]);
  const ehs = g.input("encoder_hidden_states", "float32", [batch, options.sequence, contextWidth(config)]);
  const target = g.input("target", "float32", [...shape]);
  const pred = model.forward({ sample, timestep, encoderHiddenStates: ehs });
  w.finish();
  const diff = op.Sub(g, pred, target);
  const loss = op.ReduceMean(g, op.Mul(g, diff, diff), [0, 1, 2, 3, 4], { keepdims: false });
  const params = makeTrainable(
    g,
    tracker,
    options.trainableModules ?? TUNE_A_VIDEO_TRAINABLE_MODULES,
    options.unmatchedModules ?? "refuse",
  );
  const { grads } = gradients(
    g,
    loss,
    params.map((p) => p.value),
  );
  g.output(pred, "model_pred");
  g.output(loss, "loss");
  grads.forEach((gr, i) => g.output(gr, `grad.${i}`));
  return { session: await openGraphSession(g), params, model };
}

export interface TuneAVideoStepInputs {
  /** Noisy latents [B, C, F, h, w]. */
  readonly noisy: HostTensor<"float32">;
  /** One timestep per video. */
  readonly timesteps: readonly number[];
  readonly encoderHiddenStates: HostTensor<"float32">;
  /** Noise (epsilon) or velocity (v_prediction), like `noisy`. */
  readonly target: HostTensor<"float32">;
}

export interface TuneAVideoStepResult {
  readonly loss: number;
  readonly modelPred: HostTensor<"float32">;
  /** Gradients before clipping, checkpoint layout, by parameter key. */
  readonly grads: ReadonlyMap<string, HostTensor<"float32">>;
  /** clip_grad_norm_'s total norm (before clipping) and the factor applied. */
  readonly gradNorm: number;
  readonly clipCoef: number;
}

export interface TuneAVideoOptimizerOptions {
  readonly learningRate?: number;
  readonly adamBeta1?: number;
  readonly adamBeta2?: number;
  readonly adamWeightDecay?: number;
  readonly adamEpsilon?: number;
  readonly maxGradNorm?: number;
}

/** The training graph plus the parameters' current values and AdamW (one `step` = one release iteration). */
export class TuneAVideoStepper {
  private readonly values = new Map<string, Float32Array>();
  readonly optimizer: AdamW;
  readonly maxGradNorm: number;

  private constructor(
    private readonly graph: TuneAVideoStepGraph,
    options: TuneAVideoOptimizerOptions,
  ) {
    const o = { ...TUNE_A_VIDEO_OPTIMIZER, ...options };
    if (!(o.maxGradNorm > 0))
      throw new InvalidArgumentError("maxGradNorm", "a positive number", o.maxGradNorm);
    this.optimizer = new AdamW({
      lr: o.learningRate,
      betas: [o.adamBeta1, o.adamBeta2],
      eps: o.adamEpsilon,
      weightDecay: o.adamWeightDecay,
    });
    this.maxGradNorm = o.maxGradNorm;
  }

  static async open(
    store: WeightStore,
    config: UNet2DConditionModelConfig,
    graphOptions: TuneAVideoGraphOptions,
    optimizer: TuneAVideoOptimizerOptions = {},
  ): Promise<TuneAVideoStepper> {
    const graph = await openTuneAVideoStepGraph(store, config, graphOptions);
    const stepper = new TuneAVideoStepper(graph, optimizer);
    try {
      for (const p of graph.params) stepper.values.set(p.name, Float32Array.from((await p.initial()).data));
    } catch (error) {
      await graph.session.release();
      throw error;
    }
    return stepper;
  }

  get params(): readonly TrainableParameter[] {
    return this.graph.params;
  }

  get model(): UNet3DConditionModel {
    return this.graph.model;
  }

  private feeds(inputs: TuneAVideoStepInputs): Record<string, HostTensor> {
    const feeds: Record<string, HostTensor> = {
      sample: inputs.noisy,
      timestep: tensor("float32", [inputs.timesteps.length], Float32Array.from(inputs.timesteps)),
      encoder_hidden_states: inputs.encoderHiddenStates,
      target: inputs.target,
    };
    for (const p of this.graph.params) {
      feeds[p.name] = tensor(
        "float32",
        p.value.shape.map(Number),
        this.values.get(p.name) ?? new Float32Array(),
      );
    }
    return feeds;
  }

  /** Forward + loss + gradients with the current parameters (no update). */
  async evaluate(
    inputs: TuneAVideoStepInputs,
  ): Promise<{ loss: number; modelPred: HostTensor<"float32">; raw: Record<string, HostTensor> }> {
    const out = await this.graph.session.run(this.feeds(inputs));
    const loss = out["loss"];
    const pred = out["model_pred"];
    if (!loss || !pred)
      throw new InvalidArgumentError("training graph outputs", "loss and model_pred", Object.keys(out));
    return { loss: Number(toFloat32(loss).data[0]), modelPred: toFloat32(pred), raw: out };
  }

  /**
   * One iteration: gradients, clip_grad_norm_, AdamW step. `check` (optional) sees the loss and the
   * gradient norm before anything is updated; throwing there leaves the parameters as they were.
   */
  async step(
    inputs: TuneAVideoStepInputs,
    lr?: number,
    check?: (loss: number, gradNorm: number) => void,
  ): Promise<TuneAVideoStepResult> {
    const { loss, modelPred, raw } = await this.evaluate(inputs);
    const gradArrays = new Map<string, Float32Array>();
    const grads = new Map<string, HostTensor<"float32">>();
    this.graph.params.forEach((p, i) => {
      const t = raw[`grad.${i}`];
      if (!t) return;
      const f = toFloat32(t);
      grads.set(p.name, toCheckpointLayout(p, f));
      gradArrays.set(p.name, Float32Array.from(f.data));
    });
    const gradNorm = globalGradNorm(gradArrays.values());
    check?.(loss, gradNorm);
    const clipCoef = Math.min(Math.fround(Math.fround(this.maxGradNorm) / Math.fround(gradNorm + 1e-6)), 1);
    clipGradNorm(gradArrays.values(), this.maxGradNorm);
    this.optimizer.step(this.values, gradArrays, lr);
    return { loss, modelPred, grads, gradNorm, clipCoef };
  }

  /** A trainable parameter's current value in checkpoint layout. */
  parameter(name: string): HostTensor<"float32"> | undefined {
    const p = this.graph.params.find((q) => q.name === name);
    const v = this.values.get(name);
    return p && v ? toCheckpointLayout(p, tensor("float32", p.value.shape.map(Number), v)) : undefined;
  }

  /** Every trainable parameter's current value, checkpoint layout. */
  trainedWeights(): Map<string, HostTensor<"float32">> {
    const out = new Map<string, HostTensor<"float32">>();
    for (const p of this.graph.params) {
      const t = this.parameter(p.name);
      if (t) out.set(p.name, t);
    }
    return out;
  }

  /** An optimiser buffer (`exp_avg`, `exp_avg_sq`) of a parameter, checkpoint layout. */
  optimizerBuffer(name: string, buffer: string): HostTensor<"float32"> | undefined {
    const p = this.graph.params.find((q) => q.name === name);
    const t = this.optimizer.state().tensors[`${name}.${buffer}`];
    if (!p || !t || numel(t.shape) !== numel(p.value.shape.map(Number))) return undefined;
    return toCheckpointLayout(p, tensor("float32", p.value.shape.map(Number), t.data));
  }

  async release(): Promise<void> {
    await this.graph.session.release();
  }
}
