/**
 * Reads a diffusers / transformers `tokenizer/` folder for `CLIPTokenizer`: `vocab.json` (token ->
 * id), `merges.txt` (one "a b" pair per line after the "#version" header), and optionally
 * `special_tokens_map.json`, `tokenizer_config.json` (special tokens, `model_max_length`,
 * `added_tokens_decoder`) and `added_tokens.json`. As in transformers, special_tokens_map.json wins
 * over tokenizer_config.json for the special tokens. Untrusted JSON is validated field by field.
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, CorruptFileError, FileNotFoundError } from "../errors.js";

export interface CLIPTokenizerData {
  /** Token string -> id (vocab.json). */
  readonly vocab: ReadonlyMap<string, number>;
  /** Merge pairs in priority order (merges.txt). */
  readonly merges: readonly (readonly [string, string])[];
  /** (optional, default "<|startoftext|>") */
  readonly bosToken?: string;
  /** (optional, default "<|endoftext|>") */
  readonly eosToken?: string;
  /** (optional, default "<|endoftext|>"; SD2.x tokenizers use "!") */
  readonly padToken?: string;
  /** (optional, default "<|endoftext|>") */
  readonly unkToken?: string;
  /** Extra special tokens (additional_special_tokens), matched verbatim in text. */
  readonly additionalSpecialTokens?: readonly string[];
  /** Added tokens (content -> id) from tokenizer_config.json `added_tokens_decoder` / added_tokens.json. */
  readonly addedTokens?: ReadonlyMap<string, number>;
  /** (optional, default 77: every CLIP text encoder has 77 positions) */
  readonly modelMaxLength?: number;
}

const SPECIAL_KEYS = ["bos_token", "eos_token", "pad_token", "unk_token"] as const;
type SpecialKey = (typeof SPECIAL_KEYS)[number];

async function readText(path: string, what: string, required: boolean): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if (!required && isNotFound(error)) return undefined;
    throw new FileNotFoundError(path, what, {
      cause: error,
      hint: "point at a diffusers tokenizer/ folder (vocab.json, merges.txt, tokenizer_config.json)",
    });
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof Error && "code" in error && (error.code === "ENOENT" || error.code === "ENOTDIR");
}

function parseJson(path: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new CorruptFileError(
      path,
      `not valid JSON (${error instanceof Error ? error.message : String(error)})`,
    );
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

export function parseVocab(path: string, text: string): Map<string, number> {
  const json = parseJson(path, text);
  if (!isRecord(json)) throw new CorruptFileError(path, "expected a JSON object mapping tokens to ids");
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(json)) {
    if (!isId(id)) {
      throw new CorruptFileError(
        path,
        `token ${JSON.stringify(token)} has id ${JSON.stringify(id)}, expected a non-negative integer`,
      );
    }
    vocab.set(token, id);
  }
  if (vocab.size === 0) throw new CorruptFileError(path, "the vocabulary is empty");
  return vocab;
}

export function parseMerges(path: string, text: string): [string, string][] {
  const lines = text.trim().split("\n");
  const merges: [string, string][] = [];
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line.length === 0 || (index === 0 && line.startsWith("#"))) return;
    const parts = line.split(/\s+/u);
    const [a, b] = parts;
    if (parts.length !== 2 || a === undefined || b === undefined) {
      throw new CorruptFileError(
        path,
        `line ${index + 1} is ${JSON.stringify(line.slice(0, 60))}, expected two symbols separated by a space`,
      );
    }
    merges.push([a, b]);
  });
  return merges;
}

/** A special-token entry: "text" or {"content": "text", ...} (AddedToken as JSON). */
function tokenContent(file: string, field: string, value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  if (isRecord(value) && typeof value.content === "string") return value.content;
  throw new ConfigError(file, field, 'a string or {"content": string}', value);
}

async function readJsonFile(path: string): Promise<Record<string, unknown> | undefined> {
  const text = await readText(path, "tokenizer JSON file", false);
  if (text === undefined) return undefined;
  const json = parseJson(path, text);
  if (!isRecord(json)) throw new CorruptFileError(path, "expected a JSON object");
  return json;
}

/** Loads a tokenizer folder into plain data; throws FileNotFoundError / CorruptFileError / ConfigError. */
export async function readCLIPTokenizerFiles(dir: string): Promise<CLIPTokenizerData> {
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error("not a directory");
  } catch (error) {
    throw new FileNotFoundError(dir, "tokenizer folder", {
      cause: error,
      hint: "pass the tokenizer/ folder of a diffusers model (with vocab.json and merges.txt)",
    });
  }
  const vocabPath = join(dir, "vocab.json");
  const mergesPath = join(dir, "merges.txt");
  const configPath = join(dir, "tokenizer_config.json");
  const specialPath = join(dir, "special_tokens_map.json");
  const addedPath = join(dir, "added_tokens.json");
  const vocab = parseVocab(
    vocabPath,
    (await readText(vocabPath, "CLIP vocabulary (vocab.json)", true)) ?? "",
  );
  const merges = parseMerges(
    mergesPath,
    (await readText(mergesPath, "CLIP BPE merges (merges.txt)", true)) ?? "",
  );
  const config = (await readJsonFile(configPath)) ?? {};
  const specialMap = (await readJsonFile(specialPath)) ?? {};
  const addedJson = (await readJsonFile(addedPath)) ?? {};

  const special: Partial<Record<SpecialKey, string>> = {};
  for (const key of SPECIAL_KEYS) {
    const value =
      tokenContent(specialPath, key, specialMap[key]) ?? tokenContent(configPath, key, config[key]);
    if (value !== undefined) special[key] = value;
  }
  const extraRaw = specialMap.additional_special_tokens ?? config.additional_special_tokens ?? [];
  if (!Array.isArray(extraRaw)) {
    throw new ConfigError(specialPath, "additional_special_tokens", "a list of tokens", extraRaw);
  }
  const additionalSpecialTokens = extraRaw
    .map((v, i) => tokenContent(specialPath, `additional_special_tokens[${i}]`, v))
    .filter((v): v is string => v !== undefined);

  const addedTokens = new Map<string, number>();
  for (const [content, id] of Object.entries(addedJson)) {
    if (!isId(id))
      throw new CorruptFileError(addedPath, `token ${JSON.stringify(content)} has a non-integer id`);
    addedTokens.set(content, id);
  }
  const decoder = config.added_tokens_decoder ?? {};
  if (!isRecord(decoder))
    throw new ConfigError(configPath, "added_tokens_decoder", "an object of id -> token", decoder);
  for (const [idText, entry] of Object.entries(decoder)) {
    const id = Number(idText);
    const content = tokenContent(configPath, `added_tokens_decoder.${idText}`, entry);
    if (!isId(id) || content === undefined) {
      throw new ConfigError(
        configPath,
        `added_tokens_decoder.${idText}`,
        "an integer id with a token content",
        entry,
      );
    }
    addedTokens.set(content, id);
  }

  // transformers writes int(1e30) for "no limit"; CLIP still has 77 positions, so treat it as unset.
  const maxLength =
    typeof config.model_max_length === "number" && config.model_max_length > 1e6
      ? undefined
      : config.model_max_length;
  if (maxLength !== undefined && !(isId(maxLength) && maxLength >= 2)) {
    throw new ConfigError(configPath, "model_max_length", "an integer >= 2 (77 for CLIP)", maxLength, {
      hint: "CLIP text encoders take 77 tokens; set model_max_length to 77",
    });
  }
  return {
    vocab,
    merges,
    ...(special.bos_token === undefined ? {} : { bosToken: special.bos_token }),
    ...(special.eos_token === undefined ? {} : { eosToken: special.eos_token }),
    ...(special.pad_token === undefined ? {} : { padToken: special.pad_token }),
    ...(special.unk_token === undefined ? {} : { unkToken: special.unk_token }),
    additionalSpecialTokens,
    addedTokens,
    ...(maxLength === undefined ? {} : { modelMaxLength: maxLength }),
  };
}
