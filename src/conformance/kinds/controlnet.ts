/**
 * Conformance kind `controlnet`: a diffusers ControlNetModel (case.json `weights.controlnet`) and the
 * UNet that consumes its residuals (`weights.unet`). For every conditioning scale (case.json
 * `scales`; outputs prefixed "scale<s>" with "." written "p": scale1, scale0p5) the ControlNet's
 * `down_block_res_samples.i` / `mid_block_res_sample` are compared, then the UNet run with those
 * residuals is compared with `unet_noise_pred`; `intermediate.*` outputs come from the ControlNet.
 * guess_mode is read from the controlnet call string. Inputs: sample, encoder_hidden_states,
 * controlnet_cond, timestep (tensor, or case.json inputs.timestep). `runControlNetFixture` also runs
 * it on weights supplied from outside (a single-file ControlNet and UNet).
 */
import { ConfigError, UnsupportedError } from "../../errors.js";
import { MID_BLOCK_RES_SAMPLE, downResSampleName } from "../../models/controlnet/build.js";
import { parseControlNetModelConfig } from "../../models/controlnet/config.js";
import { ControlNetModel } from "../../models/controlnet/controlnet-model.js";
import type { ControlNetModelRunner } from "../../models/controlnet/runner.js";
import { UNET_OUTPUT } from "../../models/unet/build.js";
import type { UNet2DConditionModelRunner } from "../../models/unet/runner.js";
import { UNet2DConditionModel } from "../../models/unet/unet-2d-condition.js";
import type { HostTensor } from "../../tensor.js";
import { failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { tensorArg } from "./call-string.js";
import {
  type ModelCase,
  type ModelFixtureOptions,
  cacheId,
  errorNote,
  fixtureComponent,
  fixtureTimestep,
  outputRow,
  readCalls,
  readModelCase,
  signalOption,
  uncomparedRows,
  wantsIntermediates,
} from "./model-fixture.js";
import { fixtureUNet } from "./unet.js";

/** "scale" + the scale as Python's %g prints it, "." -> "p" (1.0 -> scale1, 0.5 -> scale0p5). */
export function scaleTag(scale: number): string {
  return `scale${String(scale).replace(".", "p")}`;
}

/** The conditioning scales: case.json `scales`, else parsed from the output name prefixes. */
export function fixtureScales(
  file: string,
  caseJson: Readonly<Record<string, unknown>>,
  outputs: readonly string[],
): number[] {
  const listed = caseJson.scales;
  if (listed !== undefined) {
    if (!Array.isArray(listed) || !listed.every((s) => typeof s === "number" && Number.isFinite(s))) {
      throw new ConfigError(file, "scales", "a list of numbers", listed);
    }
    return listed.map(Number);
  }
  const tags = new Set(
    outputs.map((k) => /^scale([\dp]+)\./.exec(k)?.[1]).filter((t): t is string => t !== undefined),
  );
  return [...tags].map((t) => Number(t.replace("p", ".")));
}

/** guess_mode=True / False in the controlnet call string (default False). */
export function guessModeOf(calls: Readonly<Record<string, string>>): boolean {
  const call = Object.values(calls).find((c) => /\bcontrolnet\(/.test(c)) ?? "";
  return /guess_mode\s*=\s*True/.test(call.split("#")[0] ?? "");
}

interface Nets {
  readonly controlnet: ControlNetModelRunner;
  /**
   * With global_pool_conditions: the same ControlNet with its pooled [B, C, 1, 1] residuals expanded
   * to the UNet's sizes, as diffusers' UNet broadcasts them when it adds them.
   */
  readonly forUNet: ControlNetModelRunner | null;
  readonly unet: UNet2DConditionModelRunner | null;
}

async function loadNets(
  ctx: FixtureContext,
  options: ModelFixtureOptions,
  mc: ModelCase,
  guessMode: boolean,
  wantsUNet: boolean,
): Promise<Nets> {
  const cn = await fixtureComponent(ctx, options, {
    role: "controlnet",
    className: "ControlNetModel",
    library: "diffusers",
  });
  const { config } = parseControlNetModelConfig(cn.configName, cn.config);
  const controlnet = await ControlNetModel.load(
    { config, store: cn.store, ...cacheId(cn) },
    { intermediates: wantsIntermediates(mc), guessMode },
  );
  if (!wantsUNet) return { controlnet, forUNet: null, unet: null };
  let forUNet: ControlNetModelRunner | null = null;
  try {
    if (config.global_pool_conditions)
      forUNet = await ControlNetModel.load(
        { config, store: cn.store, ...cacheId(cn) },
        { guessMode, broadcastPooled: true },
      );
    const unet = await UNet2DConditionModel.load(await fixtureUNet(ctx, options, false), { residuals: true });
    return { controlnet, forUNet, unet };
  } catch (error) {
    await controlnet.release();
    await forUNet?.release();
    throw error;
  }
}

/** Runs a `controlnet` fixture folder, on the weights case.json names or on `options.components`. */
export async function runControlNetFixture(
  ctx: FixtureContext,
  options: ModelFixtureOptions = {},
): Promise<ConformanceRow[]> {
  const mc = await readModelCase(ctx, "controlnet", options);
  const calls = readCalls(ctx);
  const names = [...mc.outputs.keys()];
  const scales = fixtureScales(mc.file, ctx.caseJson, names);
  if (scales.length === 0)
    throw new ConfigError(mc.file, "scales", "at least one conditioning scale", ctx.caseJson.scales);
  const timestep = fixtureTimestep(ctx, mc);
  if (timestep === undefined)
    throw new UnsupportedError("a controlnet fixture without a timestep", { hint: "add inputs.timestep" });
  const sample = tensorArg("sample", mc.inputs, "sample");
  const encoderHiddenStates = tensorArg("encoder_hidden_states", mc.inputs, "encoder_hidden_states");
  const controlnetCond = tensorArg("controlnet_cond", mc.inputs, "controlnet_cond");
  // diffusers class_labels (a ControlNet / UNet config with class embeddings): the input of that name
  const classLabels = mc.inputs.get("class_labels");
  const wantsUNet = names.some((k) => k.endsWith(".unet_noise_pred"));
  const nets = await loadNets(ctx, options, mc, guessModeOf(calls), wantsUNet);
  const rows: ConformanceRow[] = [];
  const compared = new Set<string>();
  const compare = (name: string, actual: HostTensor | undefined): void => {
    const expected = mc.outputs.get(name);
    if (expected === undefined || compared.has(name)) return;
    compared.add(name);
    rows.push(outputRow(mc, name, actual, expected));
  };
  try {
    for (const scale of scales) {
      const tag = scaleTag(scale);
      try {
        const inputs = {
          sample,
          timestep,
          encoderHiddenStates,
          controlnetCond,
          conditioningScale: scale,
          ...(classLabels ? { classLabels } : {}),
        };
        const out = await nets.controlnet.run(inputs, signalOption(ctx));
        for (const [k, v] of Object.entries(out))
          compare(k.startsWith("intermediate.") ? k : `${tag}.${k}`, v);
        if (nets.unet) {
          const feed = nets.forUNet ? await nets.forUNet.run(inputs, signalOption(ctx)) : out;
          const down = Array.from(
            { length: nets.controlnet.numDownResiduals },
            (_, i) => feed[downResSampleName(i)],
          );
          const mid = feed[MID_BLOCK_RES_SAMPLE];
          if (mid === undefined || down.some((r) => r === undefined))
            throw new UnsupportedError("a ControlNet session without residual outputs");
          const unetConfig = nets.unet.config;
          const unetTakesLabels =
            unetConfig.class_embed_type !== null || unetConfig.num_class_embeds !== null;
          const noise = await nets.unet.run({
            sample,
            timestep,
            encoderHiddenStates,
            ...(classLabels && unetTakesLabels ? { classLabels } : {}),
            downBlockAdditionalResiduals: down.filter((r): r is HostTensor => r !== undefined),
            midBlockAdditionalResidual: mid,
          });
          compare(`${tag}.unet_noise_pred`, noise[UNET_OUTPUT]);
        }
      } catch (error) {
        rows.push(failedRow(mc.fixture, `${tag}.*`, errorNote(error)));
      }
    }
  } finally {
    await nets.controlnet.release();
    await nets.forUNet?.release();
    await nets.unet?.release();
  }
  return [...rows, ...uncomparedRows(mc, compared)];
}

export const controlnetKind: FixtureKind = {
  kind: "controlnet",
  description: "diffusers ControlNetModel residuals per conditioning scale, and the UNet fed with them",
  run: (ctx) => runControlNetFixture(ctx),
};
