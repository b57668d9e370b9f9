/**
 * CLIP vision encoder (issue 9 item 4, issue 10 item 3): the `clip_vision` golden fixture (OpenAI
 * CLIP's VisionTransformer in the transformers layout, quick_gelu F32 and gelu F16 models;
 * CLIPImageProcessor with Pillow's bicubic; CLIP-T / CLIP-F / CLIPScore), plus the loader's checks.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runConformance } from "../src/conformance/run.js";
import { clipVisionKind } from "../src/conformance/kinds/clip-vision.js";
import { ConfigError, MissingWeightsError, UnsupportedError } from "../src/errors.js";
import { image } from "../src/image.js";
import { ClipVisionRunner } from "../src/models/clip-vision/clip-vision-model.js";
import {
  centerCrop,
  clipPixelValues,
  parseClipImageProcessorConfig,
  pillowBicubicResize,
  resizeTarget,
} from "../src/models/clip-vision/preprocess.js";
import { resolveClipVisionSpec } from "../src/models/clip-vision/validate.js";
import { buildCLIPVisionGraph } from "../src/models/clip-vision/graph.js";
import { mapStore } from "../src/nn/weight-store.js";
import { readSafetensors } from "../src/weights/safetensors.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

const FIXTURE = join(GOLDEN, "clip_vision");

describe("clip_vision golden fixture (CLIPVisionModelWithProjection, CLIPImageProcessor, CLIP scores)", () => {
  it("passes the clip_vision conformance kind: every output within its tolerance", async () => {
    const results = await runConformance([FIXTURE], { kinds: [clipVisionKind] });
    const rows = results.flatMap((r) => r.rows);
    for (const r of rows)
      console.log(
        `${r.tensor}: max abs err ${r.maxAbsError.toExponential(2)} (tol ${r.tolerance}) ${r.note ?? ""}`,
      );
    expect(results.map((r) => r.kind)).toEqual(["clip_vision"]);
    expect(rows.filter((r) => !r.pass)).toEqual([]);
    const outputs = await readSafetensors(join(FIXTURE, "outputs.safetensors"));
    const tensors = new Set(rows.map((r) => r.tensor));
    for (const name of outputs.keys()) expect(tensors, name).toContain(name);
  });
});

describe("CLIP image preprocessing", () => {
  it("truncates the long side (int()), never rounds", () => {
    expect(resizeTarget(250, 388, { shortestEdge: 32 })).toEqual([32, 49]);
    expect(resizeTarget(402, 190, { shortestEdge: 224 })).toEqual([473, 224]);
  });

  it("keeps a constant image constant through resize and crop, and normalises with mean/std", () => {
    const img = image(40, 20, 3, new Uint8Array(40 * 20 * 3).fill(128));
    const resized = pillowBicubicResize(img, 13, 7);
    expect(new Set(resized.data)).toEqual(new Set([128]));
    expect(centerCrop(resized, 7, 7).width).toBe(7);
    const px = clipPixelValues([img], parseClipImageProcessorConfig("p.json", { size: 8, crop_size: 8 }));
    expect(px.shape).toEqual([1, 3, 8, 8]);
    expect(px.data[0]).toBeCloseTo((128 / 255 - 0.48145466) / 0.26862954, 5);
  });

  it("refuses malformed sizes with ConfigError", () => {
    expect(() => parseClipImageProcessorConfig("p.json", { size: "big" })).toThrow(ConfigError);
  });
});

describe("ClipVisionRunner loading", () => {
  it("binds exactly the checkpoint keys, ignoring position_ids; reports a config that does not fit", async () => {
    const dir = join(FIXTURE, "model_gelu");
    const tensors = await readSafetensors(join(dir, "model.safetensors"));
    const config = {
      architectures: ["CLIPVisionModelWithProjection"],
      hidden_act: "gelu",
      hidden_size: 32,
      intermediate_size: 128,
      num_attention_heads: 2,
      num_hidden_layers: 1,
      patch_size: 16,
      image_size: 32,
      projection_dim: 16,
    };
    const g = buildCLIPVisionGraph(resolveClipVisionSpec("c", config), mapStore(tensors));
    expect(g.initializers.map((i) => i.name).sort()).toEqual(
      [...tensors.keys()].filter((k) => !k.endsWith("position_ids")).sort(),
    );
    expect(() =>
      buildCLIPVisionGraph(
        resolveClipVisionSpec("c", { ...config, num_hidden_layers: 2 }),
        mapStore(tensors),
      ),
    ).toThrow(MissingWeightsError);
    expect(() => resolveClipVisionSpec("c", { ...config, architectures: ["CLIPVisionModel"] })).toThrow(
      UnsupportedError,
    );
    expect(() => resolveClipVisionSpec("c", { ...config, patch_size: 15 })).toThrow(ConfigError);
  });

  it("encodes images end to end with the folder's preprocessor config", async () => {
    const model = await ClipVisionRunner.load(join(FIXTURE, "model"));
    try {
      const inputs = await readSafetensors(join(FIXTURE, "inputs.safetensors"));
      const t = inputs.get("image.0");
      const [h = 0, w = 0] = t?.shape ?? [];
      const out = await model.encodeImages([image(w, h, 3, t?.data as Uint8Array)]);
      expect(out.imageEmbeds.shape).toEqual([1, 32]);
      expect(out.penultimateHiddenState.shape).toEqual([1, 17, 64]);
    } finally {
      await model.release();
    }
  });
});
