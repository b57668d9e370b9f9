import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { tensor, type HostTensor } from "../tensor.js";
import { CLIPTokenizer } from "../tokenizer/clip-tokenizer.js";
import {
  applyEmphasis,
  type ChunkingTokenizer,
  emptyChunk,
  encodePromptWeighted,
  parsePromptAttention,
  promptChunks,
} from "./prompt-weighting.js";
import type { TextEncoder } from "./types.js";

const pairs = (prompt: string): [string, number][] =>
  parsePromptAttention(prompt).map((p) => [p.text, p.weight]);

describe("parsePromptAttention (A1111 prompt_parser.py doctests and rules)", () => {
  it("reproduces A1111's documented examples", () => {
    expect(pairs("normal text")).toEqual([["normal text", 1]]);
    expect(pairs("an (important) word")).toEqual([
      ["an ", 1],
      ["important", 1.1],
      [" word", 1],
    ]);
    expect(pairs("(unbalanced")).toEqual([["unbalanced", 1.1]]);
    expect(pairs("\\(literal\\]")).toEqual([["(literal]", 1]]);
    expect(pairs("(unnecessary)(parens)")).toEqual([["unnecessaryparens", 1.1]]);
    expect(pairs("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")).toEqual([
      ["a ", 1],
      ["house", 1.5730000000000004],
      [" ", 1.1],
      ["on", 1],
      [" a ", 1.1],
      ["hill", 0.55],
      [", sun, ", 1.1],
      ["sky", 1.4641000000000006],
      [".", 1.1],
    ]);
  });

  it("multiplies nested groups and divides for square brackets", () => {
    expect(pairs("((word))")).toEqual([["word", 1.1 * 1.1]]);
    expect(pairs("((word))")[0]?.[1]).toBe(1.2100000000000002);
    expect(pairs("[word]")).toEqual([["word", 1 / 1.1]]);
    expect(pairs("[[word]]")).toEqual([["word", 1 / 1.1 / 1.1]]);
    expect(pairs("(word:1.3)")).toEqual([["word", 1.3]]);
    expect(pairs("(a (b:2) c:0.5)")).toEqual([
      ["a ", 0.5],
      ["b", 1],
      [" c", 0.5],
    ]);
    expect(pairs("(word:-.5)")).toEqual([["word", -0.5]]);
    expect(pairs("([word])")).toEqual([["word", (1 / 1.1) * 1.1]]);
  });

  it("treats unmatched closers, lone colons and escapes as text", () => {
    expect(pairs("a) b] c:1.2) d: e")).toEqual([["a) b] c:1.2) d: e", 1]]);
    expect(pairs("(a\\)b)")).toEqual([["a)b", 1.1]]);
    expect(pairs("a \\\\ b")).toEqual([["a \\ b", 1]]);
    expect(pairs("a \\b")).toEqual([["a b", 1]]); // a lone backslash is dropped
    expect(pairs("[unclosed (both")).toEqual([
      ["unclosed ", 1 / 1.1],
      ["both", 1.1 / 1.1],
    ]);
    expect(pairs("")).toEqual([["", 1]]);
    expect(() => parsePromptAttention("(a:1.2.3)")).toThrow(InvalidArgumentError);
  });

  it("marks BREAK outside groups and reads it as a weighted word inside one", () => {
    expect(pairs("a BREAK b")).toEqual([
      ["a", 1],
      ["BREAK", -1],
      ["b", 1],
    ]);
    expect(pairs("BREAKING news, a break")).toEqual([["BREAKING news, a break", 1]]);
    expect(pairs("(a BREAK b)")).toEqual([
      ["a", 1.1],
      ["BREAK", -1.1],
      ["b", 1.1],
    ]);
  });
});

/** Word-level stand-in for CLIP: one token per word or comma, ids from a growing table. */
function fakeTokenizer(pad?: number): ChunkingTokenizer & { words: Map<string, number> } {
  const words = new Map<string, number>([[",</w>", 11]]);
  return {
    words,
    tokenize: (text) => (text.toLowerCase().match(/[a-z0-9]+|,/g) ?? []).map((w) => `${w}</w>`),
    tokenToId: (token) => {
      if (!words.has(token)) words.set(token, 100 + words.size);
      return words.get(token) ?? 0;
    },
    bosTokenId: 1,
    eosTokenId: 2,
    padTokenId: pad ?? 2,
    unkTokenId: 2,
  };
}

const words = (n: number, prefix = "w"): string =>
  Array.from({ length: n }, (_, i) => `${prefix}${i}`).join(" ");

describe("promptChunks (A1111 tokenize_line)", () => {
  it("wraps a short prompt as [bos, tokens, eos...] with its weights", () => {
    const tok = fakeTokenizer();
    const [chunk, ...rest] = promptChunks(tok, "a (cat:1.5)");
    expect(rest).toEqual([]);
    expect(chunk?.ids.length).toBe(77);
    expect(chunk?.ids.slice(0, 4)).toEqual([1, tok.tokenToId("a</w>"), tok.tokenToId("cat</w>"), 2]);
    expect(chunk?.ids.slice(3).every((id) => id === 2)).toBe(true);
    expect(chunk?.weights.slice(0, 4)).toEqual([1, 1, 1.5, 1]);
    expect(chunk?.weights.length).toBe(77);
  });

  it("splits at 75 tokens when no comma is near", () => {
    const chunks = promptChunks(fakeTokenizer(), words(80));
    expect(chunks.length).toBe(2);
    expect(chunks[0]?.ids.filter((id) => id > 2).length).toBe(75);
    expect(chunks[1]?.ids.filter((id) => id > 2).length).toBe(5);
    // A comma 25 tokens back is beyond the 20-token backtrack: still a plain split.
    const far = promptChunks(fakeTokenizer(), `${words(50)}, ${words(40, "x")}`);
    expect(far[0]?.ids.filter((id) => id > 2).length).toBe(75);
  });

  it("moves the words after the last comma within 20 tokens to the next chunk", () => {
    const tok = fakeTokenizer();
    const chunks = promptChunks(tok, `${words(70)}, ${words(10, "x")}`);
    expect(chunks.length).toBe(2);
    // chunk 1: bos, 70 words, the comma, then eos padding; chunk 2 starts with x0
    expect(chunks[0]?.ids[71]).toBe(11);
    expect(chunks[0]?.ids.slice(72).every((id) => id === 2)).toBe(true);
    expect(chunks[1]?.ids.slice(1, 11)).toEqual(
      words(10, "x")
        .split(" ")
        .map((w) => tok.tokenToId(`${w}</w>`)),
    );
    expect(chunks[1]?.ids[11]).toBe(2);
    // backtrack 0 switches it off
    const off = promptChunks(tok, `${words(70)}, ${words(10, "x")}`, { commaBacktrack: 0 });
    expect(off[0]?.ids[76]).toBe(2);
    expect(off[0]?.ids[75]).toBe(tok.tokenToId("x3</w>"));
  });

  it("starts a new chunk at BREAK, even an empty one", () => {
    const tok = fakeTokenizer();
    const two = promptChunks(tok, "a red car BREAK blue sky");
    expect(two.length).toBe(2);
    expect(two[1]?.ids.slice(0, 4)).toEqual([1, tok.tokenToId("blue</w>"), tok.tokenToId("sky</w>"), 2]);
    const lead = promptChunks(tok, "BREAK a");
    expect(lead.length).toBe(2);
    expect(lead[0]).toEqual(emptyChunk(tok));
    expect(promptChunks(tok, "a BREAK").length).toBe(1);
    expect(promptChunks(tok, "").length).toBe(1);
  });

  it("pads with the pad token after the first eos when pad != eos (SD 2.x)", () => {
    const chunk = promptChunks(fakeTokenizer(0), "a cat")[0];
    expect(chunk?.ids.slice(0, 5)).toEqual([1, 101, 102, 2, 0]);
    expect(chunk?.ids.slice(4).every((id) => id === 0)).toBe(true);
  });

  it("gives diffusers' token ids for a plain short prompt (real CLIP tokenizer)", async () => {
    const tok = await CLIPTokenizer.fromPretrained("test/fixtures/golden/tiny-sd/tokenizer");
    const prompt = "a photo of a red car, highly detailed";
    const chunks = promptChunks(tok, prompt);
    expect(chunks.length).toBe(1);
    expect(chunks[0]?.ids).toEqual(tok.encode(prompt, { padding: "max_length", truncation: true }));
    expect(promptChunks(tok, "a (photo) of a red car")[0]?.ids).toEqual(
      tok.encode("a photo of a red car", { padding: "max_length", truncation: true }),
    );
  });
});

/** A deterministic stand-in encoder: value depends on the token id, its position and the channel. */
const CHANNELS = 4;
const fakeEncoder = (calls: number[] = []): TextEncoder => ({
  encode: (ids) => {
    const [batch, length] = ids.shape as [number, number];
    calls.push(batch);
    const out = tensor("float32", [batch, length, CHANNELS]);
    for (let b = 0; b < batch; b++)
      for (let t = 0; t < length; t++)
        for (let c = 0; c < CHANNELS; c++)
          out.data[(b * length + t) * CHANNELS + c] =
            (Number(ids.data[b * length + t]) % 13) * 0.1 + t * 0.01 - c * 0.2;
    return Promise.resolve(out);
  },
});

const mean = (a: ArrayLike<number>): number => Array.from(a).reduce((s, v) => s + v, 0) / a.length;

describe("applyEmphasis (A1111 EmphasisOriginal)", () => {
  it("scales each token by its weight, then restores the chunk's mean", () => {
    const z = tensor("float32", [1, 3, 2], new Float32Array([1, 2, 3, 4, 5, 6]));
    const out = applyEmphasis(z, [1, 2, 0.5]);
    const weighted = [1, 2, 6, 8, 2.5, 3];
    const k = 21 / 6 / mean(weighted);
    const expected = weighted.map((v) => v * k);
    Array.from(out.data).forEach((v, i) => expect(v).toBeCloseTo(expected[i] ?? NaN, 6));
    expect(mean(out.data)).toBeCloseTo(mean(z.data), 6);
    expect(applyEmphasis(z, [1, 1, 1])).toBe(z);
    expect(() => applyEmphasis(z, [1, 1])).toThrow(InvalidArgumentError);
  });
});

describe("encodePromptWeighted", () => {
  const slice = (t: HostTensor<"float32">, chunk: number): number[] =>
    Array.from(t.data.slice(chunk * 77 * CHANNELS, (chunk + 1) * 77 * CHANNELS));

  it("returns [uncond, cond] of equal length, the shorter padded with empty chunks", async () => {
    const tok = fakeTokenizer();
    const calls: number[] = [];
    const enc = fakeEncoder(calls);
    const [uncond, cond] = await encodePromptWeighted(tok, enc, `${words(80)} (hat:1.2)`, "blurry");
    expect(calls).toEqual([4]); // all chunks in one batch
    expect(cond.shape).toEqual([1, 154, CHANNELS]);
    expect(uncond.shape).toEqual([1, 154, CHANNELS]);
    const [emptyUncond] = await encodePromptWeighted(tok, enc, "", "");
    expect(slice(uncond, 1)).toEqual(slice(emptyUncond, 0));
    const [negLong, posShort] = await encodePromptWeighted(tok, enc, "a cat", words(100));
    expect(negLong.shape).toEqual([1, 154, CHANNELS]);
    expect(slice(posShort, 1)).toEqual(slice(emptyUncond, 0));
  });

  it("weights the second chunk's token and keeps each chunk's mean", async () => {
    const tok = fakeTokenizer();
    const enc = fakeEncoder();
    const plain = (await encodePromptWeighted(tok, enc, `${words(80)} hat`, ""))[1];
    const weighted = (await encodePromptWeighted(tok, enc, `${words(80)} (hat:1.2)`, ""))[1];
    expect(slice(weighted, 0)).toEqual(slice(plain, 0)); // first chunk has weights 1: bit-identical
    const p = slice(plain, 1);
    const w = slice(weighted, 1);
    expect(mean(w)).toBeCloseTo(mean(p), 5);
    // token 6 of chunk 2 is "hat" (bos, w75..w79, hat): its vector is 1.2x the plain one times the rescale
    const k = w[0]! / p[0]!;
    for (let c = 0; c < CHANNELS; c++)
      expect(w[6 * CHANNELS + c]).toBeCloseTo(p[6 * CHANNELS + c]! * 1.2 * k, 5);
    expect(k).not.toBeCloseTo(1, 4);
  });
});
