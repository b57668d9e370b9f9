import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { expectError } from "../../../test/helpers/run-graph.js";
import { tinySdDir, tinySdStore } from "../../../test/helpers/tiny-sd.js";
import { ConfigError, InvalidArgumentError, MissingWeightsError, UnsupportedError } from "../../errors.js";
import { type WeightStore, mapStore, randomWeights } from "../../nn/weight-store.js";
import { type HostTensor, maxAbsDiff, tensor } from "../../tensor.js";
import { readSafetensors } from "../../weights/safetensors.js";
import { CLIPTextModel } from "./clip-text-model.js";
import { buildCLIPTextGraph } from "./graph.js";
import { resolveClipSpec } from "./validate.js";

const tinyDir = tinySdDir("text_encoder");
const TINY = {
  architectures: ["CLIPTextModel"],
  hidden_size: 32,
  intermediate_size: 37,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  max_position_embeddings: 77,
  vocab_size: 49408,
  hidden_act: "quick_gelu",
  eos_token_id: 2,
};
/** SD2-like (OpenCLIP-derived) text encoder in miniature: erf gelu, eos 49407, layers kept by config. */
const SD2_LIKE = {
  ...TINY,
  hidden_act: "gelu",
  num_hidden_layers: 3,
  hidden_size: 16,
  num_attention_heads: 2,
  intermediate_size: 24,
  vocab_size: 1000,
  max_position_embeddings: 12,
  eos_token_id: 999,
  bos_token_id: 998,
};

function ids(rows: number[][]): HostTensor<"int64"> {
  return tensor(
    "int64",
    [rows.length, rows[0]?.length ?? 0],
    BigInt64Array.from(rows.flat(), (v) => BigInt(v)),
  );
}

/** Row `b` of a [B, S, H] tensor at position `s`. */
function at(t: HostTensor, b: number, s: number): Float32Array {
  const [, seq = 0, h = 0] = t.shape;
  return (t.data as Float32Array).slice((b * seq + s) * h, (b * seq + s + 1) * h);
}

describe("CLIPTextModel graph on the tiny checkpoint", () => {
  let store: WeightStore;
  beforeAll(async () => {
    store = await tinySdStore("text_encoder");
  });

  it("binds exactly the checkpoint's keys (none missing, none unexpected)", () => {
    const g = buildCLIPTextGraph(resolveClipSpec("tiny", TINY), store, {
      hiddenStates: true,
      clipSkips: [1],
    });
    expect(g.initializers.map((i) => i.name).sort()).toEqual([...store.keys()].sort());
    expect(g.inputs.map((v) => `${v.name}:${v.dtype}[${v.shape.join(",")}]`)).toEqual([
      "input_ids:int64[batch,77]",
    ]);
    expect(g.outputs.map((v) => v.name)).toEqual([
      "last_hidden_state",
      "pooler_output",
      "hidden_states.0",
      "hidden_states.1",
      "hidden_states.2",
      "clip_skip_1",
    ]);
  });

  it("ignores a stored position_ids buffer (older transformers checkpoints)", async () => {
    const tensors = await readSafetensors(join(tinyDir, "model.safetensors"));
    tensors.set("text_model.embeddings.position_ids", tensor("int64", [1, 77]));
    expect(() => buildCLIPTextGraph(resolveClipSpec("tiny", TINY), mapStore(tensors))).not.toThrow();
  });

  it("reports a config that does not fit the checkpoint as one MissingWeightsError", async () => {
    const e = await expectError(
      () => buildCLIPTextGraph(resolveClipSpec("tiny", { ...TINY, num_hidden_layers: 3 }), store),
      MissingWeightsError,
      "E_WEIGHTS_MISMATCH",
      "text_model.encoder.layers.2.layer_norm1.weight",
    );
    expect(e.missing.length).toBe(16);
    await expectError(
      () => buildCLIPTextGraph(resolveClipSpec("tiny", { ...TINY, intermediate_size: 64 }), store),
      MissingWeightsError,
      "E_WEIGHTS_MISMATCH",
      "mlp.fc1.weight is [37,32], expected [64,32]",
    );
  });

  it("uses hidden_act from the config (quick_gelu: Sigmoid; gelu: Erf)", () => {
    const nodes = (act: string): string[] =>
      buildCLIPTextGraph(resolveClipSpec("t", { ...SD2_LIKE, hidden_act: act }), randomWeights()).nodes.map(
        (n) => n.opType,
      );
    expect(nodes("quick_gelu")).toContain("Sigmoid");
    expect(nodes("quick_gelu")).not.toContain("Erf");
    expect(nodes("gelu")).toContain("Erf");
    expect(nodes("gelu_new")).toContain("Tanh");
  });
});

describe("CLIPTextModel config validation", () => {
  it("throws UnsupportedError for architectures with weights CLIPTextModel does not have", async () => {
    await expectError(
      () =>
        resolveClipSpec("text_encoder_2/config.json", {
          ...TINY,
          architectures: ["CLIPTextModelWithProjection"],
        }),
      UnsupportedError,
      "E_UNSUPPORTED",
      "CLIPTextModelWithProjection",
    );
  });

  it("throws ConfigError for heads that do not divide hidden_size and for unknown activations", async () => {
    await expectError(
      () => resolveClipSpec("c.json", { ...TINY, num_attention_heads: 5 }),
      ConfigError,
      "E_CONFIG",
      "num_attention_heads",
    );
    await expectError(
      () => resolveClipSpec("c.json", { ...TINY, hidden_act: "relu" }),
      ConfigError,
      "E_CONFIG",
      "hidden_act",
    );
  });

  it("throws InvalidArgumentError for a clip skip or sequence length the model cannot give", async () => {
    const spec = resolveClipSpec("t", TINY);
    await expectError(
      () => buildCLIPTextGraph(spec, randomWeights(), { clipSkips: [2] }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "clipSkip",
    );
    await expectError(
      () => buildCLIPTextGraph(spec, randomWeights(), { sequenceLength: 78 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "max_position_embeddings",
    );
  });
});

describe("CLIPTextModel runner on random weights", () => {
  const opened: CLIPTextModel[] = [];
  const load = async (...args: Parameters<typeof CLIPTextModel.load>): Promise<CLIPTextModel> => {
    const model = await CLIPTextModel.load(...args);
    opened.push(model);
    return model;
  };
  afterEach(async () => {
    for (const model of opened.splice(0)) await model.release();
  });

  it("runs an SD2-like config from the config alone, with clip skip and the eos_token_id pooling rule", async () => {
    const model = await load(
      { config: { ...SD2_LIKE, eos_token_id: 50 }, store: randomWeights({ seed: 2 }) },
      { intraOpNumThreads: 1 },
    );
    // The first eos (50) is at position 3 in row 0 and 5 in row 1; argmax(ids) would pick 4 and 0.
    const input = ids([
      [998, 5, 6, 50, 999, 50, 50, 50, 50, 50, 50, 50],
      [998, 7, 8, 9, 10, 50, 0, 0, 0, 0, 0, 0],
    ]);
    const out = await model.encode(input);
    expect(out.lastHiddenState.shape).toEqual([2, 12, 16]);
    expect(out.poolerOutput.shape).toEqual([2, 16]);
    expect(Array.from(out.poolerOutput.data.slice(0, 16))).toEqual(Array.from(at(out.lastHiddenState, 0, 3)));
    expect(Array.from(out.poolerOutput.data.slice(16))).toEqual(Array.from(at(out.lastHiddenState, 1, 5)));
    const skip1 = await model.encode(input, { clipSkip: 1 });
    const skip2 = await model.encode(input, { clipSkip: 2 });
    expect(skip1.promptEmbeds.shape).toEqual([2, 12, 16]);
    expect(maxAbsDiff(skip1.promptEmbeds, out.promptEmbeds)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(skip1.promptEmbeds, skip2.promptEmbeds)).toBeGreaterThan(1e-3);
    await expectError(
      () => model.encode(input, { clipSkip: 3 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "clipSkip",
    );
  });

  it("pools at argmax(input_ids) when eos_token_id is 2 (transformers' legacy rule)", async () => {
    const model = await load({
      config: { ...SD2_LIKE, eos_token_id: 2 },
      store: randomWeights({ seed: 2 }),
    });
    const input = ids([[998, 5, 2, 999, 7, 999, 0, 0, 0, 0, 0, 0]]);
    const out = await model.encode(input);
    expect(Array.from(out.poolerOutput.data)).toEqual(Array.from(at(out.lastHiddenState, 0, 3)));
  });

  it("rejects ids of the wrong shape or outside the vocabulary with InvalidArgumentError", async () => {
    const model = await load({ config: SD2_LIKE, store: randomWeights() });
    await expectError(
      () => model.encode(ids([[1, 2, 3]])),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "[batch, 12]",
    );
    await expectError(
      () => model.encode(ids([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1000]])),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "vocab_size",
    );
  });

  it("runs as float16 close to float32", async () => {
    const store = randomWeights({ seed: 4 });
    const input = ids([[998, 5, 6, 999, 999, 999, 999, 999, 999, 999, 999, 999]]);
    const f32 = await (await load({ config: SD2_LIKE, store })).encode(input);
    const f16 = await (
      await load({ config: SD2_LIKE, store }, { dtype: "float16" })
    ).encode(input, { clipSkip: 0 });
    expect(f16.lastHiddenState.dtype).toBe("float32");
    expect(maxAbsDiff(f16.lastHiddenState, f32.lastHiddenState)).toBeLessThan(2e-2);
  });
});
