/**
 * Conformance kind `uni_controlnet`: Uni-ControlNet (ShihaoZhaoZSH/Uni-ControlNet, original code) on
 * the checkpoint case.json `weights.ckpt` names, with the architecture of case.json `config`:
 *
 * - the global adapter's tokens (on `global_emb` and on zeros);
 * - `model.apply_model` as `calls` describes it: `eps.both`, `eps.local_only` (global input zeros),
 *   `eps.global_only` (all local maps zeros), `eps.both.global_strength0`, `eps.both.per_residual_scales`,
 *   `eps.both.default_strengths`, `unet.zero_residuals` (the plain UNet), and the intermediates of the
 *   `eps.both` call (`both.*`: context, the adapter's raw residuals, time embeddings, feature maps,
 *   FDN and injected-block outputs, the UNet's middle block before the residual);
 * - the demo's DDIMSampler step by step (`ddim.stepNN.*`: coefficients, both branches, guided eps,
 *   pred_x0, x_prev; the uncond branch gets the negative context, a zero global embedding and the
 *   same local maps) through the pipeline's own functions (../../pipeline/uni-controlnet.ts), and
 *   one guidance-1 step (`ddim_cfg1.*`: global_strength silently 1).
 *
 * Tolerances: `tolerance.suggested_max_abs_err` for the components, `ddim_suggested_max_abs_err` for
 * every `ddim*` tensor. `checkpoint` (option) replaces the file (e.g. a .safetensors conversion).
 */
import { resolve } from "node:path";
import { ConfigError } from "../../errors.js";
import { parseUniControlNetConfig } from "../../models/uni-controlnet/config.js";
import { type UniControlNet, loadUniControlNet } from "../../models/uni-controlnet/runner.js";
import { UNET_OUTPUT } from "../../models/unet/build.js";
import {
  appendGlobalTokens,
  effectiveGlobalStrength,
  predictUniNoise,
  uniContexts,
} from "../../pipeline/uni-controlnet.js";
import { LdmDdimSampler } from "../../schedulers/ldm-ddim.js";
import { type HostTensor, tensor, toFloat32 } from "../../tensor.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { caseRecord, readModelCase, uncomparedRows } from "./model-fixture.js";

export interface UniFixtureOptions {
  /** (optional) a checkpoint to load instead of case.json `weights.ckpt` (same tensors, e.g. .safetensors). */
  readonly checkpoint?: string;
}

type F32 = HostTensor<"float32">;

function numberField(record: Record<string, unknown>, file: string, field: string): number {
  const v = record[field.split(".").pop() ?? field];
  if (typeof v !== "number" || !Number.isFinite(v)) throw new ConfigError(file, field, "a number", v);
  return v;
}

/** A keyword argument of the DDIM call string in case.json (`eta=0.0`). */
function callKwarg(call: unknown, file: string, name: string): number {
  const m = typeof call === "string" ? new RegExp(`\\b${name}=([-+0-9.eE]+)`).exec(call) : null;
  const v = m ? Number(m[1]) : NaN;
  if (!Number.isFinite(v))
    throw new ConfigError(file, `ddim.call (${name}=)`, "a call with a numeric argument", call);
  return v;
}

/** uint8 [B, H, W, C] / 255 -> float32 [B, C, H, W] (the original's `'b h w c -> b c h w'`). */
function mapsFromUint8(t: HostTensor, file: string): F32 {
  const [b = 0, h = 0, w = 0, c = 0] = t.shape;
  if (t.dtype !== "uint8" || t.shape.length !== 4)
    throw new ConfigError(file, "local_conditions_uint8", "uint8 [B, H, W, C]", t.shape);
  const out = new Float32Array(b * c * h * w);
  const src = t.data as Uint8Array;
  for (let n = 0; n < b; n++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++)
          out[((n * c + k) * h + y) * w + x] = Math.fround((src[((n * h + y) * w + x) * c + k] ?? 0) / 255);
  return tensor("float32", [b, c, h, w], out);
}

const scalar = (v: number): F32 => tensor("float32", [], Float32Array.of(v));
const int64Scalar = (v: number): HostTensor => tensor("int64", [], BigInt64Array.of(BigInt(v)));

export async function runUniControlNetFixture(
  ctx: FixtureContext,
  options: UniFixtureOptions = {},
): Promise<ConformanceRow[]> {
  const mc = await readModelCase(ctx, "uni_controlnet");
  const file = mc.file;
  const c = ctx.caseJson;
  const tol = caseRecord(c.tolerance, file, "tolerance");
  const ddimTol =
    tol.ddim_suggested_max_abs_err === undefined
      ? mc.tolerance
      : numberField(tol, file, "tolerance.ddim_suggested_max_abs_err");
  const weights = caseRecord(c.weights, file, "weights");
  if (typeof weights.ckpt !== "string")
    throw new ConfigError(file, "weights.ckpt", "a checkpoint path relative to the fixture", weights.ckpt);
  const config = parseUniControlNetConfig(`${file} (config)`, c.config).config;
  const strengths = caseRecord(c.strengths, file, "strengths");
  const ls = numberField(strengths, file, "strengths.local_strength");
  const gs = numberField(strengths, file, "strengths.global_strength");
  const perResidual = strengths.per_residual_scales;
  const ddim = caseRecord(c.ddim, file, "ddim");
  const requestedSteps = numberField(ddim, file, "ddim.requested_steps");
  const eta = callKwarg(ddim.call, file, "eta");
  const guidance = callKwarg(ddim.call, file, "unconditional_guidance_scale");
  const ddimGs = callKwarg(ddim.call, file, "global_strength");

  const input = (name: string): HostTensor => {
    const t = mc.inputs.get(name);
    if (t === undefined)
      throw new ConfigError(file, `inputs_file (${name})`, "a tensor in the inputs file", undefined);
    return t;
  };
  const f32 = (name: string): F32 => toFloat32(input(name));
  const maps = mapsFromUint8(input("local_conditions_uint8"), file);
  const xNoisy = f32("x_noisy");
  const timesteps = input("timesteps");
  const textCond = f32("context_cond");
  const textUncond = f32("context_uncond");
  const globalEmb = f32("global_emb");
  const xT = f32("x_T");
  const batch = xNoisy.shape[0] ?? 1;
  const zeroEmb = tensor("float32", globalEmb.shape);
  // eta > 0: the sampler's noise_like draws, given as inputs `ddim_noise` [steps, B, C, h, w].
  const ddimNoise = mc.inputs.get("ddim_noise");
  const stepNoise = (i: number, like: F32): { varianceNoise?: F32 } => {
    if (ddimNoise === undefined) return {};
    const n = like.data.length;
    const all = toFloat32(ddimNoise);
    if (all.data.length < (i + 1) * n)
      throw new ConfigError(file, "inputs ddim_noise", `[steps, ${like.shape.join(", ")}]`, ddimNoise.shape);
    return { varianceNoise: tensor("float32", like.shape, all.data.slice(i * n, (i + 1) * n)) };
  };
  const zeroMaps = tensor("float32", maps.shape);

  const rows: ConformanceRow[] = [];
  const compared = new Set<string>();
  const compare = (name: string, actual: HostTensor | undefined): void => {
    const expected = mc.outputs.get(name);
    if (expected === undefined || compared.has(name)) return;
    compared.add(name);
    const tolerance = name.startsWith("ddim") ? ddimTol : mc.tolerance;
    rows.push(
      actual === undefined
        ? failedRow(mc.fixture, name, "not produced")
        : compareTensors(mc.fixture, name, actual, expected, tolerance),
    );
  };
  const guarded = async (name: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (error) {
      compared.add(name);
      rows.push(
        failedRow(mc.fixture, name, `error: ${error instanceof Error ? error.message : String(error)}`),
      );
    }
  };

  const uni: UniControlNet = await loadUniControlNet(options.checkpoint ?? resolve(ctx.dir, weights.ckpt), {
    config,
    intermediates: true,
  });
  try {
    const tokens = await uni.globalAdapter.tokens(globalEmb);
    const zeroTokens = await uni.globalAdapter.tokens(zeroEmb);
    compare("global_adapter.tokens", tokens);
    compare("global_adapter.tokens_zero_input", zeroTokens);

    /** UniControlNet.apply_model with explicit strengths; returns eps and the runs' outputs. */
    const applyModel = async (
      x: F32,
      t: HostTensor | number,
      text: F32,
      globalTokens: F32,
      localMaps: F32,
      scales: number | readonly number[],
      globalStrength: number,
    ): Promise<{
      eps: F32;
      context: F32;
      local: Record<string, HostTensor>;
      unet: Record<string, HostTensor>;
    }> => {
      const context = appendGlobalTokens(text, globalTokens, globalStrength);
      const local = await uni.localAdapter.run({
        sample: x,
        timestep: t,
        encoderHiddenStates: context,
        localConditions: localMaps,
        scales,
      });
      const res = uni.localAdapter.residuals(local);
      const unet = await uni.unet.run({
        sample: x,
        timestep: t,
        encoderHiddenStates: context,
        downBlockAdditionalResiduals: res.downBlockResSamples,
        midBlockAdditionalResidual: res.midBlockResSample,
      });
      return { eps: toFloat32(unet[UNET_OUTPUT] ?? tensor("float32", [0])), context, local, unet };
    };

    // apply_model calls
    await guarded("eps.both", async () => {
      const both = await applyModel(xNoisy, timesteps, textCond, tokens, maps, ls, gs);
      compare("eps.both", both.eps);
      compare("both.context", both.context);
      const unetNames: Record<string, string> = {
        time_proj: "t_emb",
        time_embedding: "emb",
        mid_block: "middle_block_out_before_residual",
      };
      for (const [k, v] of Object.entries(both.unet)) {
        const name = unetNames[k.replace(/^intermediate\./, "")];
        if (name !== undefined) compare(`both.unet.${name}`, v);
      }
      for (const [k, v] of Object.entries(both.local)) {
        if (!k.startsWith("intermediate.")) continue;
        const rest = k.slice("intermediate.".length).replace(/^time_embedding$/, "emb");
        compare(`both.local_adapter.${rest}`, v);
        compare(`local_adapter.${rest}`, v);
      }
      const plain = await uni.unet.run({
        sample: xNoisy,
        timestep: timesteps,
        encoderHiddenStates: both.context,
      });
      compare("unet.zero_residuals", plain[UNET_OUTPUT]);
    });
    const calls: [string, () => Promise<F32>][] = [
      [
        "eps.local_only",
        async () => (await applyModel(xNoisy, timesteps, textCond, zeroTokens, maps, ls, gs)).eps,
      ],
      [
        "eps.global_only",
        async () => (await applyModel(xNoisy, timesteps, textCond, tokens, zeroMaps, ls, gs)).eps,
      ],
      [
        "eps.both.global_strength0",
        async () => (await applyModel(xNoisy, timesteps, textCond, tokens, maps, ls, 0)).eps,
      ],
      [
        "eps.both.per_residual_scales",
        async () => {
          if (!Array.isArray(perResidual) || !perResidual.every((v) => typeof v === "number"))
            throw new ConfigError(file, "strengths.per_residual_scales", "a list of numbers", perResidual);
          return (await applyModel(xNoisy, timesteps, textCond, tokens, maps, perResidual as number[], gs))
            .eps;
        },
      ],
      [
        "eps.both.default_strengths",
        async () => (await applyModel(xNoisy, timesteps, textCond, tokens, maps, 1, 1)).eps,
      ],
    ];
    for (const [name, run] of calls) await guarded(name, async () => compare(name, await run()));

    // The demo's DDIM sampler, step by step, through the pipeline's functions.
    await guarded("ddim.samples", async () => {
      const sampler = new LdmDdimSampler({
        ...(uni.alphasCumprod ? { alphasCumprod: uni.alphasCumprod } : {}),
        eta,
      });
      sampler.setTimesteps(requestedSteps);
      const steps = sampler.timesteps;
      compare("ddim.timesteps", tensor("int64", [steps.length], BigInt64Array.from(steps.map(BigInt))));
      const model = { ...uni, localAdapter: uni.localAdapter };
      const contexts = await uniContexts(
        model,
        { cond: textCond, uncond: textUncond },
        globalEmb,
        effectiveGlobalStrength(ddimGs, guidance),
      );
      compare("ddim.cond_context", contexts.cond);
      compare("ddim.uncond_context", contexts.uncond);
      let x = xT;
      for (const [i, t] of steps.entries()) {
        const tag = `ddim.step${String(i).padStart(2, "0")}`;
        const traced = new Map<string, HostTensor>();
        const eps = await predictUniNoise({
          model,
          scheduler: sampler,
          latents: x,
          t,
          stepIndex: i,
          numSteps: steps.length,
          contexts,
          localConditions: maps,
          localStrength: ls,
          guidanceScale: guidance,
          trace: (name, value) => traced.set(name, value),
          tag,
        });
        const k = sampler.coefficients(t);
        compare(`${tag}.t`, int64Scalar(t));
        compare(`${tag}.x_in`, x);
        compare(`${tag}.eps_cond`, traced.get(`${tag}.noise_pred_text`));
        compare(`${tag}.eps_uncond`, traced.get(`${tag}.noise_pred_uncond`));
        compare(`${tag}.eps_guided`, eps);
        compare(`${tag}.a_t`, scalar(k.aT));
        compare(`${tag}.a_prev`, scalar(k.aPrev));
        compare(`${tag}.sqrt_one_minus_at`, scalar(k.sqrtOneMinusAt));
        compare(`${tag}.sigma_t`, scalar(k.sigma));
        const out = sampler.step(eps, t, x, stepNoise(i, x));
        compare(`${tag}.pred_x0`, out.predOriginalSample);
        compare(`${tag}.x_prev`, out.prevSample);
        x = out.prevSample;
      }
      compare("ddim.samples", x);

      // Guidance 1: the sampler calls apply_model(x, t, cond) (global_strength 1), local scales unchanged.
      const t0 = steps[0] ?? 0;
      const cfg1 = await uniContexts(
        model,
        { cond: textCond },
        globalEmb,
        effectiveGlobalStrength(ddimGs, 1),
      );
      const eps1 = await predictUniNoise({
        model,
        scheduler: sampler,
        latents: xT,
        t: t0,
        stepIndex: 0,
        numSteps: steps.length,
        contexts: cfg1,
        localConditions: maps,
        localStrength: ls,
        guidanceScale: 1,
      });
      compare("ddim_cfg1.step00.eps", eps1);
      compare("ddim_cfg1.step00.x_prev", sampler.step(eps1, t0, xT, stepNoise(0, xT)).prevSample);
    });
    if (batch !== (maps.shape[0] ?? 0))
      rows.push(failedRow(mc.fixture, "local_conditions_uint8", "batch differs from x_noisy"));
  } finally {
    await uni.release();
  }
  return [...rows, ...uncomparedRows(mc, compared)];
}

export const uniControlnetKind: FixtureKind = {
  kind: "uni_controlnet",
  description:
    "Uni-ControlNet (original code): global adapter tokens, local adapter residuals, apply_model eps and the demo's DDIM sampler step by step",
  run: (ctx) => runUniControlNetFixture(ctx),
};
