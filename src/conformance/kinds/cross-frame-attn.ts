/**
 * Conformance kind `cross_frame_attn`: Text2Video-Zero cross-frame attention in the UNet. Each entry
 * of `calls` names its processor: no `CrossFrameAttnProcessor` = plain attention;
 * `CrossFrameAttnProcessor(batch_size=N)` = every self-attention (attn1) takes its keys/values from
 * the first frame of its video, with N videos in the batch. One UNet session per distinct processor;
 * inputs `sample`, `encoder_hidden_states`, `timestep` (or case.json inputs.timestep).
 */
import { UnsupportedError } from "../../errors.js";
import { UNET_OUTPUT } from "../../models/unet/build.js";
import { parseUNet2DConditionModelConfig } from "../../models/unet/config.js";
import type { UNetLoadOptions } from "../../models/unet/runner.js";
import { UNet2DConditionModel } from "../../models/unet/unet-2d-condition.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import {
  componentStore,
  errorNote,
  isRecord,
  modelConfigJson,
  readModelCase,
  rowLabel,
  tensorArg,
  uncomparedRows,
  weightsDir,
} from "./diffusers-case.js";

/** The cross-frame setting a call string asks for: null = default attention; else the batch_size. */
export function crossFrameBatchSize(call: string): number | null {
  const code = call.split("#")[0] ?? call;
  if (!/CrossFrameAttnProcessor/.test(call)) return null;
  const m =
    /CrossFrameAttnProcessor\(\s*(?:batch_size\s*=\s*)?(\d+)\s*\)/.exec(call) ??
    /batch_size\s*=\s*(\d+)/.exec(code);
  if (!m) throw new UnsupportedError(`cross-frame call without a batch_size: "${call}"`);
  return Number(m[1]);
}

async function runCrossFrame(ctx: FixtureContext): Promise<ConformanceRow[]> {
  const mc = await readModelCase(ctx, "cross_frame_attn");
  const dir = weightsDir(ctx);
  const { json, name } = await modelConfigJson(ctx, dir, "UNet2DConditionModel");
  const { config } = parseUNet2DConditionModelConfig(name, json);
  const store = await componentStore(dir);
  const given = isRecord(ctx.caseJson.inputs) ? ctx.caseJson.inputs.timestep : undefined;
  const timestep = mc.inputs.get("timestep") ?? (typeof given === "number" ? given : undefined);
  const rows: ConformanceRow[] = [];
  const compared = new Set<string>();
  for (const [output, call] of Object.entries(mc.calls)) {
    const label = rowLabel(mc.fixture, output);
    const expected = mc.outputs.get(output);
    if (expected === undefined) {
      rows.push(failedRow(label, output, `no tensor "${output}" in the outputs file`));
      continue;
    }
    compared.add(output);
    try {
      if (timestep === undefined)
        throw new UnsupportedError("a fixture without a timestep input", { hint: "add inputs.timestep" });
      const batchSize = crossFrameBatchSize(call);
      const options: UNetLoadOptions = batchSize === null ? {} : { crossFrame: { batchSize } };
      const unet = await UNet2DConditionModel.load({ config, store }, options);
      try {
        const noise = await unet.run({
          sample: tensorArg("sample", mc.inputs, "sample"),
          timestep,
          encoderHiddenStates: tensorArg("encoder_hidden_states", mc.inputs, "encoder_hidden_states"),
        });
        const actual = noise[UNET_OUTPUT];
        rows.push(
          actual
            ? compareTensors(label, output, actual, expected, mc.tolerance)
            : failedRow(label, output, "no noise_pred output"),
        );
      } finally {
        await unet.release();
      }
    } catch (error) {
      rows.push(failedRow(label, output, errorNote(error)));
    }
  }
  return [...rows, ...uncomparedRows(mc, compared)];
}

export const crossFrameAttnKind: FixtureKind = {
  kind: "cross_frame_attn",
  description: "Text2Video-Zero cross-frame attention (CrossFrameAttnProcessor) in the UNet's self-attention",
  run: runCrossFrame,
};
