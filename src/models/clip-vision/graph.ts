/**
 * The CLIPVisionModelWithProjection graph (transformers 4.36): `pixel_values` [B, 3, S, S] (S =
 * image_size; transformers does not interpolate position embeddings) -> `image_embeds` [B,
 * projection_dim] = visual_projection(pooler_output) (no bias), `last_hidden_state` [B, T, hidden],
 * `pooler_output` [B, hidden] and `penultimate_hidden_state` = hidden_states[-2] (IP-Adapter plus's
 * image features). Optional: every `hidden_states.{i}` and `intermediate.embeddings`.
 *
 * Initializer names are the checkpoint keys (`vision_model.*`, `visual_projection.weight`). A stored
 * `vision_model.embeddings.position_ids` (transformers < 4.31) is ignored, and so are a full
 * CLIPModel's text keys (`text_model.*`, `text_projection.weight`, `logit_scale`).
 */
import { InvalidArgumentError } from "../../errors.js";
import { GraphBuilder } from "../../graph/builder.js";
import { Linear } from "../../nn/linear.js";
import type { GraphBuildOptions } from "../../nn/module.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { WeightScope } from "../../nn/weights.js";
import type { ClipVisionSpec } from "./validate.js";
import { CLIPVisionTransformer } from "./vision-transformer.js";

export interface ClipVisionGraphOptions extends GraphBuildOptions {
  /** Float dtype of weights and activations (default "float32"). */
  readonly dtype?: "float32" | "float16";
  /** Also output every `hidden_states.{i}` and `intermediate.embeddings` / `intermediate.patch_embeds` (default false). */
  readonly hiddenStates?: boolean;
}

export const CLIP_VISION_INPUT = "pixel_values";

/** The graph outputs every build has. */
export const CLIP_VISION_OUTPUTS = [
  "image_embeds",
  "last_hidden_state",
  "pooler_output",
  "penultimate_hidden_state",
] as const;

/** Checkpoint keys that carry no weights of the image tower. */
function ignoredKey(spec: ClipVisionSpec): (key: string) => boolean {
  return (k) =>
    k.endsWith("embeddings.position_ids") ||
    (spec.fullClipModel &&
      (k.startsWith("text_model.") || k === "text_projection.weight" || k === "logit_scale"));
}

/** Builds the graph and checks the checkpoint covers it exactly (one MissingWeightsError otherwise). */
export function buildCLIPVisionGraph(
  spec: ClipVisionSpec,
  store: WeightStore,
  options: ClipVisionGraphOptions = {},
): GraphBuilder {
  const c = spec.config;
  if (c.num_hidden_layers < 1)
    throw new InvalidArgumentError("num_hidden_layers", "at least 1", c.num_hidden_layers);
  const g = new GraphBuilder({ name: "image_encoder" });
  const w = WeightScope.bind(g, store, {
    ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
    ...(options.attention === undefined ? {} : { attention: options.attention }),
  });
  const model = new CLIPVisionTransformer(w.at("vision_model"), spec);
  const projection = new Linear(w.at("visual_projection"), {
    inFeatures: c.hidden_size,
    outFeatures: c.projection_dim,
    bias: false,
  });
  const pixels = g.input(CLIP_VISION_INPUT, w.dtype, ["batch", c.num_channels, c.image_size, c.image_size]);
  const out = model.forward(pixels);
  const penultimate = out.hiddenStates[out.hiddenStates.length - 2] ?? out.lastHiddenState;
  g.output(projection.forward(out.poolerOutput), "image_embeds");
  g.output(out.lastHiddenState, "last_hidden_state");
  g.output(out.poolerOutput, "pooler_output");
  g.output(penultimate, "penultimate_hidden_state");
  if (options.hiddenStates) {
    out.hiddenStates.forEach((h, i) => g.output(h, `hidden_states.${i}`));
    g.output(out.embeddings, "intermediate.embeddings");
    g.output(out.patchEmbeds, "intermediate.patch_embeds");
  }
  w.finish({ ignoreUnexpected: ignoredKey(spec) });
  return g;
}
