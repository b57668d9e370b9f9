/**
 * Conformance kind `tune_a_video`: showlab/Tune-A-Video's release code (diffusers 0.11.1) on a tiny
 * UNet. Built as case.json `build` says: the 2D UNet folder (weights.unet2d) plus the temporal
 * layers of weights.temporal. Checks:
 *
 * - the UNet3DConditionModel forward on DDPM-noised latents (`forward.noise_pred`), the
 *   `intermediate.*` outputs ([b, c, f, h, w]), the attention probes of one transformer block
 *   (`probe.attn1.*`: its norm1 output from our forward, and attn1 run on the given input;
 *   `probe.attn_temp.*`: from our forward);
 * - the training steps (`step<s>.*`, every step the inputs hold): loss, model_pred, gradients of the trainable parameters,
 *   clip_grad_norm_'s total and coefficient, AdamW parameters and state, and the forward after it;
 * - `ddim_inversion.latents.i` (the release's ddim_inversion with inv_prompt_embeds);
 * - the saved layout: our parameter keys and shapes equal `unet3d_state_dict_keys.json`, and the
 *   config we would save equals `unet3d_config.json`.
 *
 * Tolerances: case.json tolerance.per_tensor_max_abs_err per tensor.
 */
import { resolve } from "node:path";
import { ConfigError } from "../../errors.js";
import { readJsonFile } from "../../config/parse.js";
import { GraphBuilder, type Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { openWeightsFile } from "../../models/component-source.js";
import { UNET3D_OUTPUT, buildUNet3DConditionModel } from "../../models/unet3d/build.js";
import { parseUNet3DConditionModelConfig, unet3dConfigJson } from "../../models/unet3d/config.js";
import { fromVideo } from "../../models/unet3d/frames.js";
import { isTemporalKey, openUNetWeights, unionStore } from "../../models/unet3d/source.js";
import { CrossAttnDownBlock2D } from "../../models/unet/down-blocks.js";
import { UNetMidBlock2DCrossAttn } from "../../models/unet/mid-block.js";
import type { Transformer2DModel } from "../../models/unet/transformer-2d.js";
import { CrossAttnUpBlock2D } from "../../models/unet/up-blocks.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { WeightScope } from "../../nn/weights.js";
import { parseSchedulerConfig } from "../../schedulers/config.js";
import { makeNoiseTables } from "../../schedulers/betas.js";
import { type HostTensor, tensor, toFloat32 } from "../../tensor.js";
import { ddimLeadingTimesteps, tuneAVideoDDIMInversion } from "../../pipeline/tune-a-video.js";
import { openGraphSession } from "../../train/graph-session.js";
import { type ScheduleName, learningRateSchedule } from "../../train/optim/index.js";
import {
  TUNE_A_VIDEO_OPTIMIZER,
  TUNE_A_VIDEO_TRAINABLE_MODULES,
  TuneAVideoStepper,
} from "../../train/tune-a-video-graph.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { caseFile, fixtureName, isRecord, readTensorFile } from "./model-fixture.js";

const f32 = Math.fround;

/** The path in a case.json weights entry ("unet2d  (config.json + ...)" -> "unet2d"). */
function weightPath(ctx: FixtureContext, key: string): string {
  const weights = ctx.caseJson.weights;
  const entry = isRecord(weights) ? weights[key] : undefined;
  const rel = typeof entry === "string" ? entry.trim().split(/\s+/)[0] : undefined;
  if (!rel) throw new ConfigError(caseFile(ctx), `weights.${key}`, "a path relative to the fixture", entry);
  return resolve(ctx.dir, rel);
}

function need(m: ReadonlyMap<string, HostTensor>, key: string, file: string): HostTensor<"float32"> {
  const t = m.get(key);
  if (!t) throw new ConfigError(file, key, "a tensor in inputs.safetensors", undefined);
  return toFloat32(t);
}

/** DDPMScheduler.add_noise / get_velocity with float32 sqrt(acp[t]), sqrt(1 - acp[t]) per video. */
export function noisedLatents(
  acp: Float32Array,
  latents: HostTensor<"float32">,
  noise: HostTensor<"float32">,
  timesteps: readonly number[],
): { noisy: HostTensor<"float32">; velocity: HostTensor<"float32"> } {
  const per = latents.data.length / timesteps.length;
  const noisy = new Float32Array(latents.data.length);
  const velocity = new Float32Array(latents.data.length);
  for (let i = 0; i < noisy.length; i++) {
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

const scalar = (v: number): HostTensor<"float32"> => tensor("float32", [], Float32Array.from([v]));

async function runTuneAVideo(ctx: FixtureContext): Promise<ConformanceRow[]> {
  const file = caseFile(ctx);
  const fixture = fixtureName(ctx, "tune_a_video");
  const tolerance = isRecord(ctx.caseJson.tolerance)
    ? ctx.caseJson.tolerance.per_tensor_max_abs_err
    : undefined;
  if (!isRecord(tolerance))
    throw new ConfigError(
      file,
      "tolerance.per_tensor_max_abs_err",
      "an object of tensor -> bound",
      tolerance,
    );
  const inputs = await readTensorFile(ctx, "inputs_file", "inputs.safetensors");
  const outputs = await readTensorFile(ctx, "outputs_file", "outputs.safetensors");
  const rows: ConformanceRow[] = [];
  const compared = new Set<string>();
  const row = (name: string, got: HostTensor | undefined): void => {
    const want = outputs.get(name);
    const bound = tolerance[name];
    if (!want) return;
    compared.add(name);
    if (typeof bound !== "number")
      rows.push(failedRow(fixture, name, "no tolerance.per_tensor_max_abs_err entry for it in case.json"));
    else
      rows.push(
        got ? compareTensors(fixture, name, got, want, bound) : failedRow(fixture, name, "not computed"),
      );
  };

  // Weights and configs, as case.json `build`: from_pretrained_2d(unet2d) + temporal.safetensors.
  const unetDir = weightPath(ctx, "unet2d");
  const configName = resolve(unetDir, "config.json");
  const rawConfig = await readJsonFile(configName, "UNet config");
  const { config } = parseUNet3DConditionModelConfig(configName, rawConfig);
  const base = await openUNetWeights(unetDir);
  const temporal = await openWeightsFile(weightPath(ctx, "temporal"));
  const store = unionStore(base.store, temporal.store, `${unetDir} + temporal layers`);
  const schedPath = weightPath(ctx, "scheduler");
  const { config: sched } = parseSchedulerConfig(
    "DDIMScheduler",
    await readJsonFile(schedPath, "scheduler config"),
    {
      file: schedPath,
    },
  );
  // diffusers 0.11.1 (the release) has no rescale_betas_zero_snr: the betas as configured.
  const { alphasCumprod } = makeNoiseTables({ ...sched, rescale_betas_zero_snr: false }, schedPath);

  const latents = need(inputs, "latents", file);
  const ehs = need(inputs, "encoder_hidden_states", file);
  const noise = need(inputs, "step0.noise", file);
  const timesteps = Array.from(inputs.get("step0.timesteps")?.data ?? [], Number);
  if (timesteps.length === 0)
    throw new ConfigError(file, "step0.timesteps", "a tensor in inputs.safetensors", undefined);
  const frames = latents.shape[2] ?? 1;
  const { noisy, velocity } = noisedLatents(alphasCumprod, latents, noise, timesteps);
  row("noisy_latents.step0", noisy);

  // 1. forward with intermediates and the probes of one transformer block
  const calls = isRecord(ctx.caseJson.calls) ? ctx.caseJson.calls : {};
  const probeCall = typeof calls["probe.*"] === "string" ? calls["probe.*"] : "";
  const blockPath =
    /(\S+\.transformer_blocks\.\d+)/.exec(probeCall)?.[1] ??
    "down_blocks.0.attentions.0.transformer_blocks.0";
  const g = new GraphBuilder({ name: "tune_a_video_forward" });
  const built = buildUNet3DConditionModel(WeightScope.bind(g, store), config, {
    frames,
    intermediates: true,
    configFile: configName,
  });
  const model = built.model;
  const probeIn = outputs.get("probe.attn1.input");
  const m =
    /^(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.attentions\.(\d+)\.transformer_blocks\.(\d+)$/.exec(
      blockPath,
    );
  if (probeIn && m) {
    const [part = "", index = "0"] = (m[1] ?? "").split(".");
    const owner =
      part === "mid_block"
        ? model.unet.mid_block
        : (part === "down_blocks" ? model.unet.down_blocks : model.unet.up_blocks)[Number(index)];
    const transformer: Transformer2DModel | undefined =
      owner instanceof CrossAttnDownBlock2D ||
      owner instanceof CrossAttnUpBlock2D ||
      owner instanceof UNetMidBlock2DCrossAttn
        ? owner.attentions[Number(m[2])]
        : undefined;
    const block = transformer?.transformer_blocks[Number(m[3])];
    const resnet = g.value(`intermediate.${m[1]}.resnets.${m[2]}`);
    if (transformer && block) {
      const given = g.input("probe.attn1.given", "float32", [...probeIn.shape]);
      g.output(block.attn1.forward(given), "probe.attn1.output");
      if (resnet && Number(m[3]) === 0) {
        g.withScope("probe", () => {
          const normed = transformer.norm.forward(fromVideo(g, resnet));
          const tokens: Value = op.Transpose(g, op.Reshape(g, normed, [0, 0, -1]), [0, 2, 1]);
          g.output(block.norm1.forward(transformer.proj_in.forward(tokens)), "probe.attn1.input");
        });
      }
    }
  }
  for (const kind of ["input", "output"]) {
    const v = g.value(`intermediate.${blockPath}.attn_temp.${kind}`);
    if (v) g.output(op.Identity(g, v), `probe.attn_temp.${kind}`);
  }
  const forward = await openGraphSession(g);
  const run = async (sample: HostTensor<"float32">, t: number, context: HostTensor<"float32">) =>
    forward.run({
      sample,
      timestep: tensor("float32", [sample.shape[0] ?? 1], new Float32Array(sample.shape[0] ?? 1).fill(t)),
      encoder_hidden_states: context,
      ...(probeIn ? { "probe.attn1.given": probeIn } : {}),
    });
  try {
    const out = await forward.run({
      sample: noisy,
      timestep: tensor("float32", [timesteps.length], Float32Array.from(timesteps)),
      encoder_hidden_states: ehs,
      ...(probeIn ? { "probe.attn1.given": probeIn } : {}),
    });
    row("forward.noise_pred", out[UNET3D_OUTPUT]);
    for (const name of outputs.keys()) {
      if (name.startsWith("intermediate.")) row(name, out[name]);
      if (name.startsWith("probe.")) row(name, out[name]);
    }

    // 2. the release's ddim_inversion with the stored weights
    const invSteps = Array.isArray(calls["ddim_inversion_timesteps"])
      ? calls["ddim_inversion_timesteps"].length
      : 0;
    const invCount = [...outputs.keys()].filter((k) => k.startsWith("ddim_inversion.latents.")).length - 1;
    if (invSteps > 0 || invCount > 0) {
      const steps = invSteps > 0 ? invSteps : invCount;
      const inverted = await tuneAVideoDDIMInversion({
        unet: async (x, t, c) => toFloat32((await run(x, t, c))[UNET3D_OUTPUT] ?? x),
        latents,
        context: need(inputs, "inv_prompt_embeds", file),
        alphasCumprod,
        finalAlphaCumprod: sched.set_alpha_to_one ? 1 : (alphasCumprod[0] ?? 1),
        numInvSteps: steps,
        numTrainTimesteps: sched.num_train_timesteps,
        stepsOffset: sched.steps_offset,
      });
      inverted.forEach((x, i) => row(`ddim_inversion.latents.${i}`, x));
      const want = calls["ddim_inversion_timesteps"];
      if (Array.isArray(want)) {
        const got = ddimLeadingTimesteps(steps, sched.num_train_timesteps, sched.steps_offset);
        const same = JSON.stringify(got) === JSON.stringify(want.map(Number));
        rows.push({
          fixture,
          tensor: "ddim_inversion_timesteps",
          maxAbsError: same ? 0 : NaN,
          tolerance: 0,
          pass: same,
          note: `[${got.join(", ")}]${same ? "" : `, expected [${want.join(", ")}]`}`,
        });
      }
    }
  } finally {
    await forward.release();
  }

  // 3. one training step with the release's trainable modules and AdamW settings
  const hp = isRecord(ctx.caseJson.release_hyperparameters) ? ctx.caseJson.release_hyperparameters : {};
  const num = (key: string): number | undefined => (typeof hp[key] === "number" ? hp[key] : undefined);
  const modules = Array.isArray(hp["trainable_modules"])
    ? hp["trainable_modules"].map(String)
    : [...TUNE_A_VIDEO_TRAINABLE_MODULES];
  const optimizer = Object.fromEntries(
    (
      [
        ["learningRate", "learning_rate"],
        ["adamBeta1", "adam_beta1"],
        ["adamBeta2", "adam_beta2"],
        ["adamWeightDecay", "adam_weight_decay"],
        ["adamEpsilon", "adam_epsilon"],
        ["maxGradNorm", "max_grad_norm"],
      ] as const
    ).flatMap(([k, j]) => (num(j) === undefined ? [] : [[k, num(j)]])),
  );
  const shape = latents.shape as [number, number, number, number, number];
  const trainingSteps: { noise: HostTensor<"float32">; timesteps: number[] }[] = [];
  for (let s = 0; inputs.has(`step${s}.noise`); s++) {
    trainingSteps.push({
      noise: need(inputs, `step${s}.noise`, file),
      timesteps: Array.from(inputs.get(`step${s}.timesteps`)?.data ?? [], Number),
    });
  }
  const vPrediction = (ctx.caseJson.prediction_type ?? sched.prediction_type) === "v_prediction";
  const stepper = await TuneAVideoStepper.open(
    store,
    config,
    {
      latentShape: shape,
      sequence: ehs.shape[1] ?? 77,
      trainableModules: modules,
      // the release trains what its names match and passes over a name that matches nothing
      unmatchedModules: "ignore",
      configFile: configName,
    },
    optimizer,
  );
  try {
    // Every recorded step s (inputs step<s>.noise / step<s>.timesteps), in order.
    // train_tuneavideo.py: get_scheduler(num_warmup_steps=lr_warmup_steps * accumulation,
    // num_training_steps=max_train_steps * accumulation); scale_lr multiplies the rate by
    // accumulation * train_batch_size * processes (one process here).
    const accumulation = num("gradient_accumulation_steps") ?? 1;
    const baseLr = num("learning_rate") ?? TUNE_A_VIDEO_OPTIMIZER.learningRate;
    const schedule = learningRateSchedule(
      (typeof hp["lr_scheduler"] === "string" ? hp["lr_scheduler"] : "constant") as ScheduleName,
      hp["scale_lr"] === true ? baseLr * accumulation * (num("train_batch_size") ?? 1) : baseLr,
      {
        numWarmupSteps: (num("lr_warmup_steps") ?? 0) * accumulation,
        numTrainingSteps: (num("max_train_steps") ?? 500) * accumulation,
      },
    );
    for (const [s, step] of trainingSteps.entries()) {
      const noised =
        s === 0 ? { noisy, velocity } : noisedLatents(alphasCumprod, latents, step.noise, step.timesteps);
      if (s > 0) row(`noisy_latents.step${s}`, noised.noisy);
      const target = vPrediction ? noised.velocity : step.noise;
      const result = await stepper.step(
        { noisy: noised.noisy, timesteps: step.timesteps, encoderHiddenStates: ehs, target },
        schedule(s),
      );
      row(`step${s}.loss`, scalar(result.loss));
      row(`step${s}.model_pred`, result.modelPred);
      row(`step${s}.grad_norm.total`, scalar(result.gradNorm));
      row(`step${s}.clip_coef`, scalar(result.clipCoef));
      for (const p of stepper.params) {
        row(`step${s}.grad.${p.name}`, result.grads.get(p.name));
        row(`step${s}.param.${p.name}`, stepper.parameter(p.name));
        row(`step${s}.exp_avg.${p.name}`, stepper.optimizerBuffer(p.name, "exp_avg"));
        row(`step${s}.exp_avg_sq.${p.name}`, stepper.optimizerBuffer(p.name, "exp_avg_sq"));
      }
    }
    const trainable = Array.isArray(ctx.caseJson.trainable_parameters)
      ? ctx.caseJson.trainable_parameters.map(String)
      : [];
    const ours = new Set(stepper.params.map((p) => p.name));
    const same = trainable.length === ours.size && trainable.every((k) => ours.has(k));
    rows.push({
      fixture,
      tensor: "trainable_parameters",
      maxAbsError: same ? 0 : NaN,
      tolerance: 0,
      pass: same,
      note: `${ours.size} trainable tensors${same ? "" : `, case.json lists ${trainable.length}`}`,
    });
    const after = await stepper.evaluate({
      noisy,
      timesteps,
      encoderHiddenStates: ehs,
      target: vPrediction ? velocity : noise,
    });
    row("after_training.forward.noise_pred", after.modelPred);
  } finally {
    await stepper.release();
  }

  // 4. the saved layout: state-dict keys + shapes, and config.json
  rows.push(...(await savedLayoutRows(ctx, fixture, built.weights.bound, g, store, rawConfig)));
  for (const name of outputs.keys()) {
    if (!compared.has(name)) rows.push(failedRow(fixture, name, "not computed by this runner"));
  }
  return rows;
}

async function savedLayoutRows(
  ctx: FixtureContext,
  fixture: string,
  bound: number,
  g: GraphBuilder,
  store: WeightStore,
  rawConfig: unknown,
): Promise<ConformanceRow[]> {
  const rows: ConformanceRow[] = [];
  const saved = isRecord(ctx.caseJson.saved_unet) ? ctx.caseJson.saved_unet : {};
  const keysFile =
    typeof saved["state_dict_keys"] === "string"
      ? saved["state_dict_keys"].trim().split(/\s+/)[0]
      : undefined;
  if (keysFile) {
    const json = await readJsonFile(resolve(ctx.dir, keysFile), "state dict keys");
    const want = isRecord(json) && isRecord(json["keys"]) ? json["keys"] : {};
    // The graph binds every key it needs (mis-shaped ones would have failed the build) in its own
    // layout (Linear weights transposed): compare key sets with the graph, shapes with the bound file.
    const have = new Set(g.initializers.map((init) => init.name));
    const wantKeys = Object.keys(want);
    const missing = wantKeys.filter((k) => !have.has(k));
    const extra = [...have].filter((k) => !(k in want));
    const misshaped = wantKeys.filter((k) => {
      const s = want[k];
      const info = store.info(k);
      return !Array.isArray(s) || !info || JSON.stringify(s.map(Number)) !== JSON.stringify([...info.shape]);
    });
    const ok = missing.length + extra.length + misshaped.length === 0;
    const temporalCount = wantKeys.filter(isTemporalKey).length;
    rows.push({
      fixture,
      tensor: "saved_unet.state_dict_keys",
      maxAbsError: ok ? 0 : NaN,
      tolerance: 0,
      pass: ok,
      note: ok
        ? `${wantKeys.length} keys (${temporalCount} temporal), ${bound} bound`
        : `missing ${missing.slice(0, 3).join(", ")}; unexpected ${extra.slice(0, 3).join(", ")}; mis-shaped ${misshaped.slice(0, 3).join(", ")}`,
    });
  }
  const configFile = typeof saved["config"] === "string" ? saved["config"].trim().split(/\s+/)[0] : undefined;
  if (configFile && isRecord(rawConfig)) {
    const want = await readJsonFile(resolve(ctx.dir, configFile), "saved UNet3D config");
    const got = unet3dConfigJson(rawConfig);
    const ok = JSON.stringify(got) === JSON.stringify(sortKeys(want));
    rows.push({
      fixture,
      tensor: "saved_unet.config",
      maxAbsError: ok ? 0 : NaN,
      tolerance: 0,
      pass: ok,
      note: ok
        ? "config.json as UNet3DConditionModel.save_pretrained writes it"
        : "differs from the release's config.json",
    });
  }
  return rows;
}

function sortKeys(v: unknown): unknown {
  return isRecord(v)
    ? Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, v[k]]),
      )
    : v;
}

export const tuneAVideoKind: FixtureKind = {
  kind: "tune_a_video",
  description:
    "Tune-A-Video UNet3DConditionModel: forward, probes, one training step, DDIM inversion, saved layout",
  run: runTuneAVideo,
};
