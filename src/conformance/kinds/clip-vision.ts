/**
 * Conformance kind `clip_vision`: transformers CLIPVisionModelWithProjection (case.json `weights`:
 * one transformers folder per model, output prefix = its key), CLIPImageProcessor preprocessing and
 * the CLIP scores. Compared: `<model>.image_embeds / last_hidden_state / pooler_output /
 * penultimate_hidden_state / hidden_states.k / intermediate.*` from the inputs file's `pixel_values`,
 * `<model>.zeros.*` from zeros pixel values (IP-Adapter plus's uncond); `preprocess.resized.i`,
 * `preprocess.pixel_values` (the first model folder's preprocessor_config.json) and
 * `preprocess224.cropped.i` (CLIPImageProcessor() defaults) from `image.i`, uint8 exactly;
 * `clip.*` (src/metrics/clip-score.ts) from the stored `model.image_embeds` and the `clip.*` inputs.
 * Tolerances: case.json `tolerance` (model), `tolerance.preprocess`, `tolerance.clip_metrics`.
 */
import { stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { readJsonFile } from "../../config/parse.js";
import { ConfigError } from "../../errors.js";
import { image, type Image } from "../../image.js";
import {
  clipF,
  clipT,
  consecutiveCosines,
  cosineSimilarity,
  frameTextCosines,
  normalizeEmbeds,
  torchmetricsClipScore,
} from "../../metrics/clip-score.js";
import { ClipVisionRunner } from "../../models/clip-vision/clip-vision-model.js";
import {
  type ClipImageProcessorConfig,
  DEFAULT_CLIP_IMAGE_PROCESSOR,
  clipPixelValues,
  clipResize,
  clipResizeAndCrop,
  parseClipImageProcessorConfig,
} from "../../models/clip-vision/preprocess.js";
import { type HostTensor, tensor } from "../../tensor.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { caseFile, errorNote, isRecord, readModelCase, signalOption } from "./model-fixture.js";

/** A number in case.json `tolerance[group]` whose key starts with `prefix`, else `fallback`. */
function groupTolerance(ctx: FixtureContext, group: string, prefix: string, fallback: number): number {
  const t = ctx.caseJson.tolerance;
  const g = isRecord(t) ? t[group] : undefined;
  if (!isRecord(g)) return fallback;
  const hit = Object.entries(g).find(([k, v]) => k.startsWith(prefix) && typeof v === "number");
  return typeof hit?.[1] === "number" ? hit[1] : fallback;
}

function asImage(t: HostTensor, name: string): Image {
  const [h = 0, w = 0, c = 0] = t.shape;
  if (t.dtype !== "uint8" || t.shape.length !== 3 || c !== 3)
    throw new ConfigError("inputs.safetensors", name, "a uint8 [H, W, 3] RGB image", t.shape);
  return image(w, h, 3, t.data as Uint8Array);
}

const toTensor = (img: Image): HostTensor<"uint8"> =>
  tensor("uint8", [img.height, img.width, 3], Uint8Array.from(img.data));
const scalar = (v: number): HostTensor<"float32"> => tensor("float32", [], Float32Array.of(v));
const vector = (vs: readonly number[]): HostTensor<"float32"> =>
  tensor("float32", [vs.length], Float32Array.from(vs));

/**
 * The CLIPImageProcessor of the `preprocess` call: the first model folder's preprocessor_config.json,
 * else case.json `models.<prefix>.preprocessor_config`, else CLIPImageProcessor() defaults.
 */
async function fixturePreprocessor(
  ctx: FixtureContext,
  dir: string | undefined,
  prefix: string | undefined,
): Promise<ClipImageProcessorConfig> {
  const path = join(dir ?? ctx.dir, "preprocessor_config.json");
  if ((await stat(path).catch(() => undefined))?.isFile() === true)
    return parseClipImageProcessorConfig(path, await readJsonFile(path, "preprocessor config"));
  const models = ctx.caseJson.models;
  const model = isRecord(models) && prefix !== undefined ? models[prefix] : undefined;
  const inline = isRecord(model) ? model.preprocessor_config : undefined;
  if (inline !== undefined)
    return parseClipImageProcessorConfig(`${caseFile(ctx)} (models.${prefix}.preprocessor_config)`, inline);
  return DEFAULT_CLIP_IMAGE_PROCESSOR;
}

/** Runs a `clip_vision` fixture folder. */
export async function runClipVisionFixture(ctx: FixtureContext): Promise<ConformanceRow[]> {
  const mc = await readModelCase(ctx, "clip_vision");
  const { inputs, outputs } = mc;
  const rows: ConformanceRow[] = [];
  const compared = new Set<string>();
  const compare = (name: string, actual: HostTensor | undefined, tolerance = mc.tolerance): void => {
    const expected = outputs.get(name);
    if (expected === undefined || compared.has(name)) return;
    compared.add(name);
    rows.push(
      actual === undefined
        ? failedRow(mc.fixture, name, "not produced")
        : compareTensors(mc.fixture, name, actual, expected, tolerance),
    );
  };
  const fail = (prefix: string, error: unknown): void => {
    for (const k of outputs.keys()) {
      if (k.startsWith(prefix) && !compared.has(k)) {
        compared.add(k);
        rows.push(failedRow(mc.fixture, k, errorNote(error)));
      }
    }
  };
  const weights = ctx.caseJson.weights;
  if (!isRecord(weights))
    throw new ConfigError(caseFile(ctx), "weights", "an object: output prefix -> model folder", weights);
  const pixelValues = inputs.get("pixel_values");
  let firstDir: string | undefined;
  let firstPrefix: string | undefined;
  for (const [prefix, rel] of Object.entries(weights)) {
    if (typeof rel !== "string")
      throw new ConfigError(caseFile(ctx), `weights.${prefix}`, "a folder relative to the fixture", rel);
    const dir = resolve(ctx.dir, rel);
    firstDir ??= dir;
    firstPrefix ??= prefix;
    try {
      const model = await ClipVisionRunner.load(dir, { hiddenStates: true, ...signalOption(ctx) });
      try {
        if (pixelValues !== undefined) {
          const out = await model.run(pixelValues, signalOption(ctx));
          for (const [k, v] of Object.entries(out)) compare(`${prefix}.${k}`, v);
          const zeros = tensor("float32", [1, ...pixelValues.shape.slice(1)]);
          const z = await model.run(zeros, signalOption(ctx));
          for (const [k, v] of Object.entries(z)) compare(`${prefix}.zeros.${k}`, v);
        }
      } finally {
        await model.release();
      }
    } catch (error) {
      fail(`${prefix}.`, error);
    }
  }

  // Preprocessing: uint8 exactly, pixel_values within tolerance.preprocess.
  const images = [...inputs.keys()]
    .filter((k) => /^image\.\d+$/.test(k))
    .sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)))
    .map((k) => asImage(inputs.get(k) as HostTensor, k));
  try {
    const config = await fixturePreprocessor(ctx, firstDir, firstPrefix);
    const sized = [...outputs.keys()].flatMap((k) => {
      const m = /^preprocess(\d+)\.cropped\.\d+$/.exec(k);
      return m ? [Number(m[1])] : [];
    });
    images.forEach((img, i) => {
      compare(`preprocess.resized.${i}`, toTensor(clipResize(img, config)), 0);
      compare(`preprocess.cropped.${i}`, toTensor(clipResizeAndCrop(img, config)), 0);
      for (const s of new Set(sized)) {
        const at = {
          ...DEFAULT_CLIP_IMAGE_PROCESSOR,
          size: { shortestEdge: s },
          cropSize: { height: s, width: s },
        };
        compare(`preprocess${s}.cropped.${i}`, toTensor(clipResizeAndCrop(img, at)), 0);
      }
    });
    compare(
      "preprocess.pixel_values",
      clipPixelValues(images, config),
      groupTolerance(ctx, "preprocess", "preprocess.pixel_values", 5e-6),
    );
  } catch (error) {
    fail("preprocess", error);
  }

  // CLIP scores from the stored embeddings.
  const cosTol = groupTolerance(ctx, "clip_metrics", "cosines", 2e-6);
  const scoreTol = groupTolerance(ctx, "clip_metrics", "clip.*torchmetrics", 1e-4);
  try {
    const embeds = outputs.get("model.image_embeds");
    const need = (name: string): HostTensor => {
      const t = inputs.get(name);
      if (t === undefined)
        throw new ConfigError(caseFile(ctx), `inputs_file.tensors.${name}`, "a tensor", undefined);
      return t;
    };
    if (embeds !== undefined) {
      const d = embeds.shape[1] ?? 0;
      const row = (i: number): Float32Array => (embeds.data as Float32Array).subarray(i * d, (i + 1) * d);
      compare("clip.image_embeds_normalized", normalizeEmbeds(embeds), cosTol);
      compare("clip.cos_image0_image1", scalar(cosineSimilarity(row(0), row(1))), cosTol);
      for (const [suffix, text] of [
        ["", "clip.text_embeds"],
        ["_mixed", "clip.text_embeds_mixed"],
      ] as const) {
        if (!outputs.has(`clip.cos_image_text${suffix}`)) continue;
        const cos = frameTextCosines(embeds, need(text));
        compare(`clip.cos_image_text${suffix}`, vector(cos), cosTol);
        compare(`clip.torchmetrics_clip_score${suffix}`, scalar(torchmetricsClipScore(cos)), scoreTol);
        if (suffix === "") compare("clip.clip_t", scalar(clipT(embeds, need(text))), cosTol);
      }
    }
    if (outputs.has("clip.frames.clip_f")) {
      const frames = need("clip.frame_embeds");
      const text = need("clip.frames_text_embeds");
      const cos = frameTextCosines(frames, text);
      compare("clip.frames.cos_frame_text", vector(cos), cosTol);
      compare("clip.frames.clip_t", scalar(clipT(frames, text)), cosTol);
      compare("clip.frames.torchmetrics_clip_score", scalar(torchmetricsClipScore(cos)), scoreTol);
      compare("clip.frames.cos_consecutive", vector(consecutiveCosines(frames)), cosTol);
      compare("clip.frames.clip_f", scalar(clipF(frames)), cosTol);
    }
  } catch (error) {
    fail("clip.", error);
  }
  for (const k of outputs.keys()) {
    if (!compared.has(k)) rows.push(failedRow(mc.fixture, k, "no call in case.json produced this output"));
  }
  return rows;
}

export const clipVisionKind: FixtureKind = {
  kind: "clip_vision",
  description:
    "transformers CLIPVisionModelWithProjection outputs, CLIPImageProcessor preprocessing (Pillow bicubic) and CLIP-T / CLIP-F scores",
  run: (ctx) => runClipVisionFixture(ctx),
};
