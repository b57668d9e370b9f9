/**
 * GPT-2 / CLIP byte-level alphabet: every byte 0..255 maps to one printable Unicode character, so BPE
 * can work on text without whitespace or control characters. Printable Latin-1 bytes ("!".."~",
 * "¡".."¬", "®".."ÿ") map to themselves; the other 68 bytes map to U+0100, U+0101, ... in byte order
 * (openai/CLIP: clip/simple_tokenizer.py `bytes_to_unicode`).
 */

function buildByteTable(): readonly string[] {
  const table: string[] = new Array<string>(256);
  const printable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : next++);
  return table;
}

const BYTE_TO_CHAR = buildByteTable();
const UTF8 = new TextEncoder();

/** The UTF-8 bytes of `text`, each written as its byte-level character. */
export function byteEncode(text: string): string {
  let out = "";
  for (const b of UTF8.encode(text)) out += BYTE_TO_CHAR[b] ?? "";
  return out;
}
