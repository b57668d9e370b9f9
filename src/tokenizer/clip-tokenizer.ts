/**
 * CLIP's BPE tokenizer as Stable Diffusion pipelines call it:
 * `tokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids`.
 * Reference: huggingface/transformers 4.36 `CLIPTokenizer` (slow) without ftfy installed
 * (models/clip/tokenization_clip.py, tokenization_utils.py `tokenize`), checked token for token
 * against the `tokenizer` golden fixture.
 *
 * Pipeline per text: split out special/added tokens verbatim (so SD2's "!" pad token is matched in
 * text, as transformers does), clean each remaining piece with BERT's BasicTokenizer (NFC, drop
 * control and format characters, spaces around CJK ideographs, lower-case), cut it with CLIP's
 * regex, byte-encode each piece and apply BPE; then add bos/eos, truncate and pad.
 * Textual-inversion tokens (`addEmbeddingTokens`) are added tokens too: matched verbatim, and a
 * multi-vector embedding's word stands for all its tokens (diffusers' `maybe_convert_prompt`).
 * Not implemented: the ftfy clean-up path and `single_word` added tokens.
 */
import { InvalidArgumentError } from "../errors.js";
import { type HostTensor, tensor } from "../tensor.js";
import { cleanClipText } from "./basic-tokenizer.js";
import { BytePairEncoder, preTokenize } from "./bpe.js";
import { byteEncode } from "./byte-encoder.js";
import { type CLIPTokenizerData, readCLIPTokenizerFiles } from "./tokenizer-files.js";

export interface EncodeOptions {
  /** (optional, default "none" for encode, "max_length" for encodeBatch) pad with the pad token to maxLength. */
  readonly padding?: "max_length" | "none";
  /** (optional, default false for encode, true for encodeBatch) keep at most maxLength - 2 text tokens. */
  readonly truncation?: boolean;
  /** (optional, default model_max_length from tokenizer_config.json, 77) length including bos and eos. */
  readonly maxLength?: number;
}

export interface BatchEncoding {
  /** int64 [batch, length] token ids. */
  readonly inputIds: HostTensor<"int64">;
  /** int64 [batch, length]: 1 for bos/text/eos, 0 for padding (SD pipelines do not use it). */
  readonly attentionMask: HostTensor<"int64">;
}

export class CLIPTokenizer {
  readonly modelMaxLength: number;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly padTokenId: number;
  readonly unkTokenId: number;
  private readonly vocab: ReadonlyMap<string, number>;
  private readonly bpe: BytePairEncoder;
  /** Tokens matched verbatim in the text before cleaning (special + added), longest first. */
  private verbatimTokens: readonly string[];
  private readonly verbatimIds = new Map<string, number>();
  /** A multi-vector textual-inversion word -> its tokens (word, word_1, ...). */
  private readonly expansions = new Map<string, readonly string[]>();

  constructor(data: CLIPTokenizerData) {
    this.vocab = data.vocab;
    this.bpe = new BytePairEncoder(data.merges);
    this.modelMaxLength = data.modelMaxLength ?? 77;
    for (const [content, id] of data.addedTokens ?? []) this.verbatimIds.set(content, id);
    const lookup = (field: string, token: string): number => {
      const id = this.verbatimIds.get(token) ?? this.vocab.get(token);
      if (id === undefined) {
        throw new InvalidArgumentError(field, "a token present in vocab.json", token, {
          hint: "the tokenizer's special tokens must be vocabulary entries",
        });
      }
      return id;
    };
    const special: [string, string][] = [
      ["bosToken", data.bosToken ?? "<|startoftext|>"],
      ["eosToken", data.eosToken ?? "<|endoftext|>"],
      ["unkToken", data.unkToken ?? "<|endoftext|>"],
      ["padToken", data.padToken ?? "<|endoftext|>"],
      ...(data.additionalSpecialTokens ?? []).map((t): [string, string] => ["additionalSpecialTokens", t]),
    ];
    const ids = special.map(([field, token]) => lookup(field, token));
    special.forEach(([, token], i) => this.verbatimIds.set(token, ids[i] ?? 0));
    [this.bosTokenId, this.eosTokenId, this.unkTokenId, this.padTokenId] = [
      ids[0] ?? 0,
      ids[1] ?? 0,
      ids[2] ?? 0,
      ids[3] ?? 0,
    ];
    this.verbatimTokens = [...this.verbatimIds.keys()]
      .filter((t) => t.length > 0)
      .sort((a, b) => b.length - a.length);
  }

  /** Loads vocab.json, merges.txt and the optional config files of a diffusers `tokenizer/` folder. */
  static async fromPretrained(dir: string): Promise<CLIPTokenizer> {
    return new CLIPTokenizer(await readCLIPTokenizerFiles(dir));
  }

  /** One past the highest id of the vocabulary and the added tokens (transformers' len(tokenizer)). */
  get size(): number {
    let max = -1;
    for (const id of this.vocab.values()) max = Math.max(max, id);
    for (const id of this.verbatimIds.values()) max = Math.max(max, id);
    return max + 1;
  }

  /**
   * Adds the tokens of a textual-inversion embedding (`tokens[i]` gets `ids[i]`), matched verbatim
   * in text; `tokens[0]` in a prompt stands for all of them. Refuses a token already known.
   */
  addEmbeddingTokens(tokens: readonly string[], ids: readonly number[]): void {
    if (tokens.length === 0 || tokens.length !== ids.length) {
      throw new InvalidArgumentError("ids", `${tokens.length} ids (one per token)`, ids.length);
    }
    for (const token of tokens) {
      if (this.verbatimIds.has(token) || this.vocab.has(token)) {
        throw new InvalidArgumentError("--embedding TOKEN", "a word the tokenizer does not know yet", token, {
          hint: "choose another trigger word with FILE:TOKEN",
        });
      }
    }
    tokens.forEach((token, i) => this.verbatimIds.set(token, ids[i] ?? 0));
    if (tokens.length > 1 && tokens[0] !== undefined) this.expansions.set(tokens[0], tokens);
    this.verbatimTokens = [...this.verbatimIds.keys()]
      .filter((t) => t.length > 0)
      .sort((a, b) => b.length - a.length);
  }

  /** BPE token strings of `text`, without bos/eos (e.g. "photo</w>"). */
  tokenize(text: string): string[] {
    const tokens: string[] = [];
    for (const piece of this.splitVerbatim(text)) {
      if (piece.verbatim) {
        tokens.push(...(this.expansions.get(piece.text) ?? [piece.text]));
        continue;
      }
      for (const word of preTokenize(cleanClipText(piece.text)))
        tokens.push(...this.bpe.encodeWord(byteEncode(word)));
    }
    return tokens;
  }

  /** Token ids of `text` with bos and eos, truncated and padded as asked. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.encodeWithLength(text, options).ids;
  }

  /** Encodes several texts into one int64 [batch, maxLength] tensor (pads and truncates by default). */
  encodeBatch(texts: readonly string[], options: EncodeOptions = {}): HostTensor<"int64"> {
    return this.encodeBatchWithMask(texts, options).inputIds;
  }

  /** Like encodeBatch, with transformers' attention mask. */
  encodeBatchWithMask(texts: readonly string[], options: EncodeOptions = {}): BatchEncoding {
    const opts: EncodeOptions = { padding: "max_length", truncation: true, ...options };
    const rows = texts.map((t) => this.encodeWithLength(t, opts));
    const width = rows[0]?.ids.length ?? this.checkedMaxLength(opts.maxLength);
    rows.forEach((row, i) => {
      if (row.ids.length !== width) {
        throw new InvalidArgumentError(
          `texts[${i}]`,
          `${width} tokens like texts[0]`,
          `${row.ids.length} tokens`,
          { hint: 'use padding: "max_length" with truncation: true to batch texts of different lengths' },
        );
      }
    });
    const ids = tensor("int64", [rows.length, width]);
    const mask = tensor("int64", [rows.length, width]);
    rows.forEach((row, r) => {
      row.ids.forEach((id, c) => {
        ids.data[r * width + c] = BigInt(id);
        mask.data[r * width + c] = c < row.length ? 1n : 0n;
      });
    });
    return { inputIds: ids, attentionMask: mask };
  }

  /** Converts one token string to its id (unknown tokens give the unk id, as transformers does). */
  tokenToId(token: string): number {
    return this.verbatimIds.get(token) ?? this.vocab.get(token) ?? this.unkTokenId;
  }

  private encodeWithLength(text: string, options: EncodeOptions): { ids: number[]; length: number } {
    if (typeof text !== "string") throw new InvalidArgumentError("text", "a string", text);
    const padding = options.padding ?? "none";
    if (padding !== "none" && padding !== "max_length") {
      throw new InvalidArgumentError("padding", '"max_length" or "none"', padding);
    }
    const maxLength = this.checkedMaxLength(options.maxLength);
    let content = this.tokenize(text).map((t) => this.tokenToId(t));
    if (options.truncation === true) content = content.slice(0, maxLength - 2);
    const ids = [this.bosTokenId, ...content, this.eosTokenId];
    const length = ids.length;
    if (padding === "max_length") while (ids.length < maxLength) ids.push(this.padTokenId);
    return { ids, length };
  }

  private checkedMaxLength(maxLength: number | undefined): number {
    if (maxLength === undefined) return this.modelMaxLength;
    if (!Number.isSafeInteger(maxLength) || maxLength < 2) {
      throw new InvalidArgumentError("maxLength", "an integer >= 2 (bos + eos)", maxLength);
    }
    return maxLength;
  }

  /** Splits text around verbatim (special/added) tokens, leftmost-longest like transformers' Trie. */
  private splitVerbatim(text: string): { text: string; verbatim: boolean }[] {
    const pieces: { text: string; verbatim: boolean }[] = [];
    let start = 0;
    let i = 0;
    while (i < text.length) {
      const match = this.verbatimTokens.find((t) => text.startsWith(t, i));
      if (match === undefined) {
        i++;
        continue;
      }
      if (i > start) pieces.push({ text: text.slice(start, i), verbatim: false });
      pieces.push({ text: match, verbatim: true });
      i += match.length;
      start = i;
    }
    if (start < text.length) pieces.push({ text: text.slice(start), verbatim: false });
    return pieces;
  }
}
