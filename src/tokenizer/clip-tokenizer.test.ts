import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, CorruptFileError, FileNotFoundError, InvalidArgumentError } from "../errors.js";
import { basicTokenize } from "./basic-tokenizer.js";
import { BytePairEncoder, preTokenize } from "./bpe.js";
import { byteEncode } from "./byte-encoder.js";
import { CLIPTokenizer } from "./clip-tokenizer.js";

const TOKENS = [
  "<|startoftext|>",
  "<|endoftext|>",
  "!",
  "!</w>",
  "a",
  "a</w>",
  "aa",
  "e",
  "o",
  "w",
  "l",
  "r",
  "s",
  "t",
  "w</w>",
  "t</w>",
  "lo",
  "low",
  "er</w>",
  "lower</w>",
  "wo",
  "wow</w>",
];
const MERGES = ["#version: 0.2", "l o", "lo w", "e r</w>", "low er</w>", "w o", "wo w</w>", "a a"];

function tiny(extra: { padToken?: string; modelMaxLength?: number } = {}): CLIPTokenizer {
  return new CLIPTokenizer({
    vocab: new Map(TOKENS.map((t, i) => [t, i])),
    merges: MERGES.slice(1).map((m): [string, string] => [m.split(" ")[0] ?? "", m.split(" ")[1] ?? ""]),
    ...extra,
  });
}

function expectError(
  fn: () => unknown,
  cls: new (...args: never[]) => Error,
  code: string,
  fragment: string,
): void {
  try {
    fn();
    expect.unreachable("should have thrown");
  } catch (error) {
    expect(error).toBeInstanceOf(cls);
    expect((error as { code?: string }).code).toBe(code);
    expect((error as Error).message).toContain(fragment);
  }
}

describe("BPE pieces", () => {
  it("merges by rank with an end-of-word marker on the last symbol", () => {
    const bpe = new BytePairEncoder(
      MERGES.slice(1).map((m): [string, string] => [m.split(" ")[0] ?? "", m.split(" ")[1] ?? ""]),
    );
    expect(bpe.encodeWord("lower")).toEqual(["lower</w>"]);
    expect(bpe.encodeWord("low")).toEqual(["lo", "w</w>"]); // "lo w" does not merge "lo" with "w</w>"
    expect(bpe.encodeWord("wow")).toEqual(["wow</w>"]);
    expect(bpe.encodeWord("aaa")).toEqual(["aa", "a</w>"]); // left to right, non-overlapping
    expect(bpe.encodeWord("lows")).toEqual(["low", "s</w>"]);
    expect(bpe.encodeWord("<|endoftext|>")).toEqual(["<|endoftext|>"]);
  });

  it("pre-tokenizes with CLIP's pattern: contractions, letters, single digits, other runs", () => {
    expect(preTokenize("it's 35mm!!! ok")).toEqual(["it", "'s", "3", "5", "mm", "!!!", "ok"]);
    expect(preTokenize("a<|endoftext|>b")).toEqual(["a", "<|endoftext|>", "b"]);
  });

  it("byte-encodes UTF-8 with the GPT-2 alphabet", () => {
    expect(byteEncode("a é")).toBe("aĠÃ©");
    expect(byteEncode("\n")).toBe("Ċ");
  });

  it("cleans text like BERT's BasicTokenizer: controls dropped, CJK spaced, NFC, lower-cased", () => {
    expect(basicTokenize("  Hello\u200dWorld\t日本の\u0000 CAFE\u0301  ")).toEqual([
      "helloworld",
      "日",
      "本",
      "の",
      "café",
    ]);
    expect(basicTokenize("non\u00a0breaking")).toEqual(["non", "breaking"]);
  });
});

describe("CLIPTokenizer", () => {
  it("encodes with bos/eos, truncates and pads on request", () => {
    const t = tiny();
    expect(t.tokenize("Lower WOW")).toEqual(["lower</w>", "wow</w>"]);
    expect(t.encode("lower wow")).toEqual([0, 19, 21, 1]);
    expect(t.encode("lower wow", { padding: "max_length", maxLength: 6 })).toEqual([0, 19, 21, 1, 1, 1]);
    expect(t.encode("lower wow lower", { truncation: true, maxLength: 4 })).toEqual([0, 19, 21, 1]);
    expect(t.encode("", { padding: "max_length", maxLength: 3 })).toEqual([0, 1, 1]);
    expect(t.modelMaxLength).toBe(77);
    expect(t.encode("x")).toEqual([0, 1, 1]); // unknown symbol -> unk (<|endoftext|>)
  });

  it("matches special tokens verbatim before cleaning, e.g. an SD2-style '!' pad token", () => {
    const sd1 = tiny();
    expect(sd1.tokenize("wow!")).toEqual(["wow</w>", "!</w>"]);
    const sd2 = tiny({ padToken: "!" });
    expect(sd2.padTokenId).toBe(2);
    expect(sd2.tokenize("wow!")).toEqual(["wow</w>", "!"]);
    expect(sd2.encode("a", { padding: "max_length", maxLength: 5 })).toEqual([0, 5, 1, 2, 2]);
  });

  it("batch-encodes into an int64 [batch, maxLength] tensor with an attention mask", () => {
    const t = tiny({ modelMaxLength: 5 });
    const { inputIds, attentionMask } = t.encodeBatchWithMask(["lower", "wow lower wow lower"]);
    expect(inputIds.shape).toEqual([2, 5]);
    expect(Array.from(inputIds.data)).toEqual([0n, 19n, 1n, 1n, 1n, 0n, 21n, 19n, 21n, 1n]);
    expect(Array.from(attentionMask.data)).toEqual([1n, 1n, 1n, 0n, 0n, 1n, 1n, 1n, 1n, 1n]);
    expect(t.encodeBatch([]).shape).toEqual([0, 5]);
  });

  it("rejects bad options and unbatchable texts with InvalidArgumentError", () => {
    const t = tiny();
    expectError(
      () => t.encode("a", { maxLength: 1 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "for maxLength",
    );
    expectError(
      () => t.encodeBatch(["a", "a a"], { padding: "none", truncation: false }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "texts[1]",
    );
    expectError(
      () => tiny({ padToken: "<pad>" }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "for padToken",
    );
  });
});

describe("CLIPTokenizer.fromPretrained errors", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "sf-tok-"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function folder(name: string, files: Record<string, string>): Promise<string> {
    const dir = join(root, name);
    await mkdir(dir, { recursive: true });
    for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
    return dir;
  }
  const vocab = JSON.stringify(Object.fromEntries(TOKENS.map((t, i) => [t, i])));
  const merges = MERGES.join("\n") + "\n";

  async function expectRejects(
    dir: string,
    cls: new (...args: never[]) => Error,
    code: string,
    fragment: string,
  ): Promise<void> {
    const error: unknown = await CLIPTokenizer.fromPretrained(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(cls);
    expect((error as { code?: string }).code).toBe(code);
    expect((error as Error).message).toContain(fragment);
  }

  it("loads a valid folder with config files", async () => {
    const dir = await folder("ok", {
      "vocab.json": vocab,
      "merges.txt": merges,
      "special_tokens_map.json": JSON.stringify({ pad_token: { content: "!" } }),
      "tokenizer_config.json": JSON.stringify({ model_max_length: 8, pad_token: "<|endoftext|>" }),
    });
    const t = await CLIPTokenizer.fromPretrained(dir);
    expect(t.modelMaxLength).toBe(8);
    expect(t.padTokenId).toBe(2); // special_tokens_map.json wins, as in transformers
    expect(t.encode("lower", { padding: "max_length" })).toEqual([0, 19, 1, 2, 2, 2, 2, 2]);
  });

  it("names a missing folder, vocab.json or merges.txt (FileNotFoundError)", async () => {
    await expectRejects(
      join(root, "nope"),
      FileNotFoundError,
      "E_FILE_NOT_FOUND",
      "tokenizer folder not found",
    );
    await expectRejects(
      await folder("novocab", { "merges.txt": merges }),
      FileNotFoundError,
      "E_FILE_NOT_FOUND",
      "vocab.json",
    );
    await expectRejects(
      await folder("nomerges", { "vocab.json": vocab }),
      FileNotFoundError,
      "E_FILE_NOT_FOUND",
      "merges.txt",
    );
  });

  it("names a corrupt vocab.json or merges.txt (CorruptFileError)", async () => {
    await expectRejects(
      await folder("badjson", { "vocab.json": '{"a": 1', "merges.txt": merges }),
      CorruptFileError,
      "E_CORRUPT_FILE",
      "vocab.json: not valid JSON",
    );
    await expectRejects(
      await folder("badid", { "vocab.json": '{"a": "x"}', "merges.txt": merges }),
      CorruptFileError,
      "E_CORRUPT_FILE",
      "non-negative integer",
    );
    await expectRejects(
      await folder("array", { "vocab.json": "[1]", "merges.txt": merges }),
      CorruptFileError,
      "E_CORRUPT_FILE",
      "JSON object",
    );
    await expectRejects(
      await folder("badmerge", { "vocab.json": vocab, "merges.txt": "#version: 0.2\nl o\nl o w\n" }),
      CorruptFileError,
      "E_CORRUPT_FILE",
      "merges.txt: line 3",
    );
  });

  it("reports bad config fields (ConfigError)", async () => {
    const base = { "vocab.json": vocab, "merges.txt": merges };
    await expectRejects(
      await folder("badmax", { ...base, "tokenizer_config.json": JSON.stringify({ model_max_length: 1 }) }),
      ConfigError,
      "E_CONFIG",
      'field "model_max_length"',
    );
    await expectRejects(
      await folder("badpad", { ...base, "special_tokens_map.json": JSON.stringify({ pad_token: 5 }) }),
      ConfigError,
      "E_CONFIG",
      'field "pad_token"',
    );
  });
});
