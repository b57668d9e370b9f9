/**
 * The text clean-up transformers' slow `CLIPTokenizer` applies when ftfy is not installed (the usual
 * pip install): BERT's `BasicTokenizer(strip_accents=False, do_split_on_punc=False)` from
 * huggingface/transformers: src/transformers/models/bert/tokenization_bert.py, then `.lower()`.
 *
 * Steps, in the reference's order: drop NUL, U+FFFD and every category-C character (controls, format
 * characters such as ZWJ/ZWSP, surrogates, private use, unassigned) except tab/newline/CR; turn
 * whitespace (tab, newline, CR, category Zs) into spaces; put spaces around CJK ideographs; NFC;
 * split on whitespace; lower-case. Accents are kept and punctuation is not split here. Character
 * classes come from the JS engine's Unicode tables, which may be newer than Python's for characters
 * assigned in the last Unicode versions.
 */

const CONTROL = /^\p{C}$/u;
const SPACE_SEPARATOR = /^\p{Zs}$/u;
/**
 * Python `str.split()` whitespace, less \x1c-\x1f and \x85: those are controls, already removed.
 */
const PY_WHITESPACE = /[\t\n\v\f\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;

function isWhitespace(ch: string): boolean {
  return ch === " " || ch === "\t" || ch === "\n" || ch === "\r" || SPACE_SEPARATOR.test(ch);
}

function isControl(ch: string): boolean {
  if (ch === "\t" || ch === "\n" || ch === "\r") return false;
  return CONTROL.test(ch);
}

/** The "CJK Unified Ideographs" blocks BERT surrounds with spaces (not kana, hangul or CJK punctuation). */
function isCjkIdeograph(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

function splitWhitespace(text: string): string[] {
  return text.split(PY_WHITESPACE).filter((t) => t.length > 0);
}

/** BERT BasicTokenizer (CLIP settings): cleaned, lower-cased, whitespace-separated words. */
export function basicTokenize(text: string): string[] {
  let cleaned = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    if (cp === 0 || cp === 0xfffd || isControl(ch)) continue;
    if (isWhitespace(ch)) cleaned += " ";
    else if (isCjkIdeograph(cp)) cleaned += ` ${ch} `;
    else cleaned += ch;
  }
  return splitWhitespace(cleaned.normalize("NFC")).map((word) => word.toLowerCase());
}

/** What `CLIPTokenizer._tokenize` feeds to its regex: the basic tokens joined by spaces, lower-cased. */
export function cleanClipText(text: string): string {
  return basicTokenize(text).join(" ").toLowerCase();
}
