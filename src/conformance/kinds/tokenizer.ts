/**
 * Conformance kind `tokenizer`: CLIP token ids. case.json gives `tokenizer_dir` (relative to the
 * fixture), `prompts` [{index, text, ids_untruncated?}], the Python `call` (its padding, max_length and
 * truncation keywords are honoured; defaults are transformers') and `outputs_file`. Rows: one per
 * prompt for `input_ids` (exact), one per prompt for `ids_untruncated` when listed, and one for
 * `attention_mask` when the outputs hold it. `input_ids_ftfy` (the ftfy clean-up path) is not run.
 */
import { join, resolve } from "node:path";
import { ConfigError } from "../../errors.js";
import { type HostTensor, tensor } from "../../tensor.js";
import { CLIPTokenizer, type EncodeOptions } from "../../tokenizer/clip-tokenizer.js";
import { readSafetensors } from "../../weights/safetensors.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads `padding=`, `max_length=` and `truncation=` keywords from the Python call text. */
export function parseCallOptions(call: string): EncodeOptions {
  const padding = /padding\s*=\s*(?:['"]([a-z_]+)['"]|(True|False))/u.exec(call);
  const maxLength = /max_length\s*=\s*(\d+)/u.exec(call);
  const truncation = /truncation\s*=\s*(True|False|['"]longest_first['"]|['"]only_first['"])/u.exec(call);
  // Each prompt is encoded on its own, so "longest" (or True) pads nothing.
  const paddingValue = padding?.[1] ?? (padding?.[2] === "True" ? "longest" : "do_not_pad");
  if (!["max_length", "longest", "do_not_pad"].includes(paddingValue)) {
    throw new ConfigError(
      "case.json",
      "call",
      'padding "max_length", "longest" or "do_not_pad"',
      paddingValue,
    );
  }
  return {
    padding: paddingValue === "max_length" ? "max_length" : "none",
    truncation: truncation !== null && truncation[1] !== "False",
    ...(maxLength?.[1] === undefined ? {} : { maxLength: Number(maxLength[1]) }),
  };
}

/** True when the call pads to the longest sequence (`padding='longest'` or `padding=True`). */
export function padsToLongest(call: string): boolean {
  return /padding\s*=\s*(?:['"]longest['"]|True)/u.test(call);
}

interface Encoding {
  readonly inputIds: HostTensor<"int64">;
  readonly attentionMask: HostTensor<"int64">;
}

/** One encoded row padded on the right to `width` with `padId` (mask 0), as transformers pads. */
export function padEncoding(e: Encoding, width: number, padId: number): Encoding {
  const ids = [...e.inputIds.data];
  const mask = [...e.attentionMask.data];
  while (ids.length < width) ids.push(BigInt(padId));
  while (mask.length < width) mask.push(0n);
  return {
    inputIds: tensor("int64", [1, ids.length], BigInt64Array.from(ids)),
    attentionMask: tensor("int64", [1, mask.length], BigInt64Array.from(mask)),
  };
}

function idsTensor(ids: readonly number[]): HostTensor<"int64"> {
  return tensor(
    "int64",
    [ids.length],
    BigInt64Array.from(ids, (v) => BigInt(v)),
  );
}

function row(t: HostTensor, r: number): HostTensor {
  const width = t.shape[1] ?? 0;
  const data =
    t.data instanceof BigInt64Array ? t.data.slice(r * width, (r + 1) * width) : new BigInt64Array(0);
  return tensor("int64", [data.length], data);
}

async function runTokenizer(ctx: FixtureContext): Promise<readonly ConformanceRow[]> {
  const file = join(ctx.dir, "case.json");
  const fixture = typeof ctx.caseJson.fixture === "string" ? ctx.caseJson.fixture : "tokenizer";
  const tokenizerDir = ctx.caseJson.tokenizer_dir;
  if (typeof tokenizerDir !== "string")
    throw new ConfigError(file, "tokenizer_dir", "a relative folder path", tokenizerDir);
  const prompts = ctx.caseJson.prompts;
  if (!Array.isArray(prompts) || prompts.length === 0)
    throw new ConfigError(file, "prompts", "a non-empty list", prompts);
  const call = ctx.caseJson.call;
  const options = parseCallOptions(typeof call === "string" ? call : "");
  const outputsFile = isRecord(ctx.caseJson.outputs_file)
    ? ctx.caseJson.outputs_file.file
    : "outputs.safetensors";
  if (typeof outputsFile !== "string")
    throw new ConfigError(file, "outputs_file.file", "a file name", outputsFile);

  const tokenizer = await CLIPTokenizer.fromPretrained(resolve(ctx.dir, tokenizerDir));
  const outputs = await readSafetensors(join(ctx.dir, outputsFile));
  const expectedIds = outputs.get("input_ids");
  const expectedMask = outputs.get("attention_mask");
  const rows: ConformanceRow[] = [];
  const masks: bigint[][] = [];
  const texts = prompts.map((prompt, i) => {
    if (!isRecord(prompt) || typeof prompt.text !== "string") {
      throw new ConfigError(file, `prompts[${i}].text`, "a string", isRecord(prompt) ? prompt.text : prompt);
    }
    return prompt.text;
  });
  const encodedAll = texts.map((text) => tokenizer.encodeBatchWithMask([text], options));
  // padding="longest" / True over the prompt list pads every row to the longest one (a stacked
  // input_ids tensor can only come from rows of one width).
  const width = padsToLongest(typeof call === "string" ? call : "")
    ? Math.max(...encodedAll.map((e) => e.inputIds.shape[1] ?? 0))
    : undefined;
  for (const [i, prompt] of prompts.entries()) {
    if (!isRecord(prompt) || typeof prompt.text !== "string") continue;
    const index = typeof prompt.index === "number" ? prompt.index : i;
    const label = `${fixture}/prompt${index}`;
    const raw = encodedAll[i];
    if (raw === undefined) continue;
    const encoded = width === undefined ? raw : padEncoding(raw, width, tokenizer.padTokenId);
    masks.push([...encoded.attentionMask.data]);
    if (expectedIds === undefined || expectedIds.dtype !== "int64" || index >= (expectedIds.shape[0] ?? 0)) {
      rows.push(
        failedRow(label, `input_ids[${index}]`, `no int64 row ${index} of "input_ids" in ${outputsFile}`),
      );
    } else {
      rows.push(
        compareTensors(label, `input_ids[${index}]`, row(encoded.inputIds, 0), row(expectedIds, index), 0),
      );
    }
    const untruncated = prompt.ids_untruncated;
    if (
      Array.isArray(untruncated) &&
      untruncated.every((v) => typeof v === "number" && Number.isSafeInteger(v))
    ) {
      const actual = idsTensor(tokenizer.encode(prompt.text));
      rows.push(
        compareTensors(label, `ids_untruncated[${index}]`, actual, idsTensor(untruncated.map(Number)), 0),
      );
    }
  }
  if (expectedMask !== undefined) {
    const width = masks[0]?.length ?? 0;
    if (masks.some((m) => m.length !== width)) {
      rows.push(
        failedRow(fixture, "attention_mask", "prompts encode to different lengths; cannot stack the mask"),
      );
    } else {
      const actual = tensor("int64", [masks.length, width], BigInt64Array.from(masks.flat()));
      rows.push(compareTensors(fixture, "attention_mask", actual, expectedMask, 0));
    }
  }
  return rows;
}

export const tokenizerKind: FixtureKind = {
  kind: "tokenizer",
  description: "CLIP BPE tokenizer ids (transformers CLIPTokenizer without ftfy), exact",
  run: runTokenizer,
};
