/**
 * Conformance kind `vae`: diffusers AutoencoderKL. Weights/config come from case.json (`weights`,
 * `config`), inputs from `inputs_file`, references from `outputs_file`; one row per reference tensor,
 * against `tolerance.suggested_max_abs_err`. Output names say what to compute:
 *
 * - `encode.<field>` on the `image` input, `encode.<tag>.<field>` on the input the tag names
 *   ("small_image" -> `image_small`); fields: mean, mode (= mean), logvar, std, sample (= mean + std * the input
 *   holding "noise"), scaled_latents (= mean * scaling_factor, or sample * scaling_factor when
 *   case.json describes it so), moments, encoder_output.
 * - `decode.sample` = decode(`latent`), `decode.of_<field>` = decode(encode(image).<field>),
 *   `decode.<tag>` = decode(the input the tag names: "small_latent" -> `latent_small`).
 * - `intermediate.post_quant_conv` (decode of `latent`), `intermediate.moments` /
 *   `intermediate.encoder_output` (encode of `image`).
 *
 * `runVaeFixture` also runs it on weights supplied from outside (single-file checkpoints).
 */
import { type HostTensor, toFloat32 } from "../../tensor.js";
import { buildAutoencoderKLGraphs } from "../../models/vae/graphs.js";
import { posteriorStd, samplePosterior, scaleTensor } from "../../models/vae/posterior.js";
import { resolveVaeSpec } from "../../models/vae/validate.js";
import { type CompiledGraph, compileGraph } from "../../models/compiled-graph.js";
import { failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { ConfigError } from "../../errors.js";
import {
  type ModelFixtureOptions,
  caseFile,
  fixtureComponent,
  isRecord,
  outputNames,
  outputRow,
  readModelCase,
  signalOption,
} from "./model-fixture.js";

/** The input a tag names: the tag itself, or its words reversed ("small_image" -> "image_small"). */
function findInput(inputs: ReadonlyMap<string, HostTensor>, tag: string): string | undefined {
  const words = tag.split("_");
  return [tag, [...words].reverse().join("_"), `${tag}s`].find((n) => inputs.has(n));
}

function firstInput(inputs: ReadonlyMap<string, HostTensor>, names: readonly string[]): string | undefined {
  return names.find((n) => inputs.has(n));
}

/** Runs a `vae` fixture folder, on the weights case.json names or on `options.components.vae`. */
export async function runVaeFixture(
  ctx: FixtureContext,
  options: ModelFixtureOptions = {},
): Promise<ConformanceRow[]> {
  const mc = await readModelCase(ctx, "vae", options);
  const { inputs, outputs } = mc;
  const component = await fixtureComponent(ctx, options, {
    role: "vae",
    className: "AutoencoderKL",
    library: "diffusers",
  });
  const spec = resolveVaeSpec(component.configName, component.config);
  const graphs = buildAutoencoderKLGraphs(spec, component.store, { intermediates: true });
  const described = isRecord(ctx.caseJson.outputs) ? ctx.caseJson.outputs : {};
  const scaledFromSample = /encode\.sample\s*\*/u.test(String(described["encode.scaled_latents"] ?? ""));
  const sf = spec.config.scaling_factor;
  const imageName = firstInput(inputs, ["image", "images", "sample"]);
  const latentName = firstInput(inputs, ["latent", "latents", "latent_sample", "z"]);
  const noise = [...inputs.entries()].find(([name]) => name.includes("noise"))?.[1];

  const weightsId = component.weightsId;
  const modelOptions = signalOption(ctx);
  let encoder: CompiledGraph | undefined;
  let decoder: CompiledGraph | undefined;
  const encoded = new Map<string, Record<string, HostTensor>>();
  const decoded = new Map<HostTensor, Record<string, HostTensor>>();
  const encode = async (name: string): Promise<Record<string, HostTensor>> => {
    const cached = encoded.get(name);
    if (cached) return cached;
    const x = inputs.get(name);
    if (!x)
      throw new ConfigError(
        caseFile(ctx),
        `inputs_file.tensors.${name}`,
        "a tensor in the inputs file",
        undefined,
      );
    encoder ??= await compileGraph(graphs.encoder, "vae_encoder", weightsId, modelOptions);
    const out = await encoder.session.run({ image: toFloat32(x) });
    encoded.set(name, out);
    return out;
  };
  const decode = async (z: HostTensor): Promise<Record<string, HostTensor>> => {
    const cached = decoded.get(z);
    if (cached) return cached;
    decoder ??= await compileGraph(graphs.decoder, "vae_decoder", weightsId, modelOptions);
    const out = await decoder.session.run({ latents: toFloat32(z) });
    decoded.set(z, out);
    return out;
  };
  const field = async (inputName: string, name: string): Promise<HostTensor | string> => {
    const e = await encode(inputName);
    const mean = e["mean"];
    const logvar = e["logvar"];
    if (!mean || !logvar) return "the encoder gave no mean/logvar";
    const sampled = (): HostTensor | string =>
      noise ? samplePosterior({ mean, logvar }, { noise }) : "no noise input for the sample";
    switch (name) {
      case "mode": // DiagonalGaussianDistribution.mode() is the mean
        return mean;
      case "mean":
      case "logvar":
      case "moments":
      case "encoder_output":
        return e[name] ?? `the encoder gave no ${name}`;
      case "std":
        return posteriorStd(logvar);
      case "sample":
        return sampled();
      case "scaled_latents": {
        const base = scaledFromSample ? sampled() : mean;
        return typeof base === "string" ? base : scaleTensor(base, sf);
      }
      default:
        return `unknown encode field "${name}"`;
    }
  };
  const compute = async (name: string): Promise<HostTensor | string> => {
    const [section, ...rest] = name.split(".");
    if (section === "encode") {
      const inputName = rest.length === 1 ? imageName : findInput(inputs, rest[0] ?? "");
      if (!inputName) return `no image input for ${name}`;
      return field(inputName, rest[rest.length - 1] ?? "");
    }
    if (section === "decode" && rest.length === 1) {
      const what = rest[0] ?? "";
      let z: HostTensor | string | undefined;
      if (what === "sample") z = latentName ? inputs.get(latentName) : undefined;
      else if (what.startsWith("of_")) z = imageName ? await field(imageName, what.slice(3)) : undefined;
      else {
        const inputName = findInput(inputs, what);
        z = inputName ? inputs.get(inputName) : undefined;
      }
      if (z === undefined) return `no latent input for ${name}`;
      if (typeof z === "string") return z;
      return (await decode(z))["sample"] ?? "the decoder gave no sample";
    }
    if (section === "intermediate" && rest.length === 1) {
      const what = rest[0] ?? "";
      if (what === "post_quant_conv") {
        const z = latentName ? inputs.get(latentName) : undefined;
        return z
          ? ((await decode(z))["post_quant_conv"] ?? "no post_quant_conv output")
          : `no latent input for ${name}`;
      }
      if (what === "moments" || what === "encoder_output" || what === "encoder") {
        return imageName
          ? field(imageName, what === "encoder" ? "encoder_output" : what)
          : `no image input for ${name}`;
      }
    }
    return `unknown output "${name}"`;
  };

  const rows: ConformanceRow[] = [];
  try {
    for (const name of outputNames(ctx, outputs)) {
      const expected = outputs.get(name);
      if (!expected) {
        rows.push(failedRow(mc.fixture, name, "listed in case.json but missing from the outputs file"));
        continue;
      }
      const actual = await compute(name);
      rows.push(outputRow(mc, name, typeof actual === "string" ? actual : toFloat32(actual), expected));
    }
  } finally {
    await encoder?.release();
    await decoder?.release();
  }
  return rows;
}

export const vaeKind: FixtureKind = {
  kind: "vae",
  description: "diffusers AutoencoderKL encode (posterior mean/logvar/std/sample) and decode, from case.json",
  run: (ctx) => runVaeFixture(ctx),
};
