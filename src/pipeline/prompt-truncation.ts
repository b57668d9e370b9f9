/**
 * The text CLIP drops from a long prompt. diffusers 0.26.3 `encode_prompt` tokenizes with
 * `truncation=True, max_length=77` (bos + 75 tokens + eos) and logs the removed part as
 * `tokenizer.batch_decode(untruncated_ids[:, max_length - 1 : -1])`; this gives the same text:
 * the BPE tokens past the first 75, with `</w>` read as a space and the byte-level alphabet decoded
 * back to UTF-8 (openai/CLIP simple_tokenizer.py `decode`).
 */
import { END_OF_WORD } from "../tokenizer/bpe.js";

/** What the pipeline needs from the tokenizer: BPE token strings and the model length. */
export interface TruncatingTokenizer {
  tokenize(text: string): string[];
  readonly modelMaxLength: number;
}

/** byte-level character -> byte (the inverse of ../tokenizer/byte-encoder.ts). */
function buildCharToByte(): ReadonlyMap<string, number> {
  const map = new Map<string, number>();
  const printable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 256;
  for (let b = 0; b < 256; b++) map.set(String.fromCharCode(printable(b) ? b : next++), b);
  return map;
}

const CHAR_TO_BYTE = buildCharToByte();

/** Decodes BPE token strings to text ("photo</w>" -> "photo "), trimmed. */
export function decodeTokens(tokens: readonly string[]): string {
  const text = tokens.join("").split(END_OF_WORD).join(" ");
  const bytes: number[] = [];
  for (const ch of text) {
    const b = ch === " " ? 0x20 : CHAR_TO_BYTE.get(ch);
    if (b !== undefined) bytes.push(b);
  }
  return new TextDecoder().decode(Uint8Array.from(bytes)).trim();
}

/** The text cut from `prompt` (tokens past maxLength - 2), or undefined when all of it fits. */
export function droppedPromptText(tokenizer: TruncatingTokenizer, prompt: string): string | undefined {
  const tokens = tokenizer.tokenize(prompt);
  const keep = tokenizer.modelMaxLength - 2;
  return tokens.length > keep ? decodeTokens(tokens.slice(keep)) : undefined;
}
