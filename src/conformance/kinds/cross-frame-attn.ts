/**
 * Conformance kind `cross_frame_attn`: Text2Video-Zero cross-frame attention in the UNet. Each entry
 * of `calls` names its processor: no `CrossFrameAttnProcessor` = plain attention;
 * `CrossFrameAttnProcessor(batch_size=N)` = every self-attention (attn1) takes its keys/values from
 * the first frame of its video, with N videos in the batch. One UNet session per distinct processor;
 * inputs `sample`, `encoder_hidden_states`, `timestep` (or case.json inputs.timestep).
 * `runCrossFrameAttnFixture` also runs it on a UNet supplied from outside.
 */
import { UnsupportedError } from "../../errors.js";
import { UNET_OUTPUT } from "../../models/unet/build.js";
import type { UNetLoadOptions } from "../../models/unet/runner.js";
import { UNet2DConditionModel } from "../../models/unet/unet-2d-condition.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { tensorArg } from "./call-string.js";
import {
  type ModelFixtureOptions,
  callRows,
  fixtureTimestep,
  outputRow,
  readCalls,
  readModelCase,
} from "./model-fixture.js";
import { fixtureUNet } from "./unet.js";

/**
 * The cross-frame setting a call string asks for: null = default attention; else the batch_size
 * (diffusers' default 2 for `CrossFrameAttnProcessor()`). A `#` comment is not part of the call.
 */
export function crossFrameBatchSize(call: string): number | null {
  const code = call.split("#")[0] ?? call;
  const m = /CrossFrameAttnProcessor(?:2_0)?\(([^)]*)\)/.exec(code);
  if (!m) return null;
  const args = (m[1] ?? "").trim();
  if (args === "") return 2;
  const n = /^(?:batch_size\s*=\s*)?(\d+)$/.exec(args);
  if (!n) throw new UnsupportedError(`cross-frame call with arguments other than batch_size: "${call}"`);
  return Number(n[1]);
}

/**
 * Frames per video as diffusers' cross-frame processor computes them for a batch of `batch`:
 * `batch // batch_size` (at least 1 for `CrossFrameAttnProcessor2_0`); the batch is then laid out
 * as batch / frames videos, so it must divide.
 */
export function crossFrameVideoLength(call: string, batchSize: number, batch: number): number {
  const code = call.split("#")[0] ?? call;
  const floor = Math.floor(batch / batchSize);
  const frames = /CrossFrameAttnProcessor2_0/.test(code) ? Math.max(floor, 1) : floor;
  if (frames < 1 || batch % frames !== 0)
    throw new UnsupportedError(
      `${call}: a batch of ${batch} with batch_size ${batchSize} (diffusers fails on it too: ${
        frames < 1 ? "0 frames per video" : `${batch} is not a multiple of ${frames} frames`
      })`,
    );
  return frames;
}

/** Runs a `cross_frame_attn` fixture folder, on the weights case.json names or on `options.components.unet`. */
export async function runCrossFrameAttnFixture(
  ctx: FixtureContext,
  options: ModelFixtureOptions = {},
): Promise<ConformanceRow[]> {
  const mc = await readModelCase(ctx, "cross_frame_attn", options);
  const calls = readCalls(ctx);
  const source = await fixtureUNet(ctx, options);
  const timestep = fixtureTimestep(ctx, mc);
  return callRows(mc, calls, async (output, call, expected) => {
    if (timestep === undefined)
      throw new UnsupportedError("a fixture without a timestep input", { hint: "add inputs.timestep" });
    const batchSize = crossFrameBatchSize(call);
    const sample = tensorArg("sample", mc.inputs, "sample");
    const loadOptions: UNetLoadOptions =
      batchSize === null
        ? {}
        : { crossFrame: { videoLength: crossFrameVideoLength(call, batchSize, sample.shape[0] ?? 0) } };
    const unet = await UNet2DConditionModel.load(source, loadOptions);
    try {
      const noise = await unet.run({
        sample,
        timestep,
        encoderHiddenStates: tensorArg("encoder_hidden_states", mc.inputs, "encoder_hidden_states"),
      });
      return [outputRow(mc, output, noise[UNET_OUTPUT] ?? "no noise_pred output", expected)];
    } finally {
      await unet.release();
    }
  });
}

export const crossFrameAttnKind: FixtureKind = {
  kind: "cross_frame_attn",
  description: "Text2Video-Zero cross-frame attention (CrossFrameAttnProcessor) in the UNet's self-attention",
  run: (ctx) => runCrossFrameAttnFixture(ctx),
};
