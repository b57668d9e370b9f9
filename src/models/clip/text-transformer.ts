/**
 * CLIP's text transformer as transformers 4.36 builds it (models/clip/modeling_clip.py): token +
 * position embeddings, pre-LN encoder layers (layer_norm1 -> causal self-attention -> residual,
 * layer_norm2 -> fc1 -> hidden_act -> fc2 -> residual), final_layer_norm. Field names are the
 * checkpoint key segments under `text_model.`. No attention_mask: SD pipelines pass none, so padding
 * tokens are attended causally like any other token.
 */
import type { GraphBuilder, Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { activation } from "../../nn/activations.js";
import { Embedding } from "../../nn/embedding.js";
import { LayerNorm } from "../../nn/layer-norm.js";
import { Linear } from "../../nn/linear.js";
import { Module, moduleList } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import type { ClipSpec } from "./validate.js";

/**
 * What the encoder layers read from a spec: the text and the vision towers (../clip-vision) share
 * these layers (same keys, same maths; only the text tower passes a causal bias).
 */
export interface ClipLayerSpec {
  readonly config: Pick<
    ClipSpec["config"],
    "hidden_size" | "intermediate_size" | "num_attention_heads" | "layer_norm_eps"
  >;
  readonly act: ClipSpec["act"];
  readonly headDim: number;
}

export class CLIPTextEmbeddings extends Module {
  readonly token_embedding: Embedding;
  readonly position_embedding: Embedding;

  constructor(w: WeightScope, spec: ClipSpec) {
    super(w);
    const c = spec.config;
    this.token_embedding = new Embedding(w.at("token_embedding"), {
      numEmbeddings: c.vocab_size,
      embeddingDim: c.hidden_size,
    });
    this.position_embedding = new Embedding(w.at("position_embedding"), {
      numEmbeddings: c.max_position_embeddings,
      embeddingDim: c.hidden_size,
    });
  }

  /** ids [B, S] -> [B, S, hidden]; positions 0..S-1 (S static). */
  forward(ids: Value, sequenceLength: number): Value {
    const g = this.graph;
    return this.scoped(() => {
      const tokens = this.token_embedding.forward(ids);
      const all = this.position_embedding.weight;
      const positions =
        sequenceLength === all.shape[0]
          ? all
          : op.Slice(g, all, { starts: [0], ends: [sequenceLength], axes: [0] });
      return op.Add(g, tokens, positions);
    });
  }
}

export class CLIPAttention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly out_proj: Linear;

  constructor(
    w: WeightScope,
    readonly spec: ClipLayerSpec,
  ) {
    super(w);
    const d = spec.config.hidden_size;
    const linear = (name: string): Linear => new Linear(w.at(name), { inFeatures: d, outFeatures: d });
    this.q_proj = linear("q_proj");
    this.k_proj = linear("k_proj");
    this.v_proj = linear("v_proj");
    this.out_proj = linear("out_proj");
  }

  /** x [B, S, hidden], causal bias [1, 1, S, S] (none: bidirectional, the vision tower) -> [B, S, hidden]. */
  forward(x: Value, causalBias?: Value): Value {
    return this.scoped(() => {
      const out = op.multiHeadAttention(
        this.graph,
        this.q_proj.forward(x),
        this.k_proj.forward(x),
        this.v_proj.forward(x),
        {
          numHeads: this.spec.config.num_attention_heads,
          scale: this.spec.headDim ** -0.5,
          implementation: this.w.options.attention ?? "mha",
          ...(causalBias === undefined ? {} : { attentionBias: causalBias }),
        },
      );
      return this.out_proj.forward(out);
    });
  }
}

export class CLIPMLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(
    w: WeightScope,
    readonly spec: ClipLayerSpec,
  ) {
    super(w);
    const c = spec.config;
    this.fc1 = new Linear(w.at("fc1"), { inFeatures: c.hidden_size, outFeatures: c.intermediate_size });
    this.fc2 = new Linear(w.at("fc2"), { inFeatures: c.intermediate_size, outFeatures: c.hidden_size });
  }

  forward(x: Value): Value {
    return this.scoped(() => this.fc2.forward(activation(this.graph, this.fc1.forward(x), this.spec.act)));
  }
}

export class CLIPEncoderLayer extends Module {
  readonly self_attn: CLIPAttention;
  readonly layer_norm1: LayerNorm;
  readonly mlp: CLIPMLP;
  readonly layer_norm2: LayerNorm;

  constructor(w: WeightScope, spec: ClipLayerSpec) {
    super(w);
    const norm = { normalizedShape: spec.config.hidden_size, eps: spec.config.layer_norm_eps };
    this.self_attn = new CLIPAttention(w.at("self_attn"), spec);
    this.layer_norm1 = new LayerNorm(w.at("layer_norm1"), norm);
    this.mlp = new CLIPMLP(w.at("mlp"), spec);
    this.layer_norm2 = new LayerNorm(w.at("layer_norm2"), norm);
  }

  forward(x: Value, causalBias?: Value): Value {
    const g = this.graph;
    return this.scoped(() => {
      const h = op.Add(g, x, this.self_attn.forward(this.layer_norm1.forward(x), causalBias));
      return op.Add(g, h, this.mlp.forward(this.layer_norm2.forward(h)));
    });
  }
}

export class CLIPEncoder extends Module {
  readonly layers: readonly CLIPEncoderLayer[];
  constructor(
    w: WeightScope,
    spec: ClipLayerSpec & { readonly config: { readonly num_hidden_layers: number } },
  ) {
    super(w);
    this.layers = moduleList(
      w.at("layers"),
      spec.config.num_hidden_layers,
      (lw) => new CLIPEncoderLayer(lw, spec),
    );
  }
}

/** Additive causal mask [1, 1, S, S]: 0 on and below the diagonal, -inf above (key j > query i). */
export function causalAttentionBias(g: GraphBuilder, sequenceLength: number, dtype: Value["dtype"]): Value {
  const values: number[] = [];
  for (let i = 0; i < sequenceLength; i++)
    for (let j = 0; j < sequenceLength; j++) values.push(j > i ? -Infinity : 0);
  return g.constantOf(dtype, [1, 1, sequenceLength, sequenceLength], values);
}

export interface TextTransformerOutputs {
  /** Embeddings, then the output of each encoder layer (transformers' `hidden_states`, L + 1 entries). */
  readonly hiddenStates: readonly Value[];
  /** final_layer_norm(hiddenStates[L]). */
  readonly lastHiddenState: Value;
}

export class CLIPTextTransformer extends Module {
  readonly embeddings: CLIPTextEmbeddings;
  readonly encoder: CLIPEncoder;
  readonly final_layer_norm: LayerNorm;

  constructor(
    w: WeightScope,
    readonly spec: ClipSpec,
  ) {
    super(w);
    this.embeddings = new CLIPTextEmbeddings(w.at("embeddings"), spec);
    this.encoder = new CLIPEncoder(w.at("encoder"), spec);
    this.final_layer_norm = new LayerNorm(w.at("final_layer_norm"), {
      normalizedShape: spec.config.hidden_size,
      eps: spec.config.layer_norm_eps,
    });
  }

  forward(ids: Value, sequenceLength: number): TextTransformerOutputs {
    const g = this.graph;
    return this.scoped(() => {
      const bias = causalAttentionBias(g, sequenceLength, this.w.dtype);
      const hiddenStates: Value[] = [this.embeddings.forward(ids, sequenceLength)];
      for (const layer of this.encoder.layers)
        hiddenStates.push(layer.forward(hiddenStates[hiddenStates.length - 1] ?? ids, bias));
      const last = hiddenStates[hiddenStates.length - 1] ?? ids;
      return { hiddenStates, lastHiddenState: this.final_layer_norm.forward(last) };
    });
  }
}
