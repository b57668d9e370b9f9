/**
 * AUTOMATIC1111 prompt syntax: attention weights `(word)`, `[word]`, `(word:1.3)`, `BREAK`, and prompts
 * of any length in 75-token chunks. Mirrors stable-diffusion-webui 1.x: modules/prompt_parser.py
 * `parse_prompt_attention`, modules/sd_hijack_clip.py `tokenize_line` / `process_tokens` /
 * `empty_chunk`, modules/sd_emphasis.py `EmphasisOriginal` (the default "Original" emphasis) and the
 * `pad_cond_uncond` padding of modules/sd_samplers_cfg_denoiser.py. The rules, as implemented here:
 *
 * Parsing (left to right over the tokens `\(` `\)` `\[` `\]` `\\` `\` `(` `[` `:<number>)` `)` `]`
 * `:` and runs of other text):
 * - `(` and `[` open a group at the current position; `)` closes the innermost open `(` and
 *   multiplies every piece since it by 1.1; `]` closes the innermost `[` and multiplies by 1/1.1;
 *   `:<number>)` (number `[+-]?[.0-9]+`) closes the innermost `(` and multiplies by the number.
 *   Weights multiply through nesting: `((a))` = 1.1 * 1.1 = 1.21, `((a:1.3))` = 1.3 * 1.1.
 * - A `)`, `]` or `:<number>)` with no matching open bracket, and a lone `:`, are literal text.
 * - Brackets still open at the end act as if closed there: all open `(` first (x1.1 each, from the
 *   start of the group to the end of the prompt), then all open `[` (/1.1 each).
 * - A backslash makes the next bracket or backslash literal (weight 1 before enclosing groups apply);
 *   a lone backslash is dropped.
 * - `BREAK` (the upper-case word, as a whole word) in text outside brackets ends the current chunk;
 *   inside a group its marker weight is multiplied away and it is read as the word "break" with a
 *   negative weight, as A1111 does. Adjacent pieces of equal weight are merged.
 *
 * Chunking: each piece is tokenized on its own (no bos/eos). Tokens fill chunks of 75; before a
 * non-comma token is added to a full chunk, if the chunk holds a comma at index c with 75 - c <= 20
 * (A1111's `comma_padding_backtrack`, default 20), the tokens after that comma move to the next chunk.
 * A chunk is padded with eos tokens (weight 1) to 75 and becomes [bos, 75 tokens, eos]; `BREAK` ends a
 * chunk early (even an empty one). An empty prompt is one chunk. When the pad token is not eos
 * (SD 2.x), every token after the chunk's first eos becomes the pad token.
 *
 * Encoding: each chunk (77 tokens) goes through the text encoder on its own; the outputs are
 * concatenated along the sequence (77 * k tokens). Emphasis per chunk z [77, C] with token weights w:
 * z' = z * w (each token's vector scaled by its weight), then z'' = z' * (mean(z) / mean(z')), the
 * means over all 77 * C values (A1111's "Original" emphasis: the original mean is restored). A chunk
 * whose weights are all 1 is left bit-identical. The prompt and the negative prompt are chunked
 * separately; the shorter is padded with the encoding of the empty chunk [bos, eos x 76] to the same
 * chunk count, as A1111's `pad_cond_uncond` does. (A1111 with that option off instead runs the two
 * lengths in separate UNet calls; the results differ slightly.)
 *
 * Not supported: textual-inversion embeddings inside chunks, prompt editing `[a:b:step]`,
 * alternation `[a|b]` and `AND` (the scheduling grammar of A1111's prompt_parser).
 */
import { InvalidArgumentError } from "../errors.js";
import { tensor, type HostTensor } from "../tensor.js";
import { chunkBatch } from "./guidance.js";
import type { TextEncoder } from "./types.js";

/** A piece of prompt text and its attention weight; `{ text: "BREAK", weight: -1 }` marks a chunk break. */
export interface WeightedText {
  readonly text: string;
  readonly weight: number;
}

/** Tokens of a prompt per chunk: 77 ids (bos, 75, eos) and one weight each. */
export interface PromptChunk {
  readonly ids: readonly number[];
  readonly weights: readonly number[];
}

/** What chunking needs from the tokenizer (src/tokenizer/clip-tokenizer.ts CLIPTokenizer fits). */
export interface ChunkingTokenizer {
  /** BPE token strings of a text, without bos/eos. */
  tokenize(text: string): string[];
  tokenToId(token: string): number;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly padTokenId: number;
  readonly unkTokenId: number;
}

/** Text tokens per chunk (A1111 `chunk_length`). */
export const CHUNK_LENGTH = 75;
/** A1111's default `comma_padding_backtrack`. */
export const COMMA_BACKTRACK = 20;
const BREAK_MARK = -1;

const ATTENTION = /\\\(|\\\)|\\\[|\\\]|\\\\|\\|\(|\[|:([+-]?[.\d]+)\)|\)|\]|[^\\()[\]:]+|:/gu;
// Python's \b is Unicode-aware: a word character is a letter, digit or underscore.
const BREAK = /\s*(?<![\p{L}\p{N}_])BREAK(?![\p{L}\p{N}_])\s*/u;

/** A1111 `parse_prompt_attention`: the prompt as pieces of text with their weights (rules above). */
export function parsePromptAttention(prompt: string): WeightedText[] {
  const res: { text: string; weight: number }[] = [];
  const round: number[] = [];
  const square: number[] = [];
  const multiply = (start: number, by: number): void => {
    for (let p = start; p < res.length; p++) (res[p] as { weight: number }).weight *= by;
  };
  for (const m of prompt.matchAll(ATTENTION)) {
    const text = m[0];
    const number = m[1];
    if (text.startsWith("\\")) {
      res.push({ text: text.slice(1), weight: 1 });
    } else if (text === "(") {
      round.push(res.length);
    } else if (text === "[") {
      square.push(res.length);
    } else if (number !== undefined && round.length > 0) {
      const weight = Number(number);
      if (!Number.isFinite(weight)) {
        throw new InvalidArgumentError("prompt", "a weight like (word:1.3)", `(…:${number})`, {
          hint: "write the weight as a decimal number, or escape the brackets as \\( \\)",
        });
      }
      multiply(round.pop() ?? 0, weight);
    } else if (text === ")" && round.length > 0) {
      multiply(round.pop() ?? 0, 1.1);
    } else if (text === "]" && square.length > 0) {
      multiply(square.pop() ?? 0, 1 / 1.1);
    } else {
      text.split(BREAK).forEach((part, i) => {
        if (i > 0) res.push({ text: "BREAK", weight: BREAK_MARK });
        res.push({ text: part, weight: 1 });
      });
    }
  }
  for (const pos of round) multiply(pos, 1.1);
  for (const pos of square) multiply(pos, 1 / 1.1);
  if (res.length === 0) res.push({ text: "", weight: 1 });
  const merged: { text: string; weight: number }[] = [];
  for (const piece of res) {
    const last = merged[merged.length - 1];
    if (last !== undefined && last.weight === piece.weight) last.text += piece.text;
    else merged.push({ ...piece });
  }
  return merged;
}

/** The chunk of an empty prompt: [bos, eos x 76], weights 1 (A1111 `empty_chunk`). */
export function emptyChunk(tokenizer: ChunkingTokenizer): PromptChunk {
  return finishChunk(tokenizer, [], []);
}

function finishChunk(tokenizer: ChunkingTokenizer, ids: number[], weights: number[]): PromptChunk {
  const body = [...ids];
  const w = [...weights];
  while (body.length < CHUNK_LENGTH) {
    body.push(tokenizer.eosTokenId);
    w.push(1);
  }
  const out = [tokenizer.bosTokenId, ...body, tokenizer.eosTokenId];
  if (tokenizer.padTokenId !== tokenizer.eosTokenId) {
    const first = out.indexOf(tokenizer.eosTokenId);
    for (let i = first + 1; i < out.length; i++) out[i] = tokenizer.padTokenId;
  }
  return { ids: out, weights: [1, ...w, 1] };
}

/** A1111 `tokenize_line`: the prompt's chunks (at least one), weights per token. */
export function promptChunks(
  tokenizer: ChunkingTokenizer,
  prompt: string,
  options: { readonly commaBacktrack?: number } = {},
): PromptChunk[] {
  const backtrack = options.commaBacktrack ?? COMMA_BACKTRACK;
  const commaId = tokenizer.tokenToId(",</w>");
  const comma = commaId === tokenizer.unkTokenId ? undefined : commaId;
  const chunks: PromptChunk[] = [];
  let ids: number[] = [];
  let weights: number[] = [];
  let lastComma = -1;
  const next = (): void => {
    chunks.push(finishChunk(tokenizer, ids, weights));
    ids = [];
    weights = [];
    lastComma = -1;
  };
  for (const piece of parsePromptAttention(prompt)) {
    if (piece.text === "BREAK" && piece.weight === BREAK_MARK) {
      next();
      continue;
    }
    for (const token of tokenizer.tokenize(piece.text)) {
      const id = tokenizer.tokenToId(token);
      if (id === comma) {
        lastComma = ids.length;
      } else if (
        backtrack !== 0 &&
        ids.length === CHUNK_LENGTH &&
        lastComma !== -1 &&
        ids.length - lastComma <= backtrack
      ) {
        const at = lastComma + 1;
        const movedIds = ids.slice(at);
        const movedWeights = weights.slice(at);
        ids = ids.slice(0, at);
        weights = weights.slice(0, at);
        next();
        ids = movedIds;
        weights = movedWeights;
      }
      if (ids.length === CHUNK_LENGTH) next();
      ids.push(id);
      weights.push(piece.weight);
    }
  }
  if (ids.length > 0 || chunks.length === 0) next();
  return chunks;
}

/**
 * A1111 "Original" emphasis on one chunk's hidden states z [1, T, C] (float32, as torch):
 * z * w per token, then rescaled so the mean over all values equals z's mean again.
 */
export function applyEmphasis(z: HostTensor<"float32">, weights: readonly number[]): HostTensor<"float32"> {
  const [batch, tokens, channels] = z.shape as [number, number, number];
  if (z.shape.length !== 3 || batch !== 1 || tokens !== weights.length) {
    throw new InvalidArgumentError("hidden states", `shape [1, ${weights.length}, C]`, z.shape.join("x"));
  }
  if (weights.every((w) => w === 1)) return z;
  const out = new Float32Array(z.data.length);
  let before = 0;
  let after = 0;
  for (let t = 0; t < tokens; t++) {
    const w = Math.fround(weights[t] ?? 1);
    for (let c = 0; c < channels; c++) {
      const i = t * channels + c;
      const v = z.data[i] ?? 0;
      before += v;
      out[i] = v * w;
      after += out[i] ?? 0;
    }
  }
  const n = z.data.length;
  const ratio = Math.fround(Math.fround(before / n) / Math.fround(after / n));
  // A mean of exactly 0 after weighting would give inf/NaN; leave the chunk unscaled then.
  if (Number.isFinite(ratio)) for (let i = 0; i < n; i++) out[i] = (out[i] ?? 0) * ratio;
  return tensor("float32", z.shape, out);
}

/** Concatenates [1, T_i, C] tensors along the sequence axis. */
function concatSequence(parts: readonly HostTensor<"float32">[]): HostTensor<"float32"> {
  const channels = parts[0]?.shape[2] ?? 0;
  const out = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p.data, offset);
    offset += p.data.length;
  }
  return tensor("float32", [1, out.length / Math.max(1, channels), channels], out);
}

export interface WeightedPromptOptions {
  /** (optional) diffusers clip_skip, passed to the text encoder. */
  readonly clipSkip?: number;
  /** (optional, default 20) A1111 comma_padding_backtrack; 0 switches it off. */
  readonly commaBacktrack?: number;
}

/** Embeddings of a negative prompt and of several prompts, all [1, 77 * k, C] with one k. */
export interface WeightedEmbeddings {
  readonly uncond: HostTensor<"float32">;
  readonly conds: readonly HostTensor<"float32">[];
}

/**
 * Encodes prompts and a negative prompt in A1111 syntax, every one padded with empty chunks to the
 * largest chunk count (so they batch and interpolate). All chunks go through the encoder in one batch.
 */
export async function encodePromptsWeighted(
  tokenizer: ChunkingTokenizer,
  textEncoder: TextEncoder,
  prompts: readonly string[],
  negative: string,
  options: WeightedPromptOptions = {},
): Promise<WeightedEmbeddings> {
  const chunking = options.commaBacktrack === undefined ? {} : { commaBacktrack: options.commaBacktrack };
  const texts = [negative, ...prompts].map((p) => promptChunks(tokenizer, p, chunking));
  const count = Math.max(...texts.map((t) => t.length));
  const all = texts.flatMap((chunks) => [
    ...chunks,
    ...Array.from({ length: count - chunks.length }, () => emptyChunk(tokenizer)),
  ]);
  const width = CHUNK_LENGTH + 2;
  const ids = tensor("int64", [all.length, width]);
  all.forEach((chunk, r) => chunk.ids.forEach((id, c) => (ids.data[r * width + c] = BigInt(id))));
  const clip = options.clipSkip === undefined ? undefined : { clipSkip: options.clipSkip };
  const hidden = chunkBatch(await textEncoder.encode(ids, clip), all.length);
  const weighted = hidden.map((z, i) => applyEmphasis(z, all[i]?.weights ?? []));
  const [uncond, ...conds] = texts.map((_, i) => concatSequence(weighted.slice(i * count, (i + 1) * count)));
  return { uncond: uncond ?? concatSequence([]), conds };
}

/**
 * Encodes a prompt and a negative prompt in A1111 syntax: [uncond, cond], each [1, 77 * k, C] with the
 * same k (the shorter padded with empty chunks, A1111's pad_cond_uncond).
 */
export async function encodePromptWeighted(
  tokenizer: ChunkingTokenizer,
  textEncoder: TextEncoder,
  prompt: string,
  negative: string,
  options: WeightedPromptOptions = {},
): Promise<[HostTensor<"float32">, HostTensor<"float32">]> {
  const { uncond, conds } = await encodePromptsWeighted(tokenizer, textEncoder, [prompt], negative, options);
  return [uncond, conds[0] ?? uncond];
}

/** `--prompt-syntax`: diffusers' plain prompts (truncated to 77 tokens) or A1111's weights and chunks. */
export type PromptSyntax = "plain" | "a1111";
