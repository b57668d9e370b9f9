/**
 * The training data of a diffusion fine-tune, prepared once per run: video frames (ffmpeg decode,
 * scaled to cover WxH and centre-cropped), their VAE latents (the latent distribution's mean, or a
 * seeded sample, times scaling_factor, as diffusers' train_text_to_image.py computes per batch), the
 * captions' CLIP embeddings, and optional Canny control maps (for ControlNet training, diffusers
 * train_controlnet.py's conditioning images in [0, 1]). Latents and control maps are cached on disk,
 * one safetensors file per clip keyed by everything they depend on (model weights identity, size,
 * clip file, frame selection, latent mode and seed), and so are the caption embeddings (keyed by
 * the text encoder and tokenizer files and the captions), written atomically: a second run on the
 * same clips skips the decoding, the VAE and the text encoder.
 */
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { basename, extname, join, resolve } from "node:path";
import { ConfigError, FileNotFoundError, InvalidArgumentError, throwIfAborted } from "../../errors.js";
import { canny } from "../../control/canny.js";
import type { ModelLoadOptions } from "../../models/compiled-graph.js";
import { CLIPTextModel } from "../../models/clip/clip-text-model.js";
import { AutoencoderKL } from "../../models/vae/autoencoder-kl.js";
import { concatBatch } from "../../models/batch.js";
import { readPipelineFolder } from "../../pipeline/components.js";
import { imageToTensor, toRGB } from "../../pipeline/images.js";
import type { LongTaskOptions } from "../../progress.js";
import { type HostTensor, tensor, toFloat32 } from "../../tensor.js";
import { CLIPTokenizer } from "../../tokenizer/clip-tokenizer.js";
import { readAllFrames } from "../../video/read.js";
import { readSafetensors, writeSafetensors } from "../../weights/safetensors.js";
import { STREAM, generatorFor } from "./rng.js";
import { createParentFolders } from "../../util/atomic-write.js";

/** Bumped when the cached tensors would change for the same inputs. */
const CACHE_VERSION = "1";

/** One training clip and its caption(s). */
export interface TrainingClip {
  /** A video file (or PNG sequence) ffmpeg decodes. */
  readonly path: string;
  /** One caption for every frame of the clip, or one per selected frame (as many as frames). */
  readonly prompt: string | readonly string[];
  /** (optional) take at most this many frames (after `stride`). */
  readonly maxFrames?: number;
  /** (optional, default 1) take every stride-th frame. */
  readonly stride?: number;
}

export interface PrepareDataOptions extends LongTaskOptions {
  /** A diffusers pipeline folder (model_index.json with vae, text_encoder, tokenizer). */
  readonly model: string;
  readonly clips: readonly TrainingClip[];
  /** Frame size in pixels (multiples of the VAE's downsampling factor). */
  readonly width: number;
  readonly height: number;
  /** (optional, default "mean") VAE latents: the distribution's mean, or one seeded sample. */
  readonly latents?: "mean" | "sample";
  /** Seed of the latent samples (mode "sample"). */
  readonly seed: bigint;
  /** (optional) also compute control maps: Canny edges of each frame (RGB, 0/255 -> [0, 1]). */
  readonly control?: { readonly kind: "canny"; readonly low?: number; readonly high?: number };
  /** Folder of the latent cache (created when missing). */
  readonly cacheDir: string;
  /** (optional) captions embedded besides the clips' own (the empty prompt of caption dropout). */
  readonly extraCaptions?: readonly string[];
  /** (optional) how the VAE and text encoder are compiled and run. */
  readonly load?: ModelLoadOptions;
}

export interface TrainingData {
  /** Diffusion latents [N, C, h, w] (already times scaling_factor). */
  readonly latents: HostTensor<"float32">;
  /** The distinct captions, in first-use order. */
  readonly captions: readonly string[];
  /** Their prompt embeddings [K, sequence, hidden]. */
  readonly embeddings: HostTensor<"float32">;
  /** Caption index of each item. */
  readonly captionOf: readonly number[];
  /** Where each item came from. */
  readonly items: readonly { readonly clip: number; readonly frame: number }[];
  /** Control maps [N, 3, H, W] in [0, 1] (when asked for). */
  readonly controls?: HostTensor<"float32">;
  /** The cache files used (one per clip and kind, then the caption embeddings). */
  readonly cacheFiles: readonly string[];
}

async function fileIdentity(path: string, what: string): Promise<string> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new FileNotFoundError(path, what);
  return `${resolve(path)}:${info.size}:${Math.round(info.mtimeMs)}`;
}

function cacheName(clip: string, kind: string, key: unknown): string {
  const hash = createHash("sha256").update(JSON.stringify(key)).digest("hex").slice(0, 20);
  return `${basename(clip, extname(clip))}.${kind}-${hash}.safetensors`;
}

async function readCached(path: string, name: string): Promise<HostTensor<"float32"> | undefined> {
  const exists = await stat(path).then(
    () => true,
    () => false,
  );
  if (!exists) return undefined;
  const t = (await readSafetensors(path)).get(name);
  return t ? toFloat32(t) : undefined;
}

/** Decodes, encodes and embeds the clips (see the file comment). */
export async function prepareTrainingData(options: PrepareDataOptions): Promise<TrainingData> {
  const { width, height, clips } = options;
  if (clips.length === 0) throw new InvalidArgumentError("clips", "at least one training clip", []);
  const folder = await readPipelineFolder(options.model);
  const dirOf = (name: "vae" | "text_encoder" | "tokenizer"): string => {
    const c = folder.components.get(name);
    if (!c) throw new InvalidArgumentError(options.model, `a pipeline with a ${name} component`, "none");
    return c.dir;
  };
  const vaeDir = dirOf("vae");
  const vaeWeights = folder.components.get("vae")?.weights ?? "";
  const vaeIdentity = [
    await fileIdentity(vaeWeights, "VAE weights"),
    createHash("sha256")
      .update(await readFile(join(vaeDir, "config.json")))
      .digest("hex"),
  ];
  const mode = options.latents ?? "mean";
  await createParentFolders(options.cacheDir);
  const load = { ...options.load, compile: "first-use" as const };
  let vae: AutoencoderKL | undefined;
  const latents: HostTensor[] = [];
  const controls: HostTensor[] = [];
  const items: { clip: number; frame: number }[] = [];
  const itemPrompts: string[] = [];
  const cacheFiles: string[] = [];
  try {
    for (const [ci, clip] of clips.entries()) {
      throwIfAborted(options.signal, "preparing training data");
      const selection = { stride: clip.stride ?? 1, maxFrames: clip.maxFrames ?? null };
      const source = await fileIdentity(clip.path, "training clip");
      const base = { v: CACHE_VERSION, source, width, height, selection };
      const latentKey = {
        ...base,
        vae: vaeIdentity,
        mode,
        seed: mode === "sample" ? String(options.seed) : null,
      };
      const latentFile = join(options.cacheDir, cacheName(clip.path, "latents", latentKey));
      const controlFile =
        options.control === undefined
          ? undefined
          : join(options.cacheDir, cacheName(clip.path, "canny", { ...base, control: options.control }));
      let z = await readCached(latentFile, "latents");
      let c = controlFile === undefined ? undefined : await readCached(controlFile, "control");
      if (z === undefined || (controlFile !== undefined && c === undefined)) {
        const frames = await readAllFrames(clip.path, {
          resize: { width, height, fit: "cover" },
          ...(clip.stride === undefined ? {} : { stride: clip.stride }),
          ...(clip.maxFrames === undefined ? {} : { maxFrames: clip.maxFrames }),
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        });
        if (frames.length === 0)
          throw new InvalidArgumentError(clip.path, "a video with at least one frame", "no frames");
        if (z === undefined) {
          vae ??= await AutoencoderKL.load(vaeDir, load);
          const images = concatBatch(frames.map((f) => imageToTensor(f, "-1,1")));
          z = await vae.encodeLatents(images, {
            mode,
            batchSize: 1,
            generator: generatorFor(options.seed, STREAM.latents, ci),
            ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
            ...(options.signal === undefined ? {} : { signal: options.signal }),
          });
          await writeSafetensors(latentFile, { latents: z }, { source: clip.path, mode });
        }
        if (controlFile !== undefined && c === undefined) {
          const maps: HostTensor[] = [];
          for (const f of frames) {
            const edges = await canny(f, {
              threshold1: options.control?.low ?? 100,
              threshold2: options.control?.high ?? 200,
            });
            maps.push(imageToTensor(toRGB(edges), "0,1"));
          }
          c = toFloat32(concatBatch(maps));
          await writeSafetensors(controlFile, { control: c }, { source: clip.path, kind: "canny" });
        }
      }
      cacheFiles.push(latentFile, ...(controlFile === undefined ? [] : [controlFile]));
      const n = z.shape[0] ?? 0;
      if (Array.isArray(clip.prompt) && clip.prompt.length !== n) {
        throw new InvalidArgumentError(
          `prompts of ${clip.path}`,
          `one caption per selected frame (${n})`,
          `${clip.prompt.length} captions`,
          { hint: "give one prompt for the whole clip, or exactly one per frame" },
        );
      }
      latents.push(z);
      if (c !== undefined) controls.push(c);
      for (let i = 0; i < n; i++) {
        items.push({ clip: ci, frame: i });
        itemPrompts.push(typeof clip.prompt === "string" ? clip.prompt : (clip.prompt[i] ?? ""));
      }
    }
  } finally {
    await vae?.release();
  }
  const first = latents[0];
  if (first && latents.some((z) => z.shape.slice(1).join() !== first.shape.slice(1).join())) {
    throw new ConfigError(options.cacheDir, "latents", "one latent shape for every clip", "several");
  }
  const captions = [...new Set([...itemPrompts, ...(options.extraCaptions ?? [])])];
  const encoderDir = dirOf("text_encoder");
  const textKey = {
    v: CACHE_VERSION,
    weights: await fileIdentity(folder.components.get("text_encoder")?.weights ?? "", "text encoder weights"),
    config: await readFile(join(encoderDir, "config.json"), "utf8"),
    tokenizer: await Promise.all(
      ["vocab.json", "merges.txt", "tokenizer_config.json"].map((f) =>
        fileIdentity(join(dirOf("tokenizer"), f), "tokenizer file").catch(() => f),
      ),
    ),
    captions,
  };
  const textFile = join(options.cacheDir, cacheName("captions", "embeddings", textKey));
  let embeddings = await readCached(textFile, "embeddings");
  if (embeddings === undefined) {
    embeddings = await embedCaptions(dirOf("tokenizer"), encoderDir, captions, load);
    await writeSafetensors(textFile, { embeddings }, { captions: JSON.stringify(captions) });
  }
  cacheFiles.push(textFile);
  return {
    latents: toFloat32(concatBatch(latents)),
    captions,
    embeddings,
    captionOf: itemPrompts.map((p) => captions.indexOf(p)),
    items,
    ...(options.control === undefined ? {} : { controls: toFloat32(concatBatch(controls)) }),
    cacheFiles,
  };
}

/** CLIP prompt embeddings (last hidden state) of each caption, [K, sequence, hidden]. */
async function embedCaptions(
  tokenizerDir: string,
  encoderDir: string,
  captions: readonly string[],
  load: ModelLoadOptions,
): Promise<HostTensor<"float32">> {
  const tokenizer = await CLIPTokenizer.fromPretrained(tokenizerDir);
  const encoder = await CLIPTextModel.load(encoderDir, load);
  try {
    const out: HostTensor[] = [];
    for (const c of captions) out.push((await encoder.encode(tokenizer.encodeBatch([c]))).promptEmbeds);
    return toFloat32(concatBatch(out));
  } finally {
    await encoder.release();
  }
}

/** Rows `rows` of a batch-first tensor, stacked. */
export function gatherRows(t: HostTensor<"float32">, rows: readonly number[]): HostTensor<"float32"> {
  const per = t.data.length / Math.max(1, t.shape[0] ?? 1);
  const out = new Float32Array(per * rows.length);
  rows.forEach((r, i) => out.set(t.data.subarray(r * per, (r + 1) * per), i * per));
  return tensor("float32", [rows.length, ...t.shape.slice(1)], out);
}
