/**
 * Conformance kinds `ip_adapter` and `ip_adapter_plus`: a published SD1.5 IP-Adapter file (case.json
 * `weights.ip_adapter`) on the UNet of `weights.unet`, as diffusers 0.26.3 `load_ip_adapter` +
 * `set_ip_adapter_scale` run them. The CLIP encoder is not run: the inputs file's `image_embeds`
 * (plain: [2B, n, D] image_embeds; plus: [2B, n, S, E] hidden_states[-2]) already hold the CFG batch
 * [uncond, cond]. Compared: `noise_pred.base` (the UNet with no adapter: IP inputs left out, which
 * is exact), `image_proj.tokens<suffix>` for every `image_embeds<suffix>` input, and for every
 * case.json `scales` entry `noise_pred.ip.<scaleN>` (and `noise_pred.<suffix>.<scaleN>` for the
 * other inputs where the fixture stores them).
 */
import { resolve } from "node:path";
import { ConfigError, UnsupportedError } from "../../errors.js";
import { IpAdapterRunner } from "../../models/ip-adapter/runner.js";
import { UNET_OUTPUT } from "../../models/unet/build.js";
import { UNet2DConditionModel } from "../../models/unet/unet-2d-condition.js";
import type { HostTensor } from "../../tensor.js";
import { failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { tensorArg } from "./call-string.js";
import { fixtureScales, scaleTag } from "./controlnet.js";
import {
  caseFile,
  errorNote,
  fixtureTimestep,
  isRecord,
  outputRow,
  readModelCase,
  signalOption,
  uncomparedRows,
} from "./model-fixture.js";
import { fixtureUNet } from "./unet.js";

function adapterFile(ctx: FixtureContext): string {
  const w = ctx.caseJson.weights;
  const rel = isRecord(w) ? w.ip_adapter : undefined;
  if (typeof rel !== "string")
    throw new ConfigError(
      caseFile(ctx),
      "weights.ip_adapter",
      "an IP-Adapter file relative to the fixture",
      rel,
    );
  return resolve(ctx.dir, rel);
}

/** Runs an `ip_adapter` / `ip_adapter_plus` fixture folder. */
export async function runIpAdapterFixture(ctx: FixtureContext, kind: string): Promise<ConformanceRow[]> {
  const mc = await readModelCase(ctx, kind);
  const scales = fixtureScales(mc.file, ctx.caseJson, []);
  const timestep = fixtureTimestep(ctx, mc);
  if (timestep === undefined)
    throw new UnsupportedError(`an ${kind} fixture without a timestep`, { hint: "add inputs.timestep" });
  const base = {
    sample: tensorArg("sample", mc.inputs, "sample"),
    timestep,
    encoderHiddenStates: tensorArg("encoder_hidden_states", mc.inputs, "encoder_hidden_states"),
  };
  const rows: ConformanceRow[] = [];
  const compared = new Set<string>();
  const compare = (name: string, actual: HostTensor | undefined): void => {
    const expected = mc.outputs.get(name);
    if (expected === undefined || compared.has(name)) return;
    compared.add(name);
    rows.push(outputRow(mc, name, actual, expected));
  };
  const unet = await UNet2DConditionModel.load(await fixtureUNet(ctx, {}, false), {
    ipAdapter: true,
    ...signalOption(ctx),
  });
  try {
    compare("noise_pred.base", (await unet.run(base, signalOption(ctx)))[UNET_OUTPUT]);
    const adapter = await IpAdapterRunner.load(adapterFile(ctx), unet, signalOption(ctx));
    try {
      const embedInputs = [...mc.inputs.keys()].filter((k) => /^image_embeds(_.+)?$/.test(k));
      for (const input of embedInputs) {
        const suffix = input.slice("image_embeds".length);
        const family = suffix === "" ? "ip" : suffix.slice(1);
        try {
          const embeds = mc.inputs.get(input) as HostTensor;
          const out = await adapter.run(embeds, signalOption(ctx));
          compare(`image_proj.tokens${suffix}`, out.tokens);
          // Every stored noise_pred.<family>.scale<s> (the name carries the scale), plus case.json scales.
          const named = [...mc.outputs.keys()]
            .map((k) => new RegExp(`^noise_pred\\.${family}\\.scale(\\d+(?:p\\d+)?)$`).exec(k)?.[1])
            .filter((t): t is string => t !== undefined)
            .map((t) => Number(t.replace("p", ".")));
          for (const scale of [...new Set([...scales, ...named])]) {
            const name = `noise_pred.${family}.${scaleTag(scale)}`;
            if (!mc.outputs.has(name)) continue;
            const keyValues = await adapter.keyValues(embeds, scale, signalOption(ctx));
            compare(
              name,
              (await unet.run({ ...base, ipAdapterKeyValues: keyValues }, signalOption(ctx)))[UNET_OUTPUT],
            );
          }
        } catch (error) {
          rows.push(failedRow(mc.fixture, `image_proj.tokens${suffix}`, errorNote(error)));
          compared.add(`image_proj.tokens${suffix}`);
        }
      }
    } finally {
      await adapter.release();
    }
  } finally {
    await unet.release();
  }
  return [...rows, ...uncomparedRows(mc, compared)];
}

export const ipAdapterKind: FixtureKind = {
  kind: "ip_adapter",
  description:
    "IP-Adapter SD1.5 (image_proj Linear+LayerNorm tokens, decoupled cross-attention) at several ip scales",
  run: (ctx) => runIpAdapterFixture(ctx, "ip_adapter"),
};

export const ipAdapterPlusKind: FixtureKind = {
  kind: "ip_adapter_plus",
  description:
    "IP-Adapter Plus SD1.5 (Resampler tokens from CLIP hidden_states[-2], decoupled cross-attention)",
  run: (ctx) => runIpAdapterFixture(ctx, "ip_adapter_plus"),
};
