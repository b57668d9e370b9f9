import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../src/errors.js";
import { parseCallOptions, tokenizerKind } from "../src/conformance/kinds/tokenizer.js";
import { CLIPTokenizer } from "../src/tokenizer/clip-tokenizer.js";
import { readSafetensors } from "../src/weights/safetensors.js";
import { readCaseJson } from "./helpers/golden-fixture.js";

const dir = join(import.meta.dirname, "fixtures/golden/tokenizer");

interface Prompt {
  readonly index: number;
  readonly text: string;
  readonly ids_untruncated: number[];
  readonly tokens_untruncated: string[];
}

describe("tokenizer golden fixture (transformers CLIPTokenizer, no ftfy)", () => {
  let caseJson: Record<string, unknown>;
  let prompts: Prompt[];
  let tokenizer: CLIPTokenizer;
  beforeAll(async () => {
    caseJson = await readCaseJson(dir);
    prompts = caseJson.prompts as Prompt[];
    tokenizer = await CLIPTokenizer.fromPretrained(resolve(dir, String(caseJson.tokenizer_dir)));
  });

  it("reads the SD1 special tokens and length from the tokenizer folder", () => {
    expect([tokenizer.bosTokenId, tokenizer.eosTokenId, tokenizer.padTokenId]).toEqual([49406, 49407, 49407]);
    expect(tokenizer.modelMaxLength).toBe(77);
  });

  it("matches input_ids and attention_mask of all 31 prompts exactly", async () => {
    const outputs = await readSafetensors(join(dir, "outputs.safetensors"));
    const { inputIds, attentionMask } = tokenizer.encodeBatchWithMask(prompts.map((p) => p.text));
    expect(prompts.length).toBe(31);
    expect(inputIds.shape).toEqual([31, 77]);
    const expectedIds = outputs.get("input_ids")?.data;
    const expectedMask = outputs.get("attention_mask")?.data;
    expect(expectedIds).toBeInstanceOf(BigInt64Array);
    expect(expectedMask).toBeInstanceOf(BigInt64Array);
    expect(inputIds.data).toEqual(expectedIds);
    expect(attentionMask.data).toEqual(expectedMask);
  });

  it("matches the untruncated ids and BPE token strings of every prompt", () => {
    for (const p of prompts) {
      expect(tokenizer.encode(p.text), p.text).toEqual(p.ids_untruncated);
      expect(["<|startoftext|>", ...tokenizer.tokenize(p.text), "<|endoftext|>"], p.text).toEqual(
        p.tokens_untruncated,
      );
    }
  });

  it("passes the tokenizer conformance kind (a row per prompt and per untruncated list, plus the mask)", async () => {
    const rows = await tokenizerKind.run({ dir, caseJson });
    expect(rows.length).toBe(31 * 2 + 1);
    for (const row of rows) expect(row.pass, `${row.fixture} ${row.tensor} ${row.note ?? ""}`).toBe(true);
  });

  it("reads padding, max_length and truncation from the Python call text", () => {
    expect(parseCallOptions(String(caseJson.call))).toEqual({
      padding: "max_length",
      truncation: true,
      maxLength: 77,
    });
    expect(parseCallOptions("tokenizer(text)")).toEqual({ padding: "none", truncation: false });
    expect(() => parseCallOptions("tokenizer(text, padding='sideways')")).toThrow(
      expect.objectContaining({ code: "E_CONFIG", message: expect.stringContaining('"sideways"') }),
    );
    expect(() => parseCallOptions("tokenizer(text, padding='sideways')")).toThrow(ConfigError);
  });
});
