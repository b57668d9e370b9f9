/**
 * Conformance kind `unet`: a diffusers UNet2DConditionModel on the fixture's weights (case.json
 * `weights`; config from case.json `config` or the folder's config.json). Every entry of `calls`
 * ("noise_pred.t_scalar": "unet(sample, 500, encoder_hidden_states=...).sample") is run with the
 * arguments it names (input tensors, number literals, `0.01 * sample`) and compared with the output
 * of the same name; the `intermediate.*` outputs are compared for the call case.json's
 * `intermediates` names ("for the t_scalar call"). Tolerance: tolerance.suggested_max_abs_err.
 * `runUNetFixture` also runs it on weights supplied from outside (single-file checkpoints).
 */
import { UnsupportedError } from "../../errors.js";
import { UNET_OUTPUT } from "../../models/unet/build.js";
import { parseUNet2DConditionModelConfig } from "../../models/unet/config.js";
import type { UNetRunInputs, UNetSource } from "../../models/unet/runner.js";
import { UNet2DConditionModel } from "../../models/unet/unet-2d-condition.js";
import type { HostTensor } from "../../tensor.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { parseCall, resolveArg, tensorArg } from "./call-string.js";
import {
  type ModelFixtureOptions,
  cacheId,
  callRows,
  fixtureComponent,
  outputRow,
  readCalls,
  readModelCase,
  signalOption,
  wantsIntermediates,
} from "./model-fixture.js";

/** The inputs of a `unet(sample, timestep, encoder_hidden_states=...)` call string. */
/** The keyword arguments of a unet(...) call this kind feeds. */
const UNET_CALL_ARGUMENTS = ["sample", "timestep", "encoder_hidden_states", "class_labels", "timestep_cond"];

export function unetCallInputs(call: string, inputs: ReadonlyMap<string, HostTensor>): UNetRunInputs {
  const parsed = parseCall(call, ["unet"]);
  if (parsed === null)
    throw new UnsupportedError(`call "${call}"`, {
      hint: "expected unet(sample, timestep, encoder_hidden_states=...)",
    });
  for (const [k, v] of Object.entries(parsed.kwargs)) {
    // return_dict only changes how the output is wrapped (`.sample` vs `[0]`), never its values.
    if (k === "return_dict" && (v === "False" || v === "True")) continue;
    if (!UNET_CALL_ARGUMENTS.includes(k))
      throw new UnsupportedError(`unet call argument ${k} in "${call}"`, {
        hint: `implemented: ${UNET_CALL_ARGUMENTS.join(", ")} (and return_dict)`,
      });
  }
  const { args, kwargs } = parsed;
  // UNet2DConditionModel.forward(sample, timestep, encoder_hidden_states, class_labels, timestep_cond, ...)
  const classLabels = args[3] ?? kwargs.class_labels;
  const timestepCond = args[4] ?? kwargs.timestep_cond;
  const given = (name: string | undefined): name is string => name !== undefined && name !== "None";
  return {
    sample: tensorArg(args[0] ?? kwargs.sample, inputs, "sample"),
    timestep: resolveArg(args[1] ?? kwargs.timestep ?? "timestep", inputs, "timestep"),
    encoderHiddenStates: tensorArg(args[2] ?? kwargs.encoder_hidden_states, inputs, "encoder_hidden_states"),
    ...(given(classLabels) ? { classLabels: tensorArg(classLabels, inputs, "class_labels") } : {}),
    ...(given(timestepCond) ? { timestepCond: tensorArg(timestepCond, inputs, "timestep_cond") } : {}),
  };
}

/** The call whose intermediates the fixture stores: "for the t_scalar call" -> "noise_pred.t_scalar". */
export function intermediatesCall(description: unknown, calls: readonly string[]): string | undefined {
  const m = typeof description === "string" ? /for the (\S+?) call/.exec(description) : null;
  const wanted = m?.[1];
  return (
    (wanted === undefined ? undefined : calls.find((c) => c === wanted || c.endsWith(`.${wanted}`))) ??
    calls[0]
  );
}

/** The fixture's UNet (case.json `weights[.unet]`, or `options.components.unet`) as a load source. */
export async function fixtureUNet(
  ctx: FixtureContext,
  options: ModelFixtureOptions,
  main = true,
): Promise<Exclude<UNetSource, string>> {
  const component = await fixtureComponent(ctx, options, {
    role: "unet",
    className: "UNet2DConditionModel",
    library: "diffusers",
    main,
  });
  const { config } = parseUNet2DConditionModelConfig(component.configName, component.config);
  return { config, store: component.store, ...cacheId(component) };
}

/** Runs a `unet` fixture folder, on the weights case.json names or on `options.components.unet`. */
export async function runUNetFixture(
  ctx: FixtureContext,
  options: ModelFixtureOptions = {},
): Promise<ConformanceRow[]> {
  const mc = await readModelCase(ctx, "unet", options);
  const calls = readCalls(ctx);
  const unet = await UNet2DConditionModel.load(await fixtureUNet(ctx, options), {
    intermediates: wantsIntermediates(mc),
  });
  const tapCall = intermediatesCall(ctx.caseJson.intermediates, Object.keys(calls));
  try {
    return await callRows(mc, calls, async (output, call, expected, compared) => {
      const out = await unet.run(unetCallInputs(call, mc.inputs), signalOption(ctx));
      const rows = [outputRow(mc, output, out[UNET_OUTPUT] ?? "no noise_pred output", expected)];
      if (output !== tapCall) return rows;
      for (const [k, v] of Object.entries(out)) {
        const ref = mc.outputs.get(k);
        if (!k.startsWith("intermediate.") || ref === undefined) continue;
        compared.add(k);
        rows.push(outputRow(mc, k, v, ref));
      }
      return rows;
    });
  } finally {
    await unet.release();
  }
}

export const unetKind: FixtureKind = {
  kind: "unet",
  description:
    "diffusers UNet2DConditionModel noise predictions (and per-block intermediates) on tiny weights",
  run: (ctx) => runUNetFixture(ctx),
};
