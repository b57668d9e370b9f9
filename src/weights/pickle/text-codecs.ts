/**
 * Decoders for the byte formats inside pickle opcodes: protocol-0 text arguments (decimal ints,
 * float reprs, quoted string literals, raw-unicode-escape) and the binary LONG encoding
 * (little-endian two's complement). Each returns undefined on malformed input; the VM turns that
 * into a CorruptFileError with the offset.
 */

const latin1 = new TextDecoder("latin1");
const utf8Fatal = new TextDecoder("utf-8", { fatal: true });

/** A JS number when the integer is exact in a double, else a bigint. */
export function normalizeInt(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value;
}

/** LONG1 / LONG4 payload: little-endian two's complement of any length (0 bytes = 0). */
export function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] ?? 0);
  if (((bytes[bytes.length - 1] ?? 0) & 0x80) !== 0) value -= 1n << BigInt(bytes.length * 8);
  return normalizeInt(value);
}

/** Protocol-0 decimal integer ("42", "-7", Python 2 longs end in "L"). */
export function parseDecimalInt(text: string): number | bigint | undefined {
  const body = text.endsWith("L") ? text.slice(0, -1) : text;
  if (!/^[+-]?\d+$/.test(body)) return undefined;
  return normalizeInt(BigInt(body));
}

/** Protocol-0 float repr ("0.5", "1e-05", "inf", "nan"). */
export function parseFloatRepr(text: string): number | undefined {
  const t = text.trim().toLowerCase();
  if (t === "inf" || t === "+inf") return Infinity;
  if (t === "-inf") return -Infinity;
  if (t === "nan" || t === "-nan") return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(t)) return undefined;
  return Number(t);
}

/** Decodes UTF-8, or undefined when the bytes are not valid UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8Fatal.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Bytes of an old-style str: UTF-8 when valid (what torch.load's encoding does), else latin-1. */
export function decodeByteString(bytes: Uint8Array): string {
  return decodeUtf8(bytes) ?? latin1.decode(bytes);
}

const SIMPLE_ESCAPES: Readonly<Record<string, number>> = {
  "\\": 0x5c,
  "'": 0x27,
  '"': 0x22,
  a: 0x07,
  b: 0x08,
  f: 0x0c,
  n: 0x0a,
  r: 0x0d,
  t: 0x09,
  v: 0x0b,
};

/** STRING argument: a quoted Python bytes literal with backslash escapes (codecs.escape_decode). */
export function decodeStringLiteral(line: Uint8Array): Uint8Array | undefined {
  const quote = line[0];
  if (line.length < 2 || (quote !== 0x22 && quote !== 0x27) || line[line.length - 1] !== quote)
    return undefined;
  const text = latin1.decode(line.subarray(1, line.length - 1));
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? "";
    if (c !== "\\") {
      out.push(c.charCodeAt(0));
      continue;
    }
    const e = text[++i];
    if (e === undefined) return undefined;
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) out.push(simple);
    else if (e === "\n") continue;
    else if (e === "x") {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (/[0-7]/.test(e)) {
      let oct = e;
      while (oct.length < 3 && /[0-7]/.test(text[i + 1] ?? "")) oct += text[++i];
      out.push(parseInt(oct, 8) & 0xff);
    } else out.push(0x5c, e.charCodeAt(0));
  }
  return Uint8Array.from(out);
}

/** UNICODE argument: raw-unicode-escape (latin-1 bytes plus \uXXXX and \UXXXXXXXX). */
export function decodeRawUnicodeEscape(line: Uint8Array): string | undefined {
  const text = latin1.decode(line);
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? "";
    const width = c === "\\" ? (text[i + 1] === "u" ? 4 : text[i + 1] === "U" ? 8 : 0) : 0;
    if (width === 0) {
      out += c;
      continue;
    }
    const hex = text.slice(i + 2, i + 2 + width);
    if (hex.length !== width || !/^[0-9a-fA-F]+$/.test(hex)) return undefined;
    const code = parseInt(hex, 16);
    if (code > 0x10ffff) return undefined;
    out += String.fromCodePoint(code);
    i += 1 + width;
  }
  return out;
}
