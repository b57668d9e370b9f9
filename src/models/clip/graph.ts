/**
 * The CLIPTextModel graph: `input_ids` int64 [B, S] -> `last_hidden_state` [B, S, hidden] (after
 * final_layer_norm) and `pooler_output` [B, hidden] (last_hidden_state at each sequence's eos token).
 * Optional outputs: `hidden_states.{i}` (i = 0: embeddings, i = 1..L: output of layer i, before
 * final_layer_norm) and `clip_skip_{k}` = final_layer_norm(hidden_states[L - k]) (diffusers'
 * encode_prompt with clip_skip=k).
 *
 * With `textProjection` (CLIPTextModelWithProjection, or a CLIPModel's text tower) also `text_embeds`
 * [B, projection_dim] = text_projection(pooler_output) (`text_projection.weight`, no bias), what CLIP
 * scores compare with image embeddings.
 *
 * Pooling (transformers 4.36 CLIPTextTransformer.forward): when the config's eos_token_id is 2 (the
 * legacy default) the eos position is argmax(input_ids) (the highest id, 49407 in CLIP's vocab);
 * otherwise it is the first position where input_ids == eos_token_id. ArgMax returns the first
 * maximum, as torch does.
 */
import { InvalidArgumentError } from "../../errors.js";
import { GraphBuilder, type Value, attr } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import type { GraphBuildOptions } from "../../nn/module.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { Linear } from "../../nn/linear.js";
import { WeightScope } from "../../nn/weights.js";
import { CLIPTextTransformer } from "./text-transformer.js";
import type { ClipSpec } from "./validate.js";

export interface ClipGraphOptions extends GraphBuildOptions {
  /** Float dtype of weights and activations (default "float32"). */
  readonly dtype?: "float32" | "float16";
  /** Translates checkpoint keys to transformers keys (e.g. the LDM key map). */
  readonly keyMap?: (storeKey: string) => string | undefined;
  /** Token sequence length S (default max_position_embeddings, 77 for SD). */
  readonly sequenceLength?: number;
  /** Also output every `hidden_states.{i}` (default false). */
  readonly hiddenStates?: boolean;
  /** Also output `clip_skip_{k}` for each k (1 <= k < num_hidden_layers). */
  readonly clipSkips?: readonly number[];
  /** (optional) projection_dim: bind `text_projection.weight` and output `text_embeds`. */
  readonly textProjection?: number;
}

/** Checkpoint buffers that carry no weights (older transformers saved the position ids). */
const IGNORED_KEYS = (k: string): boolean => k.endsWith("embeddings.position_ids");

function eosPositions(g: GraphBuilder, ids: Value, eosTokenId: number): Value {
  const argmax = (x: Value): Value =>
    g.node1(
      "ArgMax",
      [x],
      { axis: attr.int(-1), keepdims: attr.int(0) },
      { dtype: "int64", shape: [x.shape[0] ?? null] },
    );
  if (eosTokenId === 2) return argmax(ids);
  return argmax(op.Cast(g, op.Equal(g, ids, eosTokenId), "int32"));
}

/** last [B, S, H] at positions [B] -> [B, H] (GatherND with batch_dims 1). */
function gatherPerBatch(g: GraphBuilder, last: Value, positions: Value): Value {
  const index = op.Unsqueeze(g, positions, [-1]);
  return g.node1(
    "GatherND",
    [last, index],
    { batch_dims: attr.int(1) },
    { dtype: last.dtype, shape: [last.shape[0] ?? null, last.shape[2] ?? null] },
  );
}

/** Builds the graph and checks the checkpoint covers it exactly (one MissingWeightsError otherwise; position_ids buffers are ignored). */
export function buildCLIPTextGraph(
  spec: ClipSpec,
  store: WeightStore,
  options: ClipGraphOptions = {},
): GraphBuilder {
  const c = spec.config;
  const seq = options.sequenceLength ?? c.max_position_embeddings;
  if (!Number.isInteger(seq) || seq < 1 || seq > c.max_position_embeddings) {
    throw new InvalidArgumentError(
      "sequenceLength",
      `an integer in [1, ${c.max_position_embeddings}] (max_position_embeddings)`,
      seq,
    );
  }
  const layers = c.num_hidden_layers;
  for (const k of options.clipSkips ?? []) {
    if (!Number.isInteger(k) || k < 1 || k >= layers) {
      throw new InvalidArgumentError(
        "clipSkip",
        `an integer in [1, ${layers - 1}] (the text encoder has ${layers} layers)`,
        k,
      );
    }
  }
  const g = new GraphBuilder({ name: "text_encoder" });
  const w = WeightScope.bind(g, store, {
    ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
    ...(options.keyMap === undefined ? {} : { keyMap: options.keyMap }),
    ...(options.attention === undefined ? {} : { attention: options.attention }),
  });
  const model = new CLIPTextTransformer(w.at("text_model"), spec);
  const ids = g.input("input_ids", "int64", ["batch", seq]);
  const out = model.forward(ids, seq);
  g.output(out.lastHiddenState, "last_hidden_state");
  const pooled = g.output(
    g.scope("pooler", () => gatherPerBatch(g, out.lastHiddenState, eosPositions(g, ids, c.eos_token_id))),
    "pooler_output",
  );
  if (options.textProjection !== undefined) {
    const projection = new Linear(w.at("text_projection"), {
      inFeatures: c.hidden_size,
      outFeatures: options.textProjection,
      bias: false,
    });
    g.output(projection.forward(pooled), "text_embeds");
  }
  if (options.hiddenStates) out.hiddenStates.forEach((h, i) => g.output(h, `hidden_states.${i}`));
  for (const k of new Set(options.clipSkips ?? [])) {
    const h = out.hiddenStates[layers - k];
    if (!h) throw new InvalidArgumentError("clipSkip", `at most ${layers - 1}`, k);
    g.output(
      g.scope(`clip_skip_${k}`, () => model.final_layer_norm.forward(h)),
      `clip_skip_${k}`,
    );
  }
  w.finish({ ignoreUnexpected: IGNORED_KEYS });
  return g;
}
