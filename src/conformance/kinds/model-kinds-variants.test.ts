import { describe, expect, it } from "vitest";
import { resolveClipSpec } from "../../models/clip/validate.js";
import { type HostTensor, tensor } from "../../tensor.js";
import { padEncoding, padsToLongest, parseCallOptions } from "./tokenizer.js";
import { unetCallInputs } from "./unet.js";

describe("model fixture kinds: settings of held-out fixtures", () => {
  it("tokenizer: padding='longest' / True pads rows to the longest prompt with the pad id", () => {
    expect(padsToLongest("tokenizer(texts, padding='longest')")).toBe(true);
    expect(padsToLongest("tokenizer(texts, padding=True)")).toBe(true);
    expect(padsToLongest("tokenizer(text, padding='max_length', max_length=77)")).toBe(false);
    expect(parseCallOptions("tokenizer(texts, padding=True)").padding).toBe("none");
    const e = {
      inputIds: tensor("int64", [1, 3], BigInt64Array.of(49406n, 320n, 49407n)),
      attentionMask: tensor("int64", [1, 3], BigInt64Array.of(1n, 1n, 1n)),
    };
    const padded = padEncoding(e, 5, 0);
    expect([...padded.inputIds.data]).toEqual([49406n, 320n, 49407n, 0n, 0n]);
    expect([...padded.attentionMask.data]).toEqual([1n, 1n, 1n, 0n, 0n]);
    expect(padded.inputIds.shape).toEqual([1, 5]);
  });

  it("clip: maps transformers hidden_act names to the same function", () => {
    const base = { hidden_size: 8, num_attention_heads: 2 };
    const act = (hidden_act: string): string => resolveClipSpec("c", { ...base, hidden_act }).act;
    expect(act("gelu_pytorch_tanh")).toBe("gelu_tanh");
    expect(act("gelu_new")).toBe("gelu_tanh");
    expect(act("gelu_python")).toBe("gelu");
    expect(act("swish")).toBe("silu");
    expect(act("quick_gelu")).toBe("quick_gelu");
    expect(() => act("relu")).toThrow(/hidden_act/);
  });

  it("unet call: return_dict, class_labels and timestep_cond are accepted, other keywords refused by name", () => {
    const inputs = new Map([
      ["sample", tensor("float32", [1, 4, 2, 2])],
      ["ehs", tensor("float32", [1, 3, 8])],
    ]);
    const parsed = unetCallInputs("unet(sample, 7, encoder_hidden_states=ehs, return_dict=False)[0]", inputs);
    expect(parsed.timestep).toBe(7);
    expect(() =>
      unetCallInputs("unet(sample, 7, encoder_hidden_states=ehs, added_cond_kwargs=ehs).sample", inputs),
    ).toThrow(/added_cond_kwargs/);
    // class_labels and timestep_cond are fed (keyword or positional, None = left out)
    const labels = new Map<string, HostTensor>([
      ...inputs,
      ["labels", tensor("int64", [1], BigInt64Array.of(3n))],
    ]);
    const withLabels = unetCallInputs(
      "unet(sample, 7, encoder_hidden_states=ehs, class_labels=labels, timestep_cond=ehs)",
      labels,
    );
    expect(withLabels.classLabels?.data[0]).toBe(3n);
    expect(withLabels.timestepCond?.shape).toEqual([1, 3, 8]);
    expect(unetCallInputs("unet(sample, 7, ehs, labels)", labels).classLabels?.shape).toEqual([1]);
    expect(unetCallInputs("unet(sample, 7, ehs, None)", labels).classLabels).toBeUndefined();
  });
});
