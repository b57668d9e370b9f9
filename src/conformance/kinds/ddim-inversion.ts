/**
 * Conformance kind `ddim_inversion`: DDIM inversion of given clean latents with a DDIMInverseScheduler
 * and the fixture's UNet, then the DDIM reconstruction from the inverted latents (diffusers 0.26.3
 * StableDiffusionDiffEditPipeline.invert loop; src/pipeline/ddim-inversion.ts). From case.json:
 * `call` (steps, the two guidance scales, eta and the generator's seed for eta > 0), `inverse_scheduler` / `scheduler` (class +
 * `config_dir` holding scheduler_config.json, or an inline `config`), `weights.unet`, and the inputs
 * `clean_latents`, `prompt_embeds`, `negative_prompt_embeds`. Every step of both loops is compared
 * (`inversion.stepNN.*`, `reconstruction.stepNN.*`, integer timesteps exactly), and so are the
 * timestep lists and the round-trip error case.json records. Anything case.json asks for that this
 * runner does not understand, and any output nothing produced, is a failing row.
 */
import { ConfigError } from "../../errors.js";
import { UNet2DConditionModel } from "../../models/unet/unet-2d-condition.js";
import {
  type DDIMLoopOptions,
  type DDIMLoopResult,
  invertLatents,
  reconstructLatents,
} from "../../pipeline/ddim-inversion.js";
import { TorchGenerator } from "../../random/torch-generator.js";
import { DDIMInverseScheduler } from "../../schedulers/ddim-inverse.js";
import { fromConfigWithWarnings } from "../../schedulers/registry.js";
import type { Scheduler } from "../../schedulers/scheduler.js";
import { type HostTensor, maxAbsDiff, tensor, toFloat32 } from "../../tensor.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import {
  type ModelCase,
  callSeed,
  errorNote,
  fixtureScheduler,
  isRecord,
  outputNames,
  readModelCase,
  signalOption,
} from "./model-fixture.js";
import { fixtureUNet } from "./unet.js";

const TOP_KEYS = new Set([
  "fixture",
  "call",
  "weights",
  "inverse_scheduler",
  "scheduler",
  "reference",
  "prompt_embeds",
  "clean_latents_provenance",
  "loop",
  "inversion",
  "reconstruction",
  "roundtrip_max_abs_diff_reconstructed_vs_clean",
  "tensors",
  "tolerance",
  "inputs_file",
  "outputs_file",
]);
const CALL_KEYS = new Set([
  "num_inference_steps",
  "inpaint_strength",
  "inversion_guidance_scale",
  "reconstruction_guidance_scale",
  "eta",
  "generator",
  "generator_seed",
  "seed",
]);

function callNumber(file: string, call: Record<string, unknown>, key: string, fallback?: number): number {
  const v = call[key] ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new ConfigError(file, `call.${key}`, "a number", v);
  return v;
}

/** The scheduler of case.json `<key>` (see model-fixture.ts `fixtureScheduler`). */
async function schedulerOf(ctx: FixtureContext, key: string): Promise<Scheduler> {
  const { className, config, source } = await fixtureScheduler(ctx, key);
  return fromConfigWithWarnings(className, config, { file: source }).scheduler;
}

function input(mc: ModelCase, name: string): HostTensor<"float32"> {
  const t = mc.inputs.get(name);
  if (t === undefined)
    throw new ConfigError(mc.file, `inputs_file.tensors.${name}`, "an input tensor", undefined);
  return toFloat32(t);
}

/** Rows for what case.json lists besides tensors (timesteps, source timesteps, the round trip); only on mismatch. */
function listedChecks(
  ctx: FixtureContext,
  mc: ModelCase,
  inverse: Scheduler,
  runs: { inversion: DDIMLoopResult; reconstruction: DDIMLoopResult; clean: HostTensor },
): ConformanceRow[] {
  const rows: ConformanceRow[] = [];
  const c = ctx.caseJson;
  const lists: [string, unknown, readonly number[]][] = [
    ["inversion", c.inversion, runs.inversion.timesteps],
    ["reconstruction", c.reconstruction, runs.reconstruction.timesteps],
  ];
  for (const [key, section, ours] of lists) {
    if (!isRecord(section)) continue;
    const expected: [string, unknown, readonly number[]][] = [[`${key}.timesteps`, section.timesteps, ours]];
    if (key === "inversion") {
      const sources = ours.map((t) =>
        inverse instanceof DDIMInverseScheduler ? inverse.sourceTimestep(t) : NaN,
      );
      expected.push([
        `${key}.source_timesteps_used_for_alpha_t`,
        section.source_timesteps_used_for_alpha_t,
        sources,
      ]);
    }
    for (const [name, listed, actual] of expected) {
      if (listed === undefined) continue;
      if (!Array.isArray(listed) || listed.join() !== actual.join())
        rows.push(
          failedRow(
            mc.fixture,
            `${name} (case.json)`,
            `case.json lists ${JSON.stringify(listed)}, ours ${JSON.stringify(actual)}`,
          ),
        );
    }
  }
  const roundTrip = c.roundtrip_max_abs_diff_reconstructed_vs_clean;
  if (roundTrip !== undefined) {
    const ours = maxAbsDiff(runs.reconstruction.latents, runs.clean);
    if (typeof roundTrip !== "number" || !(Math.abs(ours - roundTrip) <= mc.tolerance))
      rows.push({
        fixture: mc.fixture,
        tensor: "roundtrip_max_abs_diff_reconstructed_vs_clean (case.json)",
        maxAbsError: typeof roundTrip === "number" ? Math.abs(ours - roundTrip) : NaN,
        tolerance: mc.tolerance,
        pass: false,
        note: `ours ${ours}`,
      });
  }
  return rows;
}

function loopText(ctx: FixtureContext): string {
  return typeof ctx.caseJson.loop === "string" ? ctx.caseJson.loop : "";
}

/**
 * DiffEdit's inpaint_strength: `call.inpaint_strength`, else the value the loop's description names
 * (default 1). The inversion keeps the first floor(N * s) inverse timesteps and the reconstruction
 * denoises from the same point, as DiffEdit's `invert` and `__call__` do.
 */
function inpaintStrength(ctx: FixtureContext, mc: ModelCase, call: Record<string, unknown>): number {
  const fromLoop = /inpaint_strength\s*=\s*([\d.]+)/.exec(loopText(ctx))?.[1];
  return callNumber(mc.file, call, "inpaint_strength", fromLoop === undefined ? 1 : Number(fromLoop));
}

/** Rows for what case.json names that this runner does not take (never skipped silently). */
function unsupportedRows(
  ctx: FixtureContext,
  mc: ModelCase,
  call: Record<string, unknown>,
): ConformanceRow[] {
  const rows: ConformanceRow[] = [];
  for (const key of Object.keys(ctx.caseJson)) {
    if (!TOP_KEYS.has(key))
      rows.push(failedRow(mc.fixture, key, `case.json key "${key}" is not understood by this runner`));
  }
  for (const key of Object.keys(call)) {
    if (!CALL_KEYS.has(key)) rows.push(failedRow(mc.fixture, `call.${key}`, "not understood by this runner"));
  }
  const reg = /num_reg_steps\s*=\s*(\d+)/.exec(loopText(ctx))?.[1];
  if (reg !== undefined && Number(reg) !== 0)
    rows.push(failedRow(mc.fixture, "loop", `num_reg_steps=${reg} (noise regularisation) is not supported`));
  return rows;
}

async function runDDIMInversion(ctx: FixtureContext): Promise<readonly ConformanceRow[]> {
  const mc = await readModelCase(ctx, "ddim_inversion");
  const call = ctx.caseJson.call;
  if (!isRecord(call)) throw new ConfigError(mc.file, "call", "an object of call arguments", call);
  const rows = unsupportedRows(ctx, mc, call);
  const steps = callNumber(mc.file, call, "num_inference_steps");
  const eta = callNumber(mc.file, call, "eta", 0);
  const strength = inpaintStrength(ctx, mc, call);
  // eta > 0: the reconstruction's step noise comes from the call's CPU generator
  const seed = callSeed(call);
  if (eta > 0 && seed === undefined)
    return [
      ...rows,
      failedRow(
        mc.fixture,
        "call.eta",
        "eta > 0 without call.generator: the reference drew its noise from torch's global generator, which the fixture does not record",
      ),
    ];
  const inverse = await schedulerOf(ctx, "inverse_scheduler");
  const forward = await schedulerOf(ctx, "scheduler");
  const clean = input(mc, "clean_latents");
  const embeds: Pick<DDIMLoopOptions, "promptEmbeds" | "negativePromptEmbeds"> = {
    promptEmbeds: input(mc, "prompt_embeds"),
    ...(mc.inputs.has("negative_prompt_embeds")
      ? { negativePromptEmbeds: input(mc, "negative_prompt_embeds") }
      : {}),
  };
  const traced = new Map<string, HostTensor>();
  const unet = await UNet2DConditionModel.load(await fixtureUNet(ctx, {}), signalOption(ctx));
  try {
    const inversion = await invertLatents(
      { unet, scheduler: inverse },
      {
        ...embeds,
        ...signalOption(ctx),
        latents: clean,
        numInferenceSteps: steps,
        strength,
        guidanceScale: callNumber(mc.file, call, "inversion_guidance_scale", 1),
        trace: (name, value) => traced.set(`inversion.${name}`, value),
      },
    );
    const reconstruction = await reconstructLatents(
      { unet, scheduler: forward },
      {
        ...embeds,
        ...signalOption(ctx),
        latents: inversion.latents,
        numInferenceSteps: steps,
        strength,
        guidanceScale: callNumber(mc.file, call, "reconstruction_guidance_scale", 1),
        eta,
        ...(seed === undefined ? {} : { generator: new TorchGenerator(seed) }),
        trace: (name, value) => traced.set(`reconstruction.${name}`, value),
      },
    );
    const int64 = (values: readonly number[]): HostTensor<"int64"> =>
      tensor(
        "int64",
        [values.length],
        BigInt64Array.from(values, (v) => BigInt(v)),
      );
    traced.set("inverted_latents", inversion.latents);
    traced.set("reconstructed_latents", reconstruction.latents);
    traced.set("inversion.timesteps", int64(inversion.timesteps));
    traced.set("reconstruction.timesteps", int64(reconstruction.timesteps));
    rows.push(...listedChecks(ctx, mc, inverse, { inversion, reconstruction, clean }));
  } catch (error) {
    rows.push(failedRow(mc.fixture, "-", errorNote(error)));
  } finally {
    await unet.release();
  }
  for (const name of outputNames(ctx, mc.outputs)) {
    const expected = mc.outputs.get(name);
    const actual = traced.get(name);
    if (expected === undefined)
      rows.push(failedRow(mc.fixture, name, "listed in case.json, missing from the outputs file"));
    else if (actual === undefined)
      rows.push(failedRow(mc.fixture, name, "not produced by the inversion or reconstruction"));
    else {
      const exact = expected.dtype === "int64" || expected.dtype === "int32";
      rows.push(compareTensors(mc.fixture, name, actual, expected, exact ? 0 : mc.tolerance));
    }
  }
  return rows;
}

export const ddimInversionKind: FixtureKind = {
  kind: "ddim_inversion",
  description:
    "DDIMInverseScheduler inversion of latents with a UNet and the DDIM reconstruction, step by step",
  run: runDDIMInversion,
};
