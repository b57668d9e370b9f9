/**
 * Conformance kind `t2i_adapter`: a diffusers T2IAdapter (case.json `weights.adapter`) and the UNet
 * that takes its features as `down_intrablock_additional_residuals` (`weights.unet`), as diffusers
 * 0.26.3 StableDiffusionAdapterPipeline calls them. Compared: the adapter's `intermediate.unshuffle` /
 * `intermediate.conv_in` and `adapter.features.i` on `control_image`; `noise_pred.base` (the UNet with
 * no adapter: zeros fed, which is exact); for every case.json `scales` entry
 * `noise_pred.adapter.<scaleN>` with the features times the scale and repeated over the sample's batch
 * (CFG), and the UNet's `intermediate.<scaleN>.down_blocks.i` where the fixture stores them.
 */
import { resolve } from "node:path";
import { ConfigError, UnsupportedError } from "../../errors.js";
import { adapterResiduals, loadT2IAdapter } from "../../models/t2i-adapter/runner.js";
import { UNET_OUTPUT } from "../../models/unet/build.js";
import { UNet2DConditionModel } from "../../models/unet/unet-2d-condition.js";
import type { HostTensor } from "../../tensor.js";
import { failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { tensorArg } from "./call-string.js";
import { fixtureScales, scaleTag } from "./controlnet.js";
import {
  type ModelFixtureOptions,
  caseFile,
  errorNote,
  fixtureTimestep,
  isRecord,
  outputRow,
  readModelCase,
  signalOption,
  uncomparedRows,
  wantsIntermediates,
} from "./model-fixture.js";
import { fixtureUNet } from "./unet.js";

/** The adapter folder case.json `weights.adapter` names, resolved from the fixture folder. */
function adapterDir(ctx: FixtureContext): string {
  const w = ctx.caseJson.weights;
  const rel = isRecord(w) ? w.adapter : undefined;
  if (typeof rel !== "string")
    throw new ConfigError(
      caseFile(ctx),
      "weights.adapter",
      "a T2IAdapter folder relative to the fixture",
      rel,
    );
  return resolve(ctx.dir, rel);
}

/** Runs a `t2i_adapter` fixture folder. */
export async function runT2IAdapterFixture(
  ctx: FixtureContext,
  options: ModelFixtureOptions = {},
): Promise<ConformanceRow[]> {
  const mc = await readModelCase(ctx, "t2i_adapter", options);
  const names = [...mc.outputs.keys()];
  const scales = fixtureScales(
    mc.file,
    ctx.caseJson,
    names.filter((k) => k.startsWith("scale")),
  );
  const timestep = fixtureTimestep(ctx, mc);
  if (timestep === undefined)
    throw new UnsupportedError("a t2i_adapter fixture without a timestep", { hint: "add inputs.timestep" });
  const sample = tensorArg("sample", mc.inputs, "sample");
  const encoderHiddenStates = tensorArg("encoder_hidden_states", mc.inputs, "encoder_hidden_states");
  const controlImage = tensorArg("control_image", mc.inputs, "control_image");
  const rows: ConformanceRow[] = [];
  const compared = new Set<string>();
  const compare = (name: string, actual: HostTensor | undefined): void => {
    const expected = mc.outputs.get(name);
    if (expected === undefined || compared.has(name)) return;
    compared.add(name);
    rows.push(outputRow(mc, name, actual, expected));
  };
  const adapter = await loadT2IAdapter(adapterDir(ctx), { intermediates: wantsIntermediates(mc) });
  let features: HostTensor[];
  try {
    const out = await adapter.run(controlImage, signalOption(ctx));
    for (const [k, v] of Object.entries(out)) compare(k.startsWith("intermediate.") ? k : `adapter.${k}`, v);
    features = adapter.config.channels.map((_, i) => out[`features.${i}`]).filter((f) => f !== undefined);
  } finally {
    await adapter.release();
  }
  const unet = await UNet2DConditionModel.load(await fixtureUNet(ctx, options, false), {
    intrablockResiduals: true,
    intermediates: names.some((k) => /^intermediate\.scale/.test(k)),
  });
  try {
    const base = { sample, timestep, encoderHiddenStates };
    const plain = await unet.run(base, signalOption(ctx));
    compare("noise_pred.base", plain[UNET_OUTPUT]);
    const batch = sample.shape[0] ?? 1;
    for (const scale of scales) {
      const tag = scaleTag(scale);
      try {
        const repeat = batch / (features[0]?.shape[0] ?? 1);
        const residuals = adapterResiduals(features, scale, repeat);
        const out = await unet.run(
          { ...base, downIntrablockAdditionalResiduals: residuals },
          signalOption(ctx),
        );
        compare(`noise_pred.adapter.${tag}`, out[UNET_OUTPUT]);
        for (const [k, v] of Object.entries(out)) {
          if (k.startsWith("intermediate.")) compare(k.replace(/^intermediate\./, `intermediate.${tag}.`), v);
        }
      } catch (error) {
        rows.push(failedRow(mc.fixture, `noise_pred.adapter.${tag}`, errorNote(error)));
      }
    }
  } finally {
    await unet.release();
  }
  return [...rows, ...uncomparedRows(mc, compared)];
}

export const t2iAdapterKind: FixtureKind = {
  kind: "t2i_adapter",
  description:
    "diffusers T2IAdapter features and the UNet fed with them as down_intrablock_additional_residuals",
  run: (ctx) => runT2IAdapterFixture(ctx),
};
