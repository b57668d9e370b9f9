/**
 * Textual-inversion embeddings on a pipeline (`StableDiffusionPipeline.load({ embeddings })`), as
 * diffusers 0.26.3 `load_textual_inversion`: each file's tokens are added to the tokenizer with the
 * ids after the text encoder's vocabulary, and its vectors become those rows of the token embedding
 * table (the text encoder is built with vocab_size + n). src/weights/embeddings reads the files.
 */
import { createHash } from "node:crypto";
import { ConfigError } from "../errors.js";
import { type ComponentSource, resolveComponent } from "../models/component-source.js";
import { parseCLIPTextConfig } from "../models/clip/config.js";
import { tensor } from "../tensor.js";
import type { CLIPTokenizer } from "../tokenizer/clip-tokenizer.js";
import {
  type EmbeddingSetting,
  type TextualInversion,
  readTextualInversion,
  withAppendedTokenRows,
} from "../weights/embeddings/index.js";

export type { EmbeddingSetting };

/**
 * Adds `settings` to `tokenizer` (mutated) and returns the text encoder source with the vectors
 * appended; `textEncoder` itself when there are none.
 */
export async function withTextualInversions(
  settings: readonly EmbeddingSetting[],
  tokenizer: CLIPTokenizer,
  textEncoder: ComponentSource,
): Promise<{ readonly textEncoder: ComponentSource; readonly inversions: readonly TextualInversion[] }> {
  if (settings.length === 0) return { textEncoder, inversions: [] };
  const parts = await resolveComponent(textEncoder, "transformers");
  const config = parseCLIPTextConfig(parts.configName, parts.config).config;
  const inversions: TextualInversion[] = [];
  for (const s of settings) inversions.push(await readTextualInversion(s, config.hidden_size));
  const vocab = config.vocab_size;
  if (tokenizer.size > vocab) {
    throw new ConfigError(
      parts.configName,
      "vocab_size",
      `at least ${tokenizer.size} (the tokenizer's size)`,
      vocab,
      {
        hint: "the tokenizer already has tokens the text encoder has no rows for",
      },
    );
  }
  const hidden = config.hidden_size;
  const total = inversions.reduce((n, inv) => n + inv.tokens.length, 0);
  const rows = new Float32Array(total * hidden);
  const hash = createHash("sha256");
  let next = vocab;
  for (const inv of inversions) {
    tokenizer.addEmbeddingTokens(
      inv.tokens,
      inv.tokens.map((_, i) => next + i),
    );
    rows.set(inv.vectors.data, (next - vocab) * hidden);
    next += inv.tokens.length;
    hash.update(inv.tokens.join("\u0000"));
    hash.update(
      new Uint8Array(inv.vectors.data.buffer, inv.vectors.data.byteOffset, inv.vectors.data.byteLength),
    );
  }
  const store = withAppendedTokenRows(parts.store, tensor("float32", [total, hidden], rows));
  const raw = (typeof parts.config === "object" && parts.config !== null ? parts.config : {}) as Record<
    string,
    unknown
  >;
  return {
    textEncoder: {
      config: { ...raw, vocab_size: vocab + total },
      configName: parts.configName,
      store,
      ...(parts.weightsId === null
        ? {}
        : { weightsId: `${parts.weightsId}+ti:${hash.digest("hex").slice(0, 16)}` }),
    },
    inversions,
  };
}
