/**
 * Validated reads of untrusted scheduler_config.json data: one typed getter per field kind, each
 * falling back to a default when the key is absent and throwing a ConfigError naming the field when
 * the value has the wrong type. Remembers which keys were read so the caller can report the rest.
 */
import { ConfigError, CorruptFileError } from "../errors.js";

export class FieldReader {
  private readonly used = new Set<string>();

  constructor(
    private readonly raw: Readonly<Record<string, unknown>>,
    readonly file: string,
  ) {}

  private take(key: string): unknown {
    this.used.add(key);
    return Object.hasOwn(this.raw, key) ? this.raw[key] : undefined;
  }

  number(
    key: string,
    fallback: number,
    range: { min?: number; max?: number; integer?: boolean } = {},
  ): number {
    const v = this.take(key);
    if (v === undefined) return fallback;
    const kind = range.integer === true ? "an integer" : "a number";
    const bounds =
      range.min !== undefined && range.max !== undefined
        ? ` in [${range.min}, ${range.max}]`
        : range.min !== undefined
          ? ` >= ${range.min}`
          : range.max !== undefined
            ? ` <= ${range.max}`
            : "";
    const ok =
      typeof v === "number" &&
      !Number.isNaN(v) &&
      (range.integer !== true || Number.isInteger(v)) &&
      (range.min === undefined || v >= range.min) &&
      (range.max === undefined || v <= range.max);
    if (!ok) throw new ConfigError(this.file, key, kind + bounds, v);
    return v;
  }

  nullableNumber(key: string, fallback: number | null, range: { min?: number } = {}): number | null {
    const v = this.take(key);
    if (v === null || (v === undefined && fallback === null)) return v === null ? null : fallback;
    return this.number(key, fallback ?? NaN, range);
  }

  boolean(key: string, fallback: boolean): boolean {
    const v = this.take(key);
    if (v === undefined) return fallback;
    if (typeof v !== "boolean") throw new ConfigError(this.file, key, "true or false", v);
    return v;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], fallback: T, hint?: string): T {
    const v = this.take(key);
    if (v === undefined) return fallback;
    const found = allowed.find((a) => a === v);
    if (found === undefined) {
      throw new ConfigError(
        this.file,
        key,
        `one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`,
        v,
        hint === undefined ? {} : { hint },
      );
    }
    return found;
  }

  nullableOneOf<T extends string>(key: string, allowed: readonly T[], fallback: T | null): T | null {
    const v = this.take(key);
    if (v === null) return null;
    if (v === undefined) return fallback;
    const found = allowed.find((a) => a === v);
    if (found === undefined) {
      throw new ConfigError(
        this.file,
        key,
        `null or one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`,
        v,
      );
    }
    return found;
  }

  numberArrayOrNull(key: string, fallback: readonly number[] | null): readonly number[] | null {
    const v = this.take(key);
    if (v === undefined) return fallback;
    if (v === null) return null;
    if (!Array.isArray(v) || !v.every((x): x is number => typeof x === "number" && Number.isFinite(x))) {
      throw new ConfigError(this.file, key, "null or an array of finite numbers", v);
    }
    return [...v];
  }

  /** Keys present in the input that no getter asked for, except `_`-prefixed metadata keys. */
  unusedKeys(): string[] {
    return Object.keys(this.raw).filter((k) => !k.startsWith("_") && !this.used.has(k));
  }
}

const SENTINEL = "\u0000steadyframe-float:";

/**
 * Parses JSON as Python's `json.dump` writes it: like JSON, plus the bare tokens `NaN`, `Infinity`
 * and `-Infinity` (diffusers saves `lambda_min_clipped: -Infinity`).
 */
export function parsePythonJson(text: string, file: string): unknown {
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i);
    if (inString) {
      out += c;
      if (c === "\\") {
        out += text.charAt(i + 1);
        i++;
      } else if (c === '"') {
        inString = false;
      }
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
      continue;
    }
    const token = /^(?:-?Infinity|NaN)/.exec(text.slice(i, i + 9));
    if (token !== null) {
      out += JSON.stringify(SENTINEL + token[0]);
      i += token[0].length - 1;
      continue;
    }
    out += c;
  }
  try {
    return JSON.parse(out, (_key, value: unknown) =>
      typeof value === "string" && value.startsWith(SENTINEL) ? Number(value.slice(SENTINEL.length)) : value,
    );
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new CorruptFileError(file, `not valid JSON (${reason})`, undefined, {
      cause,
      hint: "fix the syntax or export the config again with save_config()",
    });
  }
}
