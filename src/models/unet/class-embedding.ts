/**
 * UNet2DConditionModel's class embedding, as diffusers 0.26.3 builds it from `class_embed_type` and
 * `num_class_embeds` (`class_embedding`, keys under `class_embedding.`), added to the time
 * embedding before `time_embedding_act_fn`:
 * - `num_class_embeds` without a type: a table [num_class_embeds, time_embed_dim], class_labels int64 [B];
 * - "timestep": the UNet's own time_proj of class_labels [B], then a TimestepEmbedding (act_fn);
 * - "identity": class_labels [B, time_embed_dim] as they are;
 * - "projection": a TimestepEmbedding (silu) of class_labels [B, projection_class_embeddings_input_dim];
 * - "simple_projection": a Linear of class_labels [B, projection_class_embeddings_input_dim].
 * `class_embeddings_concat` (concatenating instead of adding) is refused where the spec is resolved.
 * ControlNetModel builds the same module (its time_proj is always the sinusoidal one).
 */
import { ConfigError, GraphError, InvalidArgumentError } from "../../errors.js";
import type { GraphBuilder, Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { type DType, type HostTensor, tensor, toFloat32 } from "../../tensor.js";
import { Embedding } from "../../nn/embedding.js";
import { Linear } from "../../nn/linear.js";
import type { WeightScope } from "../../nn/weights.js";
import type { UNet2DConditionModelConfig } from "./config.js";

/** The config fields a class embedding reads (UNet2DConditionModel's and ControlNetModel's). */
export type ClassEmbeddingConfig = Pick<
  UNet2DConditionModelConfig,
  "class_embed_type" | "num_class_embeds" | "projection_class_embeddings_input_dim" | "act_fn"
>;
import { TimestepEmbedding } from "./embeddings.js";

/** Graph input name of the class labels. */
export const CLASS_LABELS_INPUT = "class_labels";

export interface ClassEmbedding {
  /** The `class_labels` input: dtype and shape. */
  readonly input: { readonly dtype: DType; readonly shape: readonly (string | number)[] };
  /** [B, time_embed_dim] in `dtype` from the labels. */
  forward(labels: Value, dtype: DType): Value;
}

/**
 * The class embedding a config asks for, or null. `timeProj` is the UNet's time_proj (the
 * "timestep" type runs the labels through it); `timestepInputDim` its output width.
 */
export function classEmbedding(
  g: GraphBuilder,
  w: WeightScope,
  c: ClassEmbeddingConfig,
  file: string,
  timeEmbedDim: number,
  timeProj: { forward(g: GraphBuilder, timestep: Value): Value },
  timestepInputDim: number,
): ClassEmbedding | null {
  const type = c.class_embed_type;
  const at = w.at("class_embedding");
  if (type === null) {
    if (c.num_class_embeds === null) return null;
    const table = new Embedding(at, { numEmbeddings: c.num_class_embeds, embeddingDim: timeEmbedDim });
    return {
      input: { dtype: "int64", shape: ["class_batch"] },
      forward: (labels, dtype) => op.Cast(g, table.forward(labels), dtype),
    };
  }
  if (type === "timestep") {
    const mlp = new TimestepEmbedding(at, { inChannels: timestepInputDim, timeEmbedDim, actFn: c.act_fn });
    return {
      input: { dtype: "float32", shape: ["class_batch"] },
      forward: (labels, dtype) =>
        op.Cast(g, mlp.forward(op.Cast(g, timeProj.forward(g, labels), dtype)), dtype),
    };
  }
  if (type === "identity") {
    return {
      input: { dtype: "float32", shape: ["class_batch", timeEmbedDim] },
      forward: (labels, dtype) => op.Cast(g, labels, dtype),
    };
  }
  if (type === "projection" || type === "simple_projection") {
    const dim = c.projection_class_embeddings_input_dim;
    if (dim === null)
      throw new ConfigError(
        file,
        "projection_class_embeddings_input_dim",
        `a number with class_embed_type "${type}"`,
        dim,
      );
    const project =
      type === "projection"
        ? new TimestepEmbedding(at, { inChannels: dim, timeEmbedDim })
        : new Linear(at, { inFeatures: dim, outFeatures: timeEmbedDim });
    return {
      input: { dtype: "float32", shape: ["class_batch", dim] },
      forward: (labels, dtype) => op.Cast(g, project.forward(op.Cast(g, labels, dtype)), dtype),
    };
  }
  throw new ConfigError(
    file,
    "class_embed_type",
    'null, "timestep", "identity", "projection" or "simple_projection"',
    type,
  );
}

/** emb + the class embedding of `labels` (emb as it is for a model without class embeddings). */
export function addClassEmbedding(
  g: GraphBuilder,
  model: string,
  emb: Value,
  embedding: ClassEmbedding | null,
  labels: Value | undefined,
): Value {
  if (embedding === null) return emb;
  if (labels === undefined)
    throw new GraphError(model, "class_labels should be provided when the config has class embeddings");
  return op.Add(g, emb, embedding.forward(labels, emb.dtype));
}

/**
 * The class_labels feed of a session (`inputs`: its input specs): none for a model without class
 * embeddings (and an error if labels are given), the labels in the input's dtype otherwise (torch
 * takes integer or float labels alike).
 */
export function classLabelsFeed(
  inputs: readonly { readonly name: string; readonly dtype?: string | undefined }[],
  labels: HostTensor | undefined,
  model: string,
): Record<string, HostTensor> {
  const spec = inputs.find((i) => i.name === CLASS_LABELS_INPUT);
  if (spec === undefined) {
    if (labels !== undefined)
      throw new InvalidArgumentError(
        "classLabels",
        `none: the ${model} config has no class embeddings`,
        "labels",
      );
    return {};
  }
  if (labels === undefined)
    throw new InvalidArgumentError(
      "classLabels",
      `class labels: the ${model} config has class embeddings`,
      undefined,
      {
        hint: "diffusers: class_labels should be provided when num_class_embeds > 0",
      },
    );
  if (spec.dtype === "float32") return { [CLASS_LABELS_INPUT]: toFloat32(labels) };
  if (labels.dtype === "int64") return { [CLASS_LABELS_INPUT]: labels };
  const ids = Array.from(labels.data as ArrayLike<number | bigint>, (v) => BigInt(Math.trunc(Number(v))));
  return { [CLASS_LABELS_INPUT]: tensor("int64", labels.shape, BigInt64Array.from(ids)) };
}
