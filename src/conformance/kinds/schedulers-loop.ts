/**
 * The denoising loops of a `schedulers` fixture: case.json `loops.<name>` driven by the analytic
 * `model_fn` (model_output = a * model_input + b * (t / d)), with the recorded noise replayed for
 * stochastic steps. Every step's model_input, model_output, prev_sample, pred_original_sample and (LCM)
 * denoised are compared with `<loop>.stepNN.<tensor>` in outputs.safetensors. A `set_timesteps_call`
 * (diffusers keyword arguments: LCM's original_inference_steps, strength, custom timesteps) replaces
 * set_timesteps(N) for the entries and loops that have one.
 */
import type { HostTensor } from "../../tensor.js";
import { shapeToString, shapesEqual, tensor } from "../../tensor.js";
import { DDPMScheduler } from "../../schedulers/ddpm.js";
import { LCMScheduler } from "../../schedulers/lcm.js";
import type { NoiseGenerator, Scheduler } from "../../schedulers/scheduler.js";
import { failedRow } from "../compare.js";
import {
  type CheckContext,
  checkScalar,
  checkTensor,
  checkTimesteps,
  isRecord,
  toF32,
} from "./schedulers-check.js";

const f32 = Math.fround;

/** model_output = a * model_input + b * (t / divisor), evaluated like the float32 torch expression. */
export interface ModelFn {
  readonly a: number;
  readonly b: number;
  readonly divisor: number;
}

const LOOP_BODY = [
  "scheduler.set_timesteps(N)",
  "latents = initial_noise * scheduler.init_noise_sigma",
  "for t in scheduler.timesteps:",
  "model_input = scheduler.scale_model_input(latents, t)",
  "model_output = model_fn(model_input, t)",
  "latents = scheduler.step(model_output, t, latents, **kw).prev_sample",
];
const NUM = "([-+]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][-+]?\\d+)?)";
const PYTHON_FN = new RegExp(
  `^\\s*model_output\\s*=\\s*${NUM}\\s*\\*\\s*model_input\\s*\\+\\s*${NUM}\\s*\\*\\s*\\(\\s*float\\(t\\)\\s*/\\s*${NUM}\\s*\\)\\s*$`,
);

/** Reads case.json `model_fn`; returns a note explaining why when it is not the supported form. */
export function parseModelFn(value: unknown): ModelFn | string {
  if (!isRecord(value)) return "case.json has no model_fn object";
  if (Array.isArray(value.loop_body)) {
    const body = value.loop_body.map((l) => (typeof l === "string" ? l.trim() : ""));
    if (body.length !== LOOP_BODY.length || body.some((l, i) => l !== LOOP_BODY[i])) {
      return `model_fn.loop_body differs from the supported loop (${LOOP_BODY.join("; ")})`;
    }
  }
  if (typeof value.python === "string") {
    const m = PYTHON_FN.exec(value.python);
    if (m === null) return `model_fn.python not understood: ${value.python}`;
    const fn = { a: Number(m[1]), b: Number(m[2]), divisor: Number(m[3]) };
    if (
      (typeof value.a === "number" && value.a !== fn.a) ||
      (typeof value.b === "number" && value.b !== fn.b)
    ) {
      return "model_fn.a / model_fn.b disagree with model_fn.python";
    }
    return fn;
  }
  if (typeof value.a === "number" && typeof value.b === "number")
    return { a: value.a, b: value.b, divisor: 1000 };
  return "model_fn has neither a python formula nor numeric a and b";
}

function evalModelFn(fn: ModelFn, x: HostTensor<"float32">, t: number): HostTensor<"float32"> {
  const a = f32(fn.a);
  const shift = f32(fn.b * (t / fn.divisor));
  return tensor(
    "float32",
    x.shape,
    x.data.map((v) => f32(f32(a * v) + shift)),
  );
}

/** Hands out one recorded noise tensor; remembers whether the scheduler asked for it. */
class ReplayNoise implements NoiseGenerator {
  calls = 0;
  constructor(private readonly noise: HostTensor<"float32">) {}
  randn(shape: readonly number[]): HostTensor<"float32"> {
    this.calls += 1;
    if (this.calls > 1)
      throw new Error("the step asked for noise more than once; the fixture recorded one tensor");
    if (!shapesEqual(shape, this.noise.shape)) {
      throw new Error(
        `noise of shape ${shapeToString(shape)} requested, recorded ${shapeToString(this.noise.shape)}`,
      );
    }
    return this.noise;
  }
}

const SET_TIMESTEPS_CALL_KEYS = new Set([
  "num_inference_steps",
  "original_inference_steps",
  "strength",
  "timesteps",
]);

function optionalNumber(call: Record<string, unknown>, key: string): number | undefined {
  const v = call[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number") throw new Error(`set_timesteps_call.${key} is not a number`);
  return v;
}

/**
 * Starts a run: `set_timesteps(n)`, or the keyword arguments of a case.json `set_timesteps_call`
 * (only LCMScheduler takes more than num_inference_steps). Throws on anything it cannot pass on.
 */
export function setTimestepsFor(scheduler: Scheduler, n: number, call: unknown): void {
  if (call === undefined) {
    scheduler.setTimesteps(n);
    return;
  }
  if (!isRecord(call)) throw new Error("set_timesteps_call is not an object");
  for (const key of Object.keys(call)) {
    if (!SET_TIMESTEPS_CALL_KEYS.has(key))
      throw new Error(`set_timesteps_call.${key} is not understood by this runner`);
  }
  const steps = optionalNumber(call, "num_inference_steps");
  const extra = Object.keys(call).filter((k) => k !== "num_inference_steps");
  if (extra.length === 0) {
    if (steps === undefined) throw new Error("set_timesteps_call has no arguments");
    scheduler.setTimesteps(steps);
    return;
  }
  if (scheduler instanceof DDPMScheduler && extra.length === 1 && extra[0] === "timesteps") {
    const custom = call.timesteps;
    if (steps !== undefined && custom !== null && custom !== undefined)
      throw new Error("set_timesteps_call: DDPMScheduler takes num_inference_steps or timesteps, not both");
    if (!Array.isArray(custom)) throw new Error("set_timesteps_call.timesteps is not a list");
    scheduler.setCustomTimesteps(custom.map((v) => (typeof v === "number" ? v : NaN)));
    return;
  }
  if (!(scheduler instanceof LCMScheduler))
    throw new Error(`${scheduler.className}.set_timesteps does not take ${extra.join(", ")}`);
  const original = optionalNumber(call, "original_inference_steps");
  const strength = optionalNumber(call, "strength");
  const custom = call.timesteps;
  if (custom !== undefined && custom !== null && !Array.isArray(custom))
    throw new Error("set_timesteps_call.timesteps is not a list");
  scheduler.setTimesteps(steps, {
    ...(original === undefined ? {} : { originalInferenceSteps: original }),
    ...(strength === undefined ? {} : { strength }),
    ...(Array.isArray(custom) ? { timesteps: custom.map((v) => (typeof v === "number" ? v : NaN)) } : {}),
  });
}

const LOOP_KEYS = new Set([
  "num_inference_steps",
  "eta",
  "use_clipped_model_output",
  "sample_shape",
  "initial_noise",
  "initial_latents",
  "init_noise_sigma",
  "timesteps",
  "per_step_tensors",
  "steps",
  "fp32_vs_fp64_final",
  "set_timesteps_call",
]);

/** Runs one loop, appending its rows to `ctx.rows`. */
export function runLoop(
  ctx: CheckContext,
  scheduler: Scheduler,
  loop: string,
  cfg: unknown,
  fn: ModelFn,
): void {
  const rows = ctx.rows;
  if (!isRecord(cfg)) {
    rows.push(failedRow(ctx.label, loop, `loops.${loop} is not an object`));
    return;
  }
  for (const key of Object.keys(cfg)) {
    if (!LOOP_KEYS.has(key))
      rows.push(
        failedRow(ctx.label, `${loop}.${key}`, `loops.${loop}.${key} is not understood by this runner`),
      );
  }
  const n = cfg.num_inference_steps;
  if (typeof n !== "number" || !Number.isInteger(n)) {
    rows.push(failedRow(ctx.label, loop, `loops.${loop}.num_inference_steps is not an integer`));
    return;
  }
  const eta = cfg.eta;
  if (eta !== null && eta !== undefined && typeof eta !== "number") {
    rows.push(failedRow(ctx.label, loop, `loops.${loop}.eta is not a number or null`));
    return;
  }
  const clipped = cfg.use_clipped_model_output;
  if (clipped !== null && clipped !== undefined && typeof clipped !== "boolean") {
    rows.push(failedRow(ctx.label, loop, `loops.${loop}.use_clipped_model_output is not a boolean or null`));
    return;
  }
  const noiseName =
    typeof cfg.initial_noise === "string"
      ? (cfg.initial_noise.trim().split(/\s+/)[0] ?? "")
      : `${loop}.initial_noise`;
  const initialNoise = ctx.inputs.get(noiseName);
  if (initialNoise === undefined) {
    rows.push(failedRow(ctx.label, noiseName, "initial noise tensor missing from the inputs"));
    return;
  }
  try {
    setTimestepsFor(scheduler, n, cfg.set_timesteps_call);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    rows.push(failedRow(ctx.label, `${loop}.timesteps`, `set_timesteps failed: ${message}`));
    return;
  }
  if (ctx.outputs.has(`${loop}.timesteps`)) checkTimesteps(ctx, `${loop}.timesteps`, scheduler.timesteps);
  if (typeof cfg.init_noise_sigma === "number") {
    checkScalar(ctx, `${loop}.init_noise_sigma`, scheduler.initNoiseSigma, cfg.init_noise_sigma);
  }
  const sigma0 = f32(scheduler.initNoiseSigma);
  let latents: HostTensor<"float32"> = tensor(
    "float32",
    initialNoise.shape,
    toF32(initialNoise).data.map((v) => f32(v * sigma0)),
  );
  if (ctx.outputs.has(`${loop}.latents_0`)) checkTensor(ctx, `${loop}.latents_0`, latents);

  const steps = Array.isArray(cfg.steps) ? cfg.steps : [];
  const count = scheduler.timesteps.length;
  if (Array.isArray(cfg.steps) && steps.length !== count) {
    rows.push(
      failedRow(
        ctx.label,
        `${loop}.steps`,
        `case.json lists ${steps.length} steps, the scheduler has ${count} timesteps`,
      ),
    );
  }
  const width = Math.max(2, String(count - 1).length);
  for (let i = 0; i < count; i++) {
    const t = scheduler.timesteps[i] ?? NaN;
    const prefix = `${loop}.step${String(i).padStart(width, "0")}`;
    const stepCfg: unknown = steps[i];
    const noiseRef =
      isRecord(stepCfg) && typeof stepCfg.noise_input === "string" ? stepCfg.noise_input : undefined;
    let generator: ReplayNoise | undefined;
    let noiseTensorName = "";
    if (noiseRef !== undefined) {
      noiseTensorName = ctx.inputs.has(noiseRef) ? noiseRef : `${loop}.${noiseRef}`;
      const noise = ctx.inputs.get(noiseTensorName);
      if (noise === undefined) {
        rows.push(failedRow(ctx.label, noiseTensorName, "recorded step noise missing from the inputs"));
        return;
      }
      generator = new ReplayNoise(toF32(noise));
    }
    try {
      const modelInput = scheduler.scaleModelInput(latents, t);
      checkTensor(ctx, `${prefix}.model_input`, modelInput);
      const modelOutput = evalModelFn(fn, modelInput, t);
      checkTensor(ctx, `${prefix}.model_output`, modelOutput);
      const options = {
        ...(generator === undefined ? {} : { generator }),
        ...(typeof eta === "number" ? { eta } : {}),
        ...(typeof clipped === "boolean" ? { useClippedModelOutput: clipped } : {}),
      };
      const out = scheduler.step(modelOutput, t, latents, options);
      checkTensor(ctx, `${prefix}.prev_sample`, out.prevSample);
      const predName = `${prefix}.pred_original_sample`;
      if (ctx.outputs.has(predName)) {
        if (out.predOriginalSample !== undefined) checkTensor(ctx, predName, out.predOriginalSample);
        else rows.push(failedRow(ctx.label, predName, "the scheduler returned no pred_original_sample"));
        ctx.checked.add(predName);
      }
      const denoisedName = `${prefix}.denoised`;
      if (ctx.outputs.has(denoisedName)) {
        if (out.denoised !== undefined) checkTensor(ctx, denoisedName, out.denoised);
        else rows.push(failedRow(ctx.label, denoisedName, "the scheduler returned no denoised sample"));
        ctx.checked.add(denoisedName);
      }
      if (generator !== undefined && generator.calls === 0) {
        rows.push(
          failedRow(
            ctx.label,
            noiseTensorName,
            "the fixture recorded noise for this step but the scheduler drew none",
          ),
        );
      }
      latents = out.prevSample;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      rows.push(failedRow(ctx.label, `${prefix}.prev_sample`, `step failed at t=${t}: ${message}`));
      return;
    }
  }
  if (Array.isArray(cfg.timesteps) && !ctx.outputs.has(`${loop}.timesteps`)) {
    const listed = cfg.timesteps.map((v) => (typeof v === "number" ? v : NaN));
    const worst = listed.reduce((w, v, k) => Math.max(w, Math.abs(v - (scheduler.timesteps[k] ?? NaN))), 0);
    rows.push({
      fixture: ctx.label,
      tensor: `${loop}.timesteps (case.json)`,
      maxAbsError: worst,
      tolerance: 1e-4,
      pass: worst <= 1e-4 && listed.length === count,
    });
  }
}
