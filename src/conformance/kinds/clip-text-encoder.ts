/**
 * Conformance kind `clip_text_encoder`: transformers CLIPTextModel as the SD pipelines call it (no
 * attention_mask). Weights/config come from case.json (`weights`, `config`); token ids from the
 * inputs file's `input_ids`, or, when it has none, from case.json `prompts` through the tokenizer at
 * `tokenizer` (padded/truncated to max_length). One row per reference tensor, against
 * `tolerance.suggested_max_abs_err`. Output names: `last_hidden_state`, `pooler_output`,
 * `hidden_states.{i}`, `penultimate_hidden_state` (= hidden_states[L - 1]) and
 * `clip_skip_{k}_prompt_embeds` / `clip_skip_{k}` (= final_layer_norm(hidden_states[L - k])).
 * `runClipTextEncoderFixture` also runs it on weights supplied from outside (single-file checkpoints).
 */
import { resolve } from "node:path";
import { ConfigError } from "../../errors.js";
import { buildCLIPTextGraph } from "../../models/clip/graph.js";
import { resolveClipSpec } from "../../models/clip/validate.js";
import { compileGraph } from "../../models/compiled-graph.js";
import type { HostTensor } from "../../tensor.js";
import { CLIPTokenizer } from "../../tokenizer/clip-tokenizer.js";
import { failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import {
  type ModelFixtureOptions,
  caseFile,
  fixtureComponent,
  outputNames,
  outputRow,
  readModelCase,
  signalOption,
} from "./model-fixture.js";

/** The graph output that holds a reference tensor, or undefined for names this kind does not know. */
export function clipGraphOutput(name: string, layers: number): string | undefined {
  if (name === "last_hidden_state" || name === "pooler_output") return name;
  if (name === "penultimate_hidden_state") return `hidden_states.${layers - 1}`;
  const hidden = /^hidden_states\.(\d+)$/u.exec(name);
  if (hidden) return Number(hidden[1]) <= layers ? name : undefined;
  const skip = /^clip_skip_(\d+)(?:_prompt_embeds)?$/u.exec(name);
  if (skip) {
    const k = Number(skip[1]);
    if (k === 0) return "last_hidden_state";
    return k < layers ? `clip_skip_${k}` : undefined;
  }
  return undefined;
}

async function inputIds(
  ctx: FixtureContext,
  inputs: ReadonlyMap<string, HostTensor>,
  maxLength: number,
): Promise<HostTensor> {
  const ids = inputs.get("input_ids");
  if (ids) return ids;
  const prompts = ctx.caseJson.prompts;
  const tokenizerDir = ctx.caseJson.tokenizer;
  if (!Array.isArray(prompts) || !prompts.every((p) => typeof p === "string")) {
    throw new ConfigError(
      caseFile(ctx),
      "prompts",
      "a list of strings (the inputs file has no input_ids)",
      prompts,
    );
  }
  if (typeof tokenizerDir !== "string") {
    throw new ConfigError(
      caseFile(ctx),
      "tokenizer",
      "a tokenizer folder relative to the fixture",
      tokenizerDir,
    );
  }
  const tokenizer = await CLIPTokenizer.fromPretrained(resolve(ctx.dir, tokenizerDir));
  return tokenizer.encodeBatch(prompts.map(String), { padding: "max_length", truncation: true, maxLength });
}

/** Runs a `clip_text_encoder` fixture folder, on the weights case.json names or on `options.components.text_encoder`. */
export async function runClipTextEncoderFixture(
  ctx: FixtureContext,
  options: ModelFixtureOptions = {},
): Promise<ConformanceRow[]> {
  const mc = await readModelCase(ctx, "clip_text_encoder", options);
  const { inputs, outputs } = mc;
  const component = await fixtureComponent(ctx, options, {
    role: "text_encoder",
    className: "CLIPTextModel",
    library: "transformers",
  });
  const spec = resolveClipSpec(component.configName, component.config);
  const layers = spec.config.num_hidden_layers;
  const names = outputNames(ctx, outputs);
  const ids = await inputIds(ctx, inputs, spec.config.max_position_embeddings);
  const clipSkips = names
    .map((n) => clipGraphOutput(n, layers))
    .flatMap((o) => (o?.startsWith("clip_skip_") ? [Number(o.slice(10))] : []));
  const graph = buildCLIPTextGraph(spec, component.store, {
    hiddenStates: true,
    clipSkips,
    sequenceLength: ids.shape[1] ?? 0,
  });
  const model = await compileGraph(graph, "text_encoder", component.weightsId, signalOption(ctx));
  let results: Record<string, HostTensor>;
  try {
    results = await model.session.run({ input_ids: ids });
  } finally {
    await model.release();
  }
  return names.map((name) => {
    const expected = outputs.get(name);
    if (!expected)
      return failedRow(mc.fixture, name, "listed in case.json but missing from the outputs file");
    const output = clipGraphOutput(name, layers);
    const actual = output === undefined ? undefined : results[output];
    return outputRow(
      mc,
      name,
      actual ?? `unknown output "${name}" for a ${layers}-layer text encoder`,
      expected,
    );
  });
}

export const clipTextEncoderKind: FixtureKind = {
  kind: "clip_text_encoder",
  description:
    "transformers CLIPTextModel hidden states, pooled output and clip skip (no attention_mask), from case.json",
  run: (ctx) => runClipTextEncoderFixture(ctx),
};
