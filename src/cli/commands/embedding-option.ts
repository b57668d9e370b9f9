/**
 * `--embedding FILE[:TOKEN]` (repeatable) of the `image` and `video` commands: a textual-inversion
 * embedding (A1111 .pt/.safetensors, diffusers learned_embeds.safetensors) whose word can then be
 * used in prompts (src/pipeline/textual-inversion.ts).
 */
import { stat } from "node:fs/promises";
import { FileNotFoundError } from "../../errors.js";
import { type EmbeddingSetting, parseEmbeddingOption } from "../../weights/embeddings/index.js";

/** The --help line(s) of the flag. */
export const EMBEDDING_HELP =
  "  --embedding <file[:token]> a textual-inversion embedding (A1111 .pt/.safetensors, diffusers\n" +
  "                            learned_embeds); TOKEN (default: the file's token or its name) in prompts\n" +
  "                            calls it (repeatable)\n";

/** Every --embedding value parsed, each file checked to exist (before any model loads). */
export async function embeddingOption(values: readonly string[] | undefined): Promise<EmbeddingSetting[]> {
  const settings = (values ?? []).map(parseEmbeddingOption);
  for (const s of settings) {
    const info = await stat(s.path).catch(() => undefined);
    if (!info?.isFile()) {
      throw new FileNotFoundError(s.path, "--embedding file", {
        hint: "pass a textual-inversion .pt or .safetensors file, optionally followed by :TOKEN",
      });
    }
  }
  return settings;
}
