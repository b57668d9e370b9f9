/**
 * CLIP's byte-pair encoding of one pre-token (openai/CLIP: clip/simple_tokenizer.py; transformers:
 * models/clip/tokenization_clip.py `bpe`). The last symbol of a word carries the end-of-word marker
 * "</w>"; the lowest-ranked adjacent pair is merged everywhere (left to right, non-overlapping) until
 * no ranked pair remains. Results are cached per pre-token.
 */

export const END_OF_WORD = "</w>";

/**
 * CLIP's pre-tokenizer pattern (case-insensitive): the two special tokens, English contractions,
 * runs of letters, single digits, and runs of anything else that is not whitespace.
 */
export const CLIP_PATTERN =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

/** Pre-tokens the reference never splits (its `bpe` cache is seeded with them). */
const UNSPLIT = ["<|startoftext|>", "<|endoftext|>"];

const MAX_CACHE_ENTRIES = 50_000;

export function preTokenize(text: string): string[] {
  return text.match(CLIP_PATTERN) ?? [];
}

export class BytePairEncoder {
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, readonly string[]>();

  /** `merges` in priority order; a pair listed twice keeps its later rank, as a Python dict would. */
  constructor(merges: readonly (readonly [string, string])[]) {
    merges.forEach(([a, b], rank) => this.ranks.set(pairKey(a, b), rank));
  }

  get mergeCount(): number {
    return this.ranks.size;
  }

  /** BPE symbols of one byte-encoded pre-token. */
  encodeWord(token: string): readonly string[] {
    if (UNSPLIT.includes(token)) return [token];
    const cached = this.cache.get(token);
    if (cached !== undefined) return cached;
    const result = this.merge(token);
    if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
    this.cache.set(token, result);
    return result;
  }

  private merge(token: string): readonly string[] {
    const chars = Array.from(token);
    if (chars.length === 0) return [];
    let word = [...chars.slice(0, -1), `${chars[chars.length - 1] ?? ""}${END_OF_WORD}`];
    while (word.length > 1) {
      let bestRank = Infinity;
      let first = "";
      let second = "";
      for (let i = 0; i + 1 < word.length; i++) {
        const a = word[i] ?? "";
        const b = word[i + 1] ?? "";
        const rank = this.ranks.get(pairKey(a, b));
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          first = a;
          second = b;
        }
      }
      if (bestRank === Infinity) break;
      const merged: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (word[i] === first && word[i + 1] === second && i + 1 < word.length) {
          merged.push(first + second);
          i++;
        } else {
          merged.push(word[i] ?? "");
        }
      }
      word = merged;
    }
    return word;
  }
}

/** Symbols never contain spaces (byte-level alphabet), so a space joins a pair unambiguously. */
function pairKey(a: string, b: string): string {
  return `${a} ${b}`;
}
