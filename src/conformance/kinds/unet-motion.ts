/**
 * Conformance kind `unet_motion`: diffusers `UNetMotionModel.from_unet2d(unet, motion_adapter)`
 * (AnimateDiff) on the fixture's weights. case.json `weights.unet` is a UNet2DConditionModel folder
 * (its config.json); `weights.motion_adapter` a MotionAdapter folder, or a motion-module file in the
 * original AnimateDiff layout (converted as diffusers' script does). The adapter config is case.json
 * `motion_adapter_config` when given, else the folder's config.json. Inputs (inputs file): `sample`
 * [B, C, F, H, W], `encoder_hidden_states`, `timestep` (or case.json inputs.timestep); the model's
 * noise_pred is compared with the outputs file's `noise_pred` within tolerance.suggested_max_abs_err.
 */
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { ConfigError } from "../../errors.js";
import { resolveComponent } from "../../models/component-source.js";
import { type MotionAdapterConfig, parseMotionAdapterConfig } from "../../models/motion/config.js";
import type { MotionAdapterSource } from "../../models/motion/runner.js";
import { UNET_MOTION_OUTPUT } from "../../models/motion/build.js";
import { UNetMotionModel } from "../../models/motion/unet-motion-model.js";
import { failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { tensorArg } from "./call-string.js";
import {
  type ModelFixtureOptions,
  caseFile,
  caseTimestep,
  errorNote,
  fixtureTimestep,
  isRecord,
  outputRow,
  readModelCase,
  signalOption,
  uncomparedRows,
} from "./model-fixture.js";
import { fixtureUNet } from "./unet.js";

/** The motion adapter case.json names: its source (folder, or AnimateDiff file) and config. */
async function fixtureAdapter(ctx: FixtureContext): Promise<MotionAdapterSource> {
  const weights = ctx.caseJson.weights;
  const rel = isRecord(weights) ? weights.motion_adapter : undefined;
  if (typeof rel !== "string") {
    throw new ConfigError(caseFile(ctx), "weights.motion_adapter", "a path relative to the fixture", rel);
  }
  const path = resolve(ctx.dir, rel);
  const inline = ctx.caseJson.motion_adapter_config;
  const isFile = (await stat(path).catch(() => undefined))?.isFile() ?? false;
  const configOf = (json: unknown, name: string): MotionAdapterConfig =>
    parseMotionAdapterConfig(name, json).config;
  if (isFile) {
    if (!isRecord(inline)) {
      throw new ConfigError(
        caseFile(ctx),
        "motion_adapter_config",
        `a MotionAdapter config object (the weights ${path} are a file, with no config.json)`,
        inline,
      );
    }
    return { checkpoint: path, config: configOf(inline, `${caseFile(ctx)} (motion_adapter_config)`) };
  }
  const folder = await resolveComponent(path, "diffusers");
  const config = isRecord(inline)
    ? configOf(inline, `${caseFile(ctx)} (motion_adapter_config)`)
    : configOf(folder.config, folder.configName);
  return {
    config,
    store: folder.store,
    ...(folder.weightsId === null ? {} : { weightsId: folder.weightsId }),
  };
}

/** Runs a `unet_motion` fixture folder (UNet weights may be supplied from outside as `components.unet`). */
export async function runUNetMotionFixture(
  ctx: FixtureContext,
  options: ModelFixtureOptions = {},
): Promise<ConformanceRow[]> {
  const mc = await readModelCase(ctx, "unet_motion", options);
  const unet = await fixtureUNet(ctx, options, false);
  const expected = mc.outputs.get(UNET_MOTION_OUTPUT);
  if (expected === undefined) {
    return [
      failedRow(mc.fixture, UNET_MOTION_OUTPUT, `no tensor "${UNET_MOTION_OUTPUT}" in the outputs file`),
      ...uncomparedRows(mc, new Set()),
    ];
  }
  const rows: ConformanceRow[] = [];
  try {
    const timestep = fixtureTimestep(ctx, mc);
    if (timestep === undefined) {
      throw new ConfigError(
        caseFile(ctx),
        "inputs.timestep",
        "a number (or a timestep tensor in the inputs file)",
        caseTimestep(ctx),
      );
    }
    const model = await UNetMotionModel.load({ unet, motionAdapter: await fixtureAdapter(ctx) });
    try {
      const out = await model.run(
        {
          sample: tensorArg("sample", mc.inputs, "sample"),
          timestep,
          encoderHiddenStates: tensorArg("encoder_hidden_states", mc.inputs, "encoder_hidden_states"),
        },
        signalOption(ctx),
      );
      rows.push(
        outputRow(mc, UNET_MOTION_OUTPUT, out[UNET_MOTION_OUTPUT] ?? "no noise_pred output", expected),
      );
    } finally {
      await model.release();
    }
  } catch (error) {
    rows.push(failedRow(mc.fixture, UNET_MOTION_OUTPUT, errorNote(error)));
  }
  return [...rows, ...uncomparedRows(mc, new Set([UNET_MOTION_OUTPUT]))];
}

export const unetMotionKind: FixtureKind = {
  kind: "unet_motion",
  description:
    "diffusers UNetMotionModel (AnimateDiff motion modules in the UNet) noise predictions on video latents",
  run: (ctx) => runUNetMotionFixture(ctx),
};
