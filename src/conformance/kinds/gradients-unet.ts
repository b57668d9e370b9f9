/**
 * The `gradients/unet_loss` fixture: one diffusers training step of a UNet2DConditionModel
 * (examples/text_to_image/train_text_to_image.py): DDPM add_noise, epsilon or v-prediction target,
 * mse loss over all elements, gradients wrt the UNet input, encoder_hidden_states and every
 * parameter, and their total norm (clip_grad_norm_'s value). One ONNX graph computes the forward
 * pass, the loss and all gradients (src/graph/autodiff); parameters are graph inputs.
 */
import { join, resolve } from "node:path";
import { ConfigError } from "../../errors.js";
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
    if (!want || typeof bound !== "number") return;
    rows.push(
      got ? compareTensors(fixture, name, got, want, bound) : failedRow(fixture, name, "not computed"),
    );
  };
  try {
    row("noisy_latents", noisy);
    for (const [prefix, targetValue, full] of [
      ["", noise, true],
      ["v_prediction.", velocity, false],
    ] as const) {
      const out = await session.run({ ...feeds, target: targetValue });
      row(`${prefix}target`, targetValue);
      row(`${prefix}model_pred`, out["model_pred"]);
      row(`${prefix}loss`, out["loss"]);
      row(`${prefix}grad.sample`, out["grad_out.0"]);
      row(`${prefix}grad.encoder_hidden_states`, out["grad_out.1"]);
      if (!full) continue;
      const paramGrads = params.map((p, i) => {
        const t = out[`grad_out.${i + 2}`];
        return t ? toCheckpointLayout(p, t) : undefined;
      });
      params.forEach((p, i) => row(`grad.${p.name}`, paramGrads[i]));
      const norm = globalGradNorm(paramGrads.map((t) => t?.data ?? null));
      row("grad_norm.total", tensor("float32", [], Float32Array.from([norm])));
    }
  } finally {
    await session.release();
  }
  return rows;
}
