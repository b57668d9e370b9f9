/**
 * CLIP's image tower as transformers 4.36 builds it (models/clip/modeling_clip.py:
 * CLIPVisionEmbeddings, CLIPVisionTransformer): patch embedding (conv, kernel = stride = patch, no
 * bias), tokens [CLS, patches row-major] + position embedding, `pre_layrnorm` (sic), the pre-LN
 * encoder layers shared with the text tower (../clip/text-transformer.ts) with bidirectional
 * attention, and `post_layernorm` on the CLS token only (pooler_output). There is no final
 * LayerNorm on the sequence: last_hidden_state is the last layer's raw output. Field names are the
 * checkpoint key segments under `vision_model.`.
 */
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { Conv2d } from "../../nn/conv.js";
import { Embedding } from "../../nn/embedding.js";
import { LayerNorm } from "../../nn/layer-norm.js";
import { Module } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import { CLIPEncoder } from "../clip/text-transformer.js";
import type { ClipVisionSpec } from "./validate.js";

export class CLIPVisionEmbeddings extends Module {
  /** [hidden], a bare parameter (key `class_embedding`, no `.weight`). */
  readonly class_embedding: Value;
  readonly patch_embedding: Conv2d;
  readonly position_embedding: Embedding;

  constructor(
    w: WeightScope,
    readonly spec: ClipVisionSpec,
  ) {
    super(w);
    const c = spec.config;
    this.class_embedding = w.param("class_embedding", [c.hidden_size]);
    this.patch_embedding = new Conv2d(w.at("patch_embedding"), {
      inChannels: c.num_channels,
      outChannels: c.hidden_size,
      kernelSize: c.patch_size,
      stride: c.patch_size,
      bias: false,
    });
    this.position_embedding = new Embedding(w.at("position_embedding"), {
      numEmbeddings: spec.tokens,
      embeddingDim: c.hidden_size,
    });
  }

  /**
   * pixel_values [B, 3, S, S] -> embeddings [B, 1 + grid^2, hidden] (before pre_layrnorm) and the
   * patch conv's output [B, hidden, grid, grid].
   */
  forward(pixelValues: Value): { readonly embeddings: Value; readonly patchEmbeds: Value } {
    const g = this.graph;
    const hidden = this.spec.config.hidden_size;
    return this.scoped(() => {
      const patches = this.patch_embedding.forward(pixelValues); // [B, W, g, g]
      const tokens = op.Transpose(g, op.Reshape(g, patches, [0, 0, -1]), [0, 2, 1]); // [B, g*g, W]
      const batch = op.Shape(g, pixelValues, { start: 0, end: 1 });
      const cls = op.Expand(
        g,
        op.Reshape(g, this.class_embedding, [1, 1, hidden]),
        op.Concat(g, [batch, g.int64s([1, hidden])], 0),
      );
      const embeddings = op.Add(g, op.Concat(g, [cls, tokens], 1), this.position_embedding.weight);
      return { embeddings, patchEmbeds: patches };
    });
  }
}

export interface VisionTransformerOutputs {
  /** pre_layrnorm(embeddings), then the output of each encoder layer (transformers' `hidden_states`, L + 1 entries). */
  readonly hiddenStates: readonly Value[];
  /** The last layer's output (no LayerNorm), [B, T, hidden]. */
  readonly lastHiddenState: Value;
  /** post_layernorm(lastHiddenState[:, 0]), [B, hidden]. */
  readonly poolerOutput: Value;
  /** The raw embeddings (before pre_layrnorm) and the patch conv output, for tests. */
  readonly embeddings: Value;
  readonly patchEmbeds: Value;
}

export class CLIPVisionTransformer extends Module {
  readonly embeddings: CLIPVisionEmbeddings;
  readonly pre_layrnorm: LayerNorm;
  readonly encoder: CLIPEncoder;
  readonly post_layernorm: LayerNorm;

  constructor(
    w: WeightScope,
    readonly spec: ClipVisionSpec,
  ) {
    super(w);
    const norm = { normalizedShape: spec.config.hidden_size, eps: spec.config.layer_norm_eps };
    this.embeddings = new CLIPVisionEmbeddings(w.at("embeddings"), spec);
    this.pre_layrnorm = new LayerNorm(w.at("pre_layrnorm"), norm);
    this.encoder = new CLIPEncoder(w.at("encoder"), spec);
    this.post_layernorm = new LayerNorm(w.at("post_layernorm"), norm);
  }

  forward(pixelValues: Value): VisionTransformerOutputs {
    const g = this.graph;
    return this.scoped(() => {
      const { embeddings, patchEmbeds } = this.embeddings.forward(pixelValues);
      const hiddenStates: Value[] = [this.pre_layrnorm.forward(embeddings)];
      for (const layer of this.encoder.layers)
        hiddenStates.push(layer.forward(hiddenStates[hiddenStates.length - 1] ?? embeddings));
      const last = hiddenStates[hiddenStates.length - 1] ?? embeddings;
      const cls = op.Squeeze(g, op.Slice(g, last, { starts: [0], ends: [1], axes: [1] }), [1]);
      return {
        hiddenStates,
        lastHiddenState: last,
        poolerOutput: this.post_layernorm.forward(cls),
        embeddings,
        patchEmbeds,
      };
    });
  }
}
