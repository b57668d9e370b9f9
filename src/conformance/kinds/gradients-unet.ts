/**
 * The `gradients/unet_loss` fixture: one diffusers training step of a UNet2DConditionModel
 * (examples/text_to_image/train_text_to_image.py): DDPM add_noise, the target of a prediction type
 * (epsilon: the noise, v_prediction: the velocity, sample: the clean latents), mse loss over all
 * elements, gradients wrt the UNet input, encoder_hidden_states and every parameter, and their total
 * norm (clip_grad_norm_'s value). case.json `prediction_type_main` names the un-prefixed tensors,
 * `prediction_type_also` the `<type>.`-prefixed ones. One ONNX graph computes the forward pass, the
 * loss and all gradients (src/graph/autodiff); parameters and the target are graph inputs.
 */
import { join, resolve } from "node:path";
import { ConfigError, UnsupportedError } from "../../errors.js";
import { GraphBuilder } from "../../graph/builder.js";
import { type BackwardOptions, gradients } from "../../graph/autodiff/index.js";
import * as op from "../../graph/ops/index.js";
import { readJsonFile } from "../../config/parse.js";
import { parseUNet2DConditionModelConfig } from "../../models/unet/config.js";
import { UNet2DConditionModel } from "../../models/unet/unet-2d-condition.js";
import { safetensorsStore } from "../../nn/weight-store.js";
import { WeightScope } from "../../nn/weights.js";
import { parseSchedulerConfig } from "../../schedulers/config.js";
import { makeNoiseTables } from "../../schedulers/betas.js";
import { type HostTensor, tensor, toFloat32 } from "../../tensor.js";
import { globalGradNorm } from "../../train/optim/index.js";
import { openGraphSession } from "../../train/graph-session.js";
import { makeTrainable, toCheckpointLayout, trackLayouts } from "../../train/parameters.js";
import { openSafetensors } from "../../weights/safetensors.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext } from "../types.js";
import { caseFile, fixtureName, isRecord, readTensorFile } from "./model-fixture.js";

const f32 = Math.fround;

function mustTensor(m: ReadonlyMap<string, HostTensor>, key: string, file: string): HostTensor<"float32"> {
  const t = m.get(key);
  if (!t) throw new ConfigError(file, key, "a tensor in inputs.safetensors", undefined);
  return toFloat32(t);
}

/** diffusers add_noise / get_velocity with float32 sqrt(acp[t]) and sqrt(1 - acp[t]) per batch item. */
function noiseTargets(
  acp: Float32Array,
  latents: HostTensor<"float32">,
  noise: HostTensor<"float32">,
  timesteps: readonly number[],
): { noisy: HostTensor<"float32">; velocity: HostTensor<"float32"> } {
  const per = latents.data.length / timesteps.length;
  const noisy = new Float32Array(latents.data.length);
  const velocity = new Float32Array(latents.data.length);
  for (let i = 0; i < latents.data.length; i++) {
    const a = acp[timesteps[Math.floor(i / per)] ?? 0] ?? 0;
    const sa = f32(Math.sqrt(a));
    const sb = f32(Math.sqrt(f32(1 - a)));
    const x = latents.data[i] ?? 0;
    const n = noise.data[i] ?? 0;
    noisy[i] = f32(f32(sa * x) + f32(sb * n));
    velocity[i] = f32(f32(sa * n) - f32(sb * x));
  }
  return {
    noisy: tensor("float32", latents.shape, noisy),
    velocity: tensor("float32", latents.shape, velocity),
  };
}

/** The tensors a training target is made of. */
export interface TargetSources {
  readonly noise: HostTensor<"float32">;
  readonly velocity: HostTensor<"float32">;
  readonly latents: HostTensor<"float32">;
}

const TARGETS = {
  epsilon: (t: TargetSources) => t.noise,
  v_prediction: (t: TargetSources) => t.velocity,
  sample: (t: TargetSources) => t.latents,
} as const;

/** The training target for a diffusers `prediction_type`; other types are refused. */
export function trainingTarget(predictionType: string, sources: TargetSources): HostTensor<"float32"> {
  if (!Object.hasOwn(TARGETS, predictionType))
    throw new UnsupportedError(`prediction_type "${predictionType}"`, {
      hint: `the training target is known for ${Object.keys(TARGETS).join(", ")}`,
    });
  return TARGETS[predictionType as keyof typeof TARGETS](sources);
}

/** One training step to compare: its prediction type and the prefix of its tensors' names. */
export interface PredictionRun {
  readonly predictionType: string;
  readonly prefix: string;
}

/**
 * The runs of a unet_loss fixture: `prediction_type_main` (default: the scheduler's) without a
 * prefix, then each of `prediction_type_also` (a name, a list or null; when absent, every known
 * type whose `<type>.loss` the outputs file holds) as `<type>.`.
 */
export function predictionRuns(
  caseJson: Readonly<Record<string, unknown>>,
  file: string,
  schedulerType: string,
  outputNames: Iterable<string>,
): PredictionRun[] {
  const main = caseJson.prediction_type_main ?? schedulerType;
  if (typeof main !== "string")
    throw new ConfigError(file, "prediction_type_main", "a prediction type name", main);
  const also = caseJson.prediction_type_also;
  let others: string[];
  if (also === undefined) {
    const names = new Set(outputNames);
    others = Object.keys(TARGETS).filter((t) => t !== main && names.has(`${t}.loss`));
  } else if (also === null) others = [];
  else if (typeof also === "string") others = [also];
  else if (Array.isArray(also) && also.every((t) => typeof t === "string")) others = also as string[];
  else throw new ConfigError(file, "prediction_type_also", "a prediction type name or a list of them", also);
  return [
    { predictionType: main, prefix: "" },
    ...others.map((t) => ({ predictionType: t, prefix: `${t}.` })),
  ];
}

/** Test hooks of the unet_loss run: build the backward with recompute, see the graph. */
export interface UNetLossOptions {
  readonly checkpoint?: BackwardOptions["checkpoint"];
  readonly onGraph?: (g: GraphBuilder) => void;
}

export async function runUNetLossFixture(
  ctx: FixtureContext,
  options: UNetLossOptions = {},
): Promise<ConformanceRow[]> {
  const file = caseFile(ctx);
  const fixture = fixtureName(ctx, "gradients/unet_loss");
  const weights = ctx.caseJson.weights;
  const schedulerConfig = ctx.caseJson.scheduler_config;
  if (typeof weights !== "string") throw new ConfigError(file, "weights", "a UNet folder", weights);
  if (typeof schedulerConfig !== "string")
    throw new ConfigError(file, "scheduler_config", "a scheduler_config.json path", schedulerConfig);
  const tol = isRecord(ctx.caseJson.tolerance) ? ctx.caseJson.tolerance.per_tensor_max_abs_err : undefined;
  if (!isRecord(tol))
    throw new ConfigError(file, "tolerance.per_tensor_max_abs_err", "an object of tensor -> bound", tol);
  const inputs = await readTensorFile(ctx, "inputs_file", "inputs.safetensors");
  const outputs = await readTensorFile(ctx, "outputs_file", "outputs.safetensors");
  const latents = mustTensor(inputs, "latents", file);
  const noise = mustTensor(inputs, "noise", file);
  const ehs = mustTensor(inputs, "encoder_hidden_states", file);
  const tsRaw = inputs.get("timesteps");
  if (!tsRaw) throw new ConfigError(file, "timesteps", "a tensor in inputs.safetensors", undefined);
  const timesteps = Array.from(tsRaw.data as ArrayLike<number | bigint>, Number);

  // 1. noisy latents and targets (DDPMScheduler tables from the scheduler config)
  const schedPath = resolve(ctx.dir, schedulerConfig);
  const { config: sched } = parseSchedulerConfig(
    "DDPMScheduler",
    await readJsonFile(schedPath, "scheduler config"),
    {
      file: schedPath,
    },
  );
  const { alphasCumprod } = makeNoiseTables(sched, schedPath);
  const { noisy, velocity } = noiseTargets(alphasCumprod, latents, noise, timesteps);
  const runs = predictionRuns(ctx.caseJson, file, sched.prediction_type, outputs.keys()).map((r) => ({
    ...r,
    target: trainingTarget(r.predictionType, { noise, velocity, latents }),
  }));

  // 2. one graph: UNet forward, mse loss, gradients wrt sample, encoder_hidden_states and every parameter
  const unetDir = resolve(ctx.dir, weights);
  const { config } = parseUNet2DConditionModelConfig(
    join(unetDir, "config.json"),
    await readJsonFile(join(unetDir, "config.json"), "UNet config"),
  );
  const weightFile = await openSafetensors(join(unetDir, "diffusion_pytorch_model.safetensors"));
  const tracker = trackLayouts(safetensorsStore(weightFile));
  const g = new GraphBuilder({ name: "unet_loss" });
  const w = WeightScope.bind(g, tracker.store);
  const model = new UNet2DConditionModel(w, config, join(unetDir, "config.json"));
  const sample = g.input("sample", "float32", [...noisy.shape]);
  const timestep = g.input("timestep", "float32", [timesteps.length]);
  const context = g.input("encoder_hidden_states", "float32", [...ehs.shape]);
  const target = g.input("target", "float32", [...noisy.shape]);
  const pred = model.forward({ sample, timestep, encoderHiddenStates: context });
  w.finish();
  const diff = op.Sub(g, pred, target);
  const loss = op.ReduceMean(
    g,
    op.Mul(g, diff, diff),
    pred.shape.map((_, i) => i),
    { keepdims: false },
  );
  const params = makeTrainable(g, tracker);
  const { grads } = gradients(
    g,
    loss,
    [sample, context, ...params.map((p) => p.value)],
    options.checkpoint ? { checkpoint: options.checkpoint } : {},
  );
  options.onGraph?.(g);
  g.output(pred, "model_pred");
  g.output(loss, "loss");
  grads.forEach((gr, i) => g.output(gr, `grad_out.${i}`));

  const feeds: Record<string, HostTensor> = {
    sample: noisy,
    timestep: tensor("float32", [timesteps.length], Float32Array.from(timesteps)),
    encoder_hidden_states: ehs,
  };
  for (const p of params) feeds[p.name] = await p.initial();
  const session = await openGraphSession(g);
  const rows: ConformanceRow[] = [];
  const row = (name: string, got: HostTensor | undefined): void => {
    const want = outputs.get(name);
    const bound = tol[name];
    if (!want && bound === undefined) return; // not part of the fixture
    if (!want) rows.push(failedRow(fixture, name, "no reference in the outputs file"));
    else if (typeof bound !== "number")
      rows.push(failedRow(fixture, name, "no per_tensor_max_abs_err bound"));
    else if (!got) rows.push(failedRow(fixture, name, "not computed"));
    else rows.push(compareTensors(fixture, name, got, want, bound));
  };
  try {
    for (const { prefix, target: targetValue } of runs) {
      const out = await session.run({ ...feeds, target: targetValue });
      row(`${prefix}noisy_latents`, noisy);
      row(`${prefix}target`, targetValue);
      row(`${prefix}model_pred`, out["model_pred"]);
      row(`${prefix}loss`, out["loss"]);
      row(`${prefix}grad.sample`, out["grad_out.0"]);
      row(`${prefix}grad.encoder_hidden_states`, out["grad_out.1"]);
      const paramGrads = params.map((p, i) => {
        const t = out[`grad_out.${i + 2}`];
        return t ? toCheckpointLayout(p, t) : undefined;
      });
      params.forEach((p, i) => row(`${prefix}grad.${p.name}`, paramGrads[i]));
      const norm = globalGradNorm(paramGrads.map((t) => t?.data ?? null));
      row(`${prefix}grad_norm.total`, tensor("float32", [], Float32Array.from([norm])));
    }
  } finally {
    await session.release();
  }
  // every reference tensor gets a row: those no run computed fail
  const done = new Set(rows.map((r) => r.tensor));
  for (const name of outputs.keys())
    if (!done.has(name)) rows.push(failedRow(fixture, name, "not computed by this runner"));
  return rows;
}
