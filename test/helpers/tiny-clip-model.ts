/**
 * A tiny transformers `CLIPModel` folder for CLIP-T / CLIP-F tests, assembled from the golden
 * fixtures' towers: the tiny-sd text encoder and tokenizer, the clip_vision/model vision tower (with
 * its visual_projection, projection_dim 32) and a fixed text_projection [32, 32]. Random weights:
 * the scores mean nothing, but the shapes and the code paths are a real CLIPModel's.
 */
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type HostTensor, tensor } from "../../src/tensor.js";
import { readSafetensors, writeSafetensors } from "../../src/weights/safetensors.js";
import { GOLDEN } from "./golden-fixture.js";

export async function writeTinyClipModel(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const text = await readSafetensors(join(GOLDEN, "tiny-sd/text_encoder/model.safetensors"));
  const vision = await readSafetensors(join(GOLDEN, "clip_vision/model/model.safetensors"));
  const all = new Map<string, HostTensor>([...text, ...vision]);
  all.set(
    "text_projection.weight",
    tensor(
      "float32",
      [32, 32],
      Float32Array.from({ length: 1024 }, (_, i) => Math.cos(i * 0.29) * 0.3),
    ),
  );
  all.set("logit_scale", tensor("float32", [], Float32Array.of(4.6)));
  await writeSafetensors(join(dir, "model.safetensors"), all);
  const config = async (path: string): Promise<Record<string, unknown>> => {
    const c = JSON.parse(await readFile(join(GOLDEN, path), "utf8")) as Record<string, unknown>;
    delete c.architectures;
    return c;
  };
  await writeFile(
    join(dir, "config.json"),
    JSON.stringify({
      architectures: ["CLIPModel"],
      projection_dim: 32,
      text_config: await config("tiny-sd/text_encoder/config.json"),
      vision_config: await config("clip_vision/model/config.json"),
    }),
  );
  for (const f of ["merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"])
    await copyFile(join(GOLDEN, "tiny-sd/tokenizer", f), join(dir, f));
  await copyFile(
    join(GOLDEN, "clip_vision/model/preprocessor_config.json"),
    join(dir, "preprocessor_config.json"),
  );
}
