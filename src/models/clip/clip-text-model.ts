/**
 * CLIPTextModel runner: loads a text encoder (component folder or config + weight store), builds its
 * graph (graph.ts; weights are checked at load) and runs it on ONNX Runtime; compiled by the runner
 * family's one policy (../model-runner.ts: at load unless `compile: "first-use"`).
 *
 *   const textEncoder = await CLIPTextModel.load("model/text_encoder");
 *   const { promptEmbeds } = await textEncoder.encode(tokenizer.encodeBatch(prompts), { clipSkip: 1 });
 */
import { GraphError, InvalidArgumentError, throwIfAborted } from "../../errors.js";
import { type HostTensor, elementAsNumber, shapeToString, tensor, toFloat32 } from "../../tensor.js";
import type { ModelLoadOptions } from "../compiled-graph.js";
import { type ComponentSource, resolveComponent } from "../component-source.js";
import { ModelRunner, RunnerGraph } from "../model-runner.js";
import type { CLIPTextConfig } from "./config.js";
import { type ClipGraphOptions, buildCLIPTextGraph } from "./graph.js";
import { type ClipSpec, resolveClipSpec } from "./validate.js";

export interface CLIPTextModelLoadOptions
  extends
    ModelLoadOptions,
    Pick<ClipGraphOptions, "dtype" | "attention" | "keyMap" | "sequenceLength" | "textProjection"> {}

export interface CLIPTextEncodeOptions {
  /**
   * Layers to skip at the end (diffusers `clip_skip`, default 0): promptEmbeds =
   * final_layer_norm(hidden_states[-(clipSkip + 1)]). 1 is what A1111 calls "CLIP skip 2".
   */
  readonly clipSkip?: number;
  readonly signal?: AbortSignal;
}

export interface CLIPTextOutputs {
  /** What the UNet is conditioned on: lastHiddenState, or the clip-skipped states. [B, S, hidden]. */
  readonly promptEmbeds: HostTensor<"float32">;
  /** final_layer_norm(output of the last layer), [B, S, hidden]. */
  readonly lastHiddenState: HostTensor<"float32">;
  /** lastHiddenState at each sequence's eos token, [B, hidden]. */
  readonly poolerOutput: HostTensor<"float32">;
  /** text_projection(poolerOutput), [B, projection_dim]: only when loaded with `textProjection`. */
  readonly textEmbeds?: HostTensor<"float32">;
}

export class CLIPTextModel extends ModelRunner {
  private constructor(
    graph: RunnerGraph,
    readonly spec: ClipSpec,
    /** Token sequence length the graph takes. */
    readonly sequenceLength: number,
  ) {
    super("CLIPTextModel", [graph]);
  }

  /** Loads config and weights, validates the config and binds every weight (errors surface here). */
  static async load(source: ComponentSource, options: CLIPTextModelLoadOptions = {}): Promise<CLIPTextModel> {
    const component = await resolveComponent(source, "transformers");
    const spec = resolveClipSpec(component.configName, component.config);
    const layers = spec.config.num_hidden_layers;
    // Every clip skip is an output of the one graph (a LayerNorm each): one session serves them all.
    const clipSkips = Array.from({ length: layers - 1 }, (_, i) => i + 1);
    const graph = buildCLIPTextGraph(spec, component.store, {
      clipSkips,
      ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
      ...(options.attention === undefined ? {} : { attention: options.attention }),
      ...(options.keyMap === undefined ? {} : { keyMap: options.keyMap }),
      ...(options.sequenceLength === undefined ? {} : { sequenceLength: options.sequenceLength }),
      ...(options.textProjection === undefined ? {} : { textProjection: options.textProjection }),
    });
    return ModelRunner.opened(
      new CLIPTextModel(
        new RunnerGraph("text_encoder", graph, component.weightsId, options),
        spec,
        options.sequenceLength ?? spec.config.max_position_embeddings,
      ),
      options,
    );
  }

  get config(): CLIPTextConfig {
    return this.spec.config;
  }

  /** inputIds int64 (or int32) [B, sequenceLength] -> prompt embeddings, last hidden state, pooled output. */
  async encode(inputIds: HostTensor, options: CLIPTextEncodeOptions = {}): Promise<CLIPTextOutputs> {
    const ids = this.checkIds(inputIds);
    const clipSkip = options.clipSkip ?? 0;
    const layers = this.spec.config.num_hidden_layers;
    if (!Number.isInteger(clipSkip) || clipSkip < 0 || clipSkip >= layers) {
      throw new InvalidArgumentError(
        "clipSkip",
        `an integer in [0, ${layers - 1}] (the text encoder has ${layers} layers)`,
        clipSkip,
      );
    }
    throwIfAborted(options.signal, "CLIPTextModel encode");
    const session = await this.openSession();
    const projected = session.outputs.some((o) => o.name === "text_embeds");
    const names = [
      "last_hidden_state",
      "pooler_output",
      ...(clipSkip > 0 ? [`clip_skip_${clipSkip}`] : []),
      ...(projected ? ["text_embeds"] : []),
    ];
    const out = await session.run(
      { input_ids: ids },
      { outputs: names, ...(options.signal === undefined ? {} : { signal: options.signal }) },
    );
    const get = (name: string): HostTensor<"float32"> => {
      const t = out[name];
      if (!t) throw new GraphError("CLIPTextModel", `internal: the session returned no output "${name}"`);
      return toFloat32(t);
    };
    const lastHiddenState = get("last_hidden_state");
    return {
      lastHiddenState,
      poolerOutput: get("pooler_output"),
      promptEmbeds: clipSkip > 0 ? get(`clip_skip_${clipSkip}`) : lastHiddenState,
      ...(projected ? { textEmbeds: get("text_embeds") } : {}),
    };
  }

  private checkIds(inputIds: HostTensor): HostTensor<"int64"> {
    const expected = `int64 token ids of shape [batch, ${this.sequenceLength}]`;
    if (
      (inputIds.dtype !== "int64" && inputIds.dtype !== "int32") ||
      inputIds.shape.length !== 2 ||
      inputIds.shape[1] !== this.sequenceLength
    ) {
      throw new InvalidArgumentError(
        "inputIds",
        expected,
        `${inputIds.dtype}${shapeToString(inputIds.shape)}`,
        {
          hint: "tokenize with padding to max_length (CLIPTokenizer.encodeBatch)",
        },
      );
    }
    const vocab = this.spec.config.vocab_size;
    const values = new BigInt64Array(inputIds.data.length);
    for (let i = 0; i < values.length; i++) {
      const id = elementAsNumber(inputIds, i);
      if (!(id >= 0 && id < vocab)) {
        throw new InvalidArgumentError(
          `inputIds (element ${i})`,
          `a token id in [0, ${vocab}) (vocab_size)`,
          id,
          {
            hint: "the tokenizer does not belong to this text encoder",
          },
        );
      }
      values[i] = BigInt(id);
    }
    return tensor("int64", inputIds.shape, values);
  }
}
