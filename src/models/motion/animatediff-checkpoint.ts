/**
 * Original AnimateDiff motion-module checkpoints (`mm_sd_v15_v2.ckpt` and its .safetensors copies)
 * as a diffusers-keyed MotionAdapter WeightStore: keys renamed by weights/key-maps/animatediff.ts,
 * `pos_encoder` tables dropped, and each module's `transformer_blocks.0.pos_embed.pe` rebuilt from the
 * config (motion_max_seq_length positions), as diffusers' conversion script does
 * (`MotionAdapter(...)` + `load_state_dict(converted, strict=False)`). Pickles go through the safe
 * unpickler. Which adapter layout the file has is never guessed: the config says it.
 */
import { stat } from "node:fs/promises";
import { FileNotFoundError, InvalidArgumentError } from "../../errors.js";
import { type WeightSource, lazySource } from "../../graph/weight-source.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { tensor } from "../../tensor.js";
import { mapAnimateDiffKey } from "../../weights/key-maps/animatediff.js";
import { openCheckpointStore } from "../../weights/single-file.js";
import { sinusoidalPositionTable } from "../unet/embeddings.js";
import { type MotionAdapterConfig, motionModuleSites } from "./config.js";

/** `original` (AnimateDiff keys) seen with diffusers MotionAdapter keys plus rebuilt `pos_embed.pe` tables. */
export function animateDiffStore(original: WeightStore, config: MotionAdapterConfig): WeightStore {
  const byKey = new Map<string, string>();
  for (const key of original.keys()) {
    const mapped = mapAnimateDiffKey(key);
    if (mapped === undefined) continue;
    const previous = byKey.get(mapped);
    if (previous !== undefined) {
      throw new InvalidArgumentError("checkpoint", "an AnimateDiff motion-module checkpoint", original.name, {
        hint: `keys "${previous}" and "${key}" both map to "${mapped}"`,
      });
    }
    byKey.set(mapped, key);
  }
  const tables = new Map<string, number>();
  for (const site of motionModuleSites(config)) {
    const key = `${site.path}.transformer_blocks.0.pos_embed.pe`;
    if (!byKey.has(key)) tables.set(key, site.channels);
  }
  const length = config.motion_max_seq_length;
  const table = (channels: number): WeightSource =>
    lazySource("float32", [1, length, channels], () =>
      Promise.resolve(tensor("float32", [1, length, channels], sinusoidalPositionTable(channels, length))),
    );
  return {
    name: `${original.name} (AnimateDiff motion modules)`,
    keys: () => [...byKey.keys(), ...tables.keys()],
    info: (key) => {
      const channels = tables.get(key);
      if (channels !== undefined) return { dtype: "float32", shape: [1, length, channels] };
      const source = byKey.get(key);
      return source === undefined ? undefined : original.info(source);
    },
    source: (key) => {
      const channels = tables.get(key);
      if (channels !== undefined) return table(channels);
      const source = byKey.get(key);
      if (source === undefined) {
        throw new InvalidArgumentError("key", `a MotionAdapter key of ${original.name}`, key);
      }
      return original.source(source);
    },
  };
}

/** Opens an original AnimateDiff motion-module file (.ckpt/.pth/.pt via the safe unpickler, or .safetensors). */
export async function openAnimateDiffCheckpoint(
  path: string,
  config: MotionAdapterConfig,
): Promise<{ store: WeightStore; weightsId: string }> {
  const info = await stat(path).catch(() => null);
  if (!info?.isFile()) {
    throw new FileNotFoundError(path, "AnimateDiff motion-module checkpoint", {
      hint: "give the path of a file such as mm_sd_v15_v2.ckpt",
    });
  }
  const store = animateDiffStore(await openCheckpointStore(path), config);
  return { store, weightsId: `${path}:${info.size}:${info.mtimeMs}:animatediff` };
}
