/**
 * Embedding (torch.nn.Embedding): `weight` [num_embeddings, embedding_dim], looked up with Gather.
 */
import { GraphError } from "../errors.js";
import type { Value } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import { Module } from "./module.js";
import type { WeightScope } from "./weights.js";

export interface EmbeddingOptions {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
}

export class Embedding extends Module {
  readonly weight: Value;

  constructor(
    w: WeightScope,
    readonly options: EmbeddingOptions,
  ) {
    super(w);
    this.weight = w.param("weight", [options.numEmbeddings, options.embeddingDim]);
  }

  /** ids (int64/int32, any shape) -> [...ids.shape, embedding_dim]. */
  forward(ids: Value): Value {
    if (ids.dtype !== "int64" && ids.dtype !== "int32") {
      throw new GraphError(
        "Embedding",
        `${this.path}: ids must be int64 or int32 but ${ids.name} is ${ids.dtype}`,
      );
    }
    return this.scoped(() => op.Gather(this.graph, this.weight, ids, 0));
  }
}
