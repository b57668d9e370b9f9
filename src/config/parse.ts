/**
 * Config parsing at the boundary: untrusted JSON (a diffusers `config.json`, a transformers config, a
 * scheduler config) becomes a readonly, typed object. A config type is described once as a table of
 * field specs whose names are the config.json keys verbatim; each spec validates its value and holds the
 * upstream default. Keys starting with "_" (`_class_name`, `_diffusers_version`) are bookkeeping and
 * ignored; unknown keys become warnings, or a ConfigError under `strict`.
 */
import { readFile } from "node:fs/promises";
import { ConfigError, CorruptFileError, FileNotFoundError } from "../errors.js";
import { parsePythonJson } from "./python-json.js";

export interface FieldSpec<T> {
  /** Validates and converts a present value; `path` names the field for errors. */
  parse(value: unknown, file: string, path: string): T;
  readonly default: T;
}

export type ConfigOf<S extends Record<string, FieldSpec<unknown>>> = {
  readonly [K in keyof S]: S[K] extends FieldSpec<infer T> ? T : never;
};

/** The spec table of a config type declared as an interface: one spec per field, of that field's type. */
export type FieldsOf<C> = { readonly [K in keyof C]-?: FieldSpec<C[K]> };

/** Bounds of a numeric field, named in the error ("an integer in [1, 3]", "a number >= 0"). */
export interface NumberRange {
  readonly min?: number;
  readonly max?: number;
}

export interface ParseOptions {
  /** Throw on unknown keys instead of warning. */
  readonly strict?: boolean;
  /** Keys that are known but irrelevant here (e.g. transformers' "architectures"). */
  readonly ignore?: readonly string[];
  /** The class the config is for (e.g. "DDIMScheduler"), named in what is said about unknown keys. */
  readonly owner?: string;
}

export interface Parsed<C> {
  readonly config: C;
  /** Human-readable notes about unknown keys. */
  readonly warnings: readonly string[];
}

function spec<T>(expected: string, check: (v: unknown) => v is T, fallback: T): FieldSpec<T> {
  return {
    default: fallback,
    parse(value, file, path) {
      if (!check(value)) throw new ConfigError(file, path, expected, value);
      return value;
    },
  };
}

const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isNumOrInf = (v: unknown): v is number => typeof v === "number" && !Number.isNaN(v);

function rangeSpec(
  kind: string,
  check: (v: unknown) => v is number,
  fallback: number,
  { min, max }: NumberRange,
): FieldSpec<number> {
  const bounds =
    min !== undefined && max !== undefined
      ? ` in [${min}, ${max}]`
      : min !== undefined
        ? ` >= ${min}`
        : max !== undefined
          ? ` <= ${max}`
          : "";
  const inRange = (v: unknown): v is number =>
    check(v) && (min === undefined || v >= min) && (max === undefined || v <= max);
  return spec(kind + bounds, inRange, fallback);
}

/** Field constructors; each takes the upstream default. */
export const field = {
  int: (fallback: number, range: NumberRange = {}) => rangeSpec("an integer", isInt, fallback, range),
  /**
   * A finite number, or with `infinite: true` also Infinity / -Infinity (Python's float("inf"), e.g.
   * diffusers' `lambda_min_clipped`, which `readJsonFile` reads from Python's bare `-Infinity`).
   */
  number: (fallback: number, range: NumberRange & { readonly infinite?: boolean } = {}) =>
    rangeSpec("a number", range.infinite === true ? isNumOrInf : isNum, fallback, range),
  bool: (fallback: boolean) => spec("true or false", (v): v is boolean => typeof v === "boolean", fallback),
  string: (fallback: string) => spec("a string", (v): v is string => typeof v === "string", fallback),
  oneOf<const V extends string>(values: readonly V[], fallback: V): FieldSpec<V> {
    return spec(
      `one of ${values.map((v) => JSON.stringify(v)).join(", ")}`,
      (v): v is V => typeof v === "string" && (values as readonly string[]).includes(v),
      fallback,
    );
  },
  nullable<T>(inner: FieldSpec<T>, fallback: T | null = null): FieldSpec<T | null> {
    return {
      default: fallback,
      parse: (value, file, path) => (value === null ? null : inner.parse(value, file, path)),
    };
  },
  list<T>(inner: FieldSpec<T>, fallback: readonly T[]): FieldSpec<readonly T[]> {
    return {
      default: fallback,
      parse(value, file, path) {
        if (!Array.isArray(value)) throw new ConfigError(file, path, "a list", value);
        return value.map((item, i) => inner.parse(item, file, `${path}[${i}]`));
      },
    };
  },
  /** A value that may be given once for all blocks or as a per-block list (diffusers' `int | tuple`). */
  oneOrList<T>(inner: FieldSpec<T>, fallback: T | readonly T[]): FieldSpec<T | readonly T[]> {
    return {
      default: fallback,
      parse(value, file, path) {
        if (Array.isArray(value)) return value.map((item, i) => inner.parse(item, file, `${path}[${i}]`));
        return inner.parse(value, file, path);
      },
    };
  },
  /** Any JSON value, kept as is (for fields we carry but do not interpret). */
  any<T = unknown>(fallback: T): FieldSpec<T | unknown> {
    return { default: fallback, parse: (value) => value };
  },
} as const;

/** Parses a JSON object against a spec table. */
export function parseConfig<S extends Record<string, FieldSpec<unknown>>>(
  file: string,
  json: unknown,
  specs: S,
  options: ParseOptions = {},
): Parsed<ConfigOf<S>> {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError(file, "(root)", "a JSON object", json);
  }
  const source = json as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, fieldSpec] of Object.entries(specs)) {
    out[key] =
      Object.hasOwn(source, key) && source[key] !== undefined
        ? fieldSpec.parse(source[key], file, key)
        : fieldSpec.default;
  }
  const unknown = Object.keys(source).filter(
    (key) => !Object.hasOwn(specs, key) && !key.startsWith("_") && !(options.ignore ?? []).includes(key),
  );
  const owner = options.owner;
  if (unknown.length > 0 && options.strict === true) {
    const first = unknown[0] ?? "";
    const expected = owner === undefined ? "a known field" : `a field ${owner} takes`;
    throw new ConfigError(file, first, expected, source[first], {
      hint: `unknown fields: ${unknown.join(", ")}; remove them or parse without strict`,
    });
  }
  const warnings = unknown.map((key) =>
    owner === undefined
      ? `${file}: unknown field "${key}" ignored`
      : `${file}: ${owner} does not take "${key}"; ignored`,
  );
  return { config: out as ConfigOf<S>, warnings };
}

export interface JsonOptions {
  /**
   * (optional, default true) accept the bare tokens NaN, Infinity and -Infinity that Python's
   * json.dump writes for non-finite floats (every diffusers DPMSolverMultistepScheduler config has
   * `"lambda_min_clipped": -Infinity`); false = strict RFC 8259 JSON.
   */
  readonly pythonFloats?: boolean;
}

/**
 * Parses JSON text as Python's json.dump writes it (see JsonOptions); a syntax error becomes a
 * CorruptFileError naming `file`.
 */
export function parseJson(text: string, file: string, options: JsonOptions = {}): unknown {
  try {
    return options.pythonFloats === false ? (JSON.parse(text) as unknown) : parsePythonJson(text);
  } catch (cause) {
    throw new CorruptFileError(file, `not valid JSON (${String(cause)})`, undefined, {
      cause,
      hint: "fix the JSON syntax or restore the file",
    });
  }
}

/** Reads and parses a JSON file (Python's NaN/Infinity accepted), naming the file in every error. */
export async function readJsonFile(
  path: string,
  what = "config file",
  options: JsonOptions = {},
): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new FileNotFoundError(path, what, { cause });
  }
  return parseJson(text, path, options);
}

export async function readConfigFile<S extends Record<string, FieldSpec<unknown>>>(
  path: string,
  specs: S,
  options: ParseOptions = {},
): Promise<Parsed<ConfigOf<S>>> {
  return parseConfig(path, await readJsonFile(path), specs, options);
}
