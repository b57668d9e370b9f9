/**
 * Textual-inversion embeddings: the files people download (A1111 `.pt` with
 * `string_to_param["*"]`, A1111 `.safetensors` with `emb_params`, diffusers `learned_embeds`
 * `{token: tensor}`), read into token vectors, and a WeightStore that appends them to the text
 * encoder's `text_model.embeddings.token_embedding.weight`. Mirrors diffusers 0.26.3
 * `TextualInversionLoaderMixin.load_textual_inversion` (loaders/textual_inversion.py): a file of n
 * vectors adds the tokens `token, token_1, ..., token_{n-1}`, each one row of the embedding table,
 * and the prompt's `token` stands for all n (see CLIPTokenizer.addTokens).
 * Token names: `FILE:TOKEN` when given; else the diffusers file's key; else the file name without
 * extension (A1111's rule for its own formats).
 */
import { basename, extname } from "node:path";
import { ConfigError, CorruptFileError, InvalidArgumentError } from "../../errors.js";
import { lazySource } from "../../graph/weight-source.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { type HostTensor, shapeToString, tensor, toFloat32 } from "../../tensor.js";
import { readTorchCheckpoint } from "../pickle/index.js";
import { readSafetensors } from "../safetensors.js";

/** The text encoder weight the vectors are appended to. */
export const TOKEN_EMBEDDING_KEY = "text_model.embeddings.token_embedding.weight";

/** One `--embedding FILE[:TOKEN]`. */
export interface EmbeddingSetting {
  readonly path: string;
  /** (optional) the word that calls it in prompts. */
  readonly token?: string;
}

/** A textual inversion read from its file. */
export interface TextualInversion {
  readonly file: string;
  /** The prompt word. */
  readonly token: string;
  /** The tokens added to the tokenizer, one per vector: token, token_1, ... */
  readonly tokens: readonly string[];
  /** float32 [n, hidden]. */
  readonly vectors: HostTensor<"float32">;
}

/** Parses `FILE[:TOKEN]` (the token is the part after the last ":" when it has no path separator). */
export function parseEmbeddingOption(value: string): EmbeddingSetting {
  const colon = value.lastIndexOf(":");
  const tail = colon > 0 ? value.slice(colon + 1) : "";
  if (colon > 0 && tail !== "" && !/[\\/]/.test(tail)) return { path: value.slice(0, colon), token: tail };
  if (value === "") throw new InvalidArgumentError("--embedding", "FILE[:TOKEN]", value);
  return { path: value };
}

/** The tokens a file of `n` vectors adds (diffusers: token, token_1, ..., token_{n-1}). */
export function inversionTokens(token: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? token : `${token}_${i}`));
}

function pickVectors(file: string, tensors: Map<string, HostTensor>): { key: string; t: HostTensor } {
  const a1111 = tensors.get("string_to_param/*") ?? tensors.get("emb_params");
  if (a1111) return { key: "", t: a1111 };
  if (tensors.size === 1) {
    const [key, t] = [...tensors][0] ?? ["", tensor("float32", [0])];
    return { key, t };
  }
  throw new CorruptFileError(
    file,
    `not a textual-inversion embedding: expected string_to_param["*"] (A1111 .pt), emb_params (A1111 .safetensors) or one {token: tensor} (diffusers learned_embeds), found ${[...tensors.keys()].slice(0, 8).join(", ") || "no tensors"}`,
  );
}

/** Reads a textual-inversion file; `hiddenSize` is the text encoder's width (checked). */
export async function readTextualInversion(
  setting: EmbeddingSetting,
  hiddenSize: number,
): Promise<TextualInversion> {
  const file = setting.path;
  const ext = extname(file).toLowerCase();
  const tensors = ext === ".safetensors" ? await readSafetensors(file) : await readTorchCheckpoint(file);
  const { key, t } = pickVectors(file, tensors);
  const rows = t.shape.length === 1 ? 1 : (t.shape[0] ?? 0);
  const width = t.shape[t.shape.length - 1] ?? 0;
  if (t.shape.length < 1 || t.shape.length > 2 || rows < 1) {
    throw new CorruptFileError(
      file,
      `embedding tensor of shape ${shapeToString(t.shape)}; expected [hidden] or [n, hidden]`,
    );
  }
  if (width !== hiddenSize) {
    throw new ConfigError(
      file,
      key || "string_to_param",
      `vectors of width ${hiddenSize} (the text encoder's hidden_size)`,
      width,
      {
        hint: "the embedding was trained for another model family (SD 1.x: 768, SD 2.x: 1024)",
      },
    );
  }
  const token = setting.token ?? (key !== "" ? key : basename(file, extname(file)));
  if (token.trim() === "" || /\s/.test(token)) {
    throw new InvalidArgumentError("--embedding TOKEN", "a word without spaces", token);
  }
  const f32 = toFloat32(t);
  return {
    file,
    token,
    tokens: inversionTokens(token, rows),
    vectors: tensor("float32", [rows, width], Float32Array.from(f32.data)),
  };
}

/**
 * `base` (a text encoder store) with `vectors` [n, hidden] appended to the token embedding table as
 * rows vocab_size .. vocab_size + n - 1 (float32, as diffusers resizes the table). Every other key is
 * the base's.
 */
export function withAppendedTokenRows(base: WeightStore, vectors: HostTensor<"float32">): WeightStore {
  const info = base.info(TOKEN_EMBEDDING_KEY);
  if (info === undefined) {
    throw new InvalidArgumentError("text encoder", `a store with ${TOKEN_EMBEDDING_KEY}`, base.name);
  }
  const [vocab = 0, hidden = 0] = info.shape;
  const n = vectors.shape[0] ?? 0;
  if (vectors.shape[1] !== hidden) {
    throw new InvalidArgumentError("vectors", `[n, ${hidden}]`, shapeToString(vectors.shape));
  }
  const shape = [vocab + n, hidden];
  return {
    name: `${base.name} + ${n} textual-inversion token(s)`,
    keys: () => base.keys(),
    info: (key) => (key === TOKEN_EMBEDDING_KEY ? { dtype: "float32", shape } : base.info(key)),
    source: (key) => {
      if (key !== TOKEN_EMBEDDING_KEY) return base.source(key);
      return lazySource("float32", shape, async () => {
        const table = toFloat32(await base.source(key).load());
        const out = new Float32Array((vocab + n) * hidden);
        out.set(table.data.subarray(0, vocab * hidden));
        out.set(vectors.data, vocab * hidden);
        return tensor("float32", shape, out);
      });
    },
    ...(base.synthesize ? { synthesize: base.synthesize.bind(base) } : {}),
    ...(base.lowRank ? { lowRank: base.lowRank } : {}),
  };
}
