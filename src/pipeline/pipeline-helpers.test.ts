import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, FileNotFoundError, InvalidArgumentError } from "../errors.js";
import { image } from "../image.js";
import { tensor } from "../tensor.js";
import { readPipelineFolder } from "./components.js";
import { chunkBatch, classifierFreeGuidance, concatBatch } from "./guidance.js";
import { roundHalfEven } from "../util/round.js";
import { denormalize, imageToTensor, tensorToImages } from "./images.js";

describe("guidance", () => {
  it("combines [uncond, cond] as u + g (c - u)", () => {
    const u = tensor("float32", [1, 2], new Float32Array([1, -1]));
    const c = tensor("float32", [1, 2], new Float32Array([2, 1]));
    expect([...classifierFreeGuidance(u, c, 7.5).data]).toEqual([8.5, 14]);
    const batch = concatBatch([u, c]);
    expect(batch.shape).toEqual([2, 2]);
    const [u2, c2] = chunkBatch(batch, 2);
    expect([...(u2?.data ?? [])]).toEqual([1, -1]);
    expect([...(c2?.data ?? [])]).toEqual([2, 1]);
    expect(() => chunkBatch(tensor("float32", [3, 1]), 2)).toThrow(InvalidArgumentError);
    expect(() => concatBatch([u, tensor("float32", [1, 3])])).toThrow("shape [*, 2]");
  });
});

describe("image tensors", () => {
  it("maps uint8 RGB to planar [0,1] and [-1,1]", () => {
    const img = image(2, 1, 3, new Uint8Array([255, 0, 51, 0, 255, 102]));
    const t = imageToTensor(img, "0,1");
    expect(t.shape).toEqual([1, 3, 1, 2]);
    expect([...t.data]).toEqual([1, 0, 0, 1, Math.fround(0.2), Math.fround(0.4)]);
    expect([...imageToTensor(img, "-1,1").data.slice(0, 2)]).toEqual([1, -1]);
  });

  it("post-processes like diffusers: clamp(x/2+0.5) then round half to even", () => {
    expect([...denormalize(tensor("float32", [3], new Float32Array([-3, 0, 3]))).data]).toEqual([0, 0.5, 1]);
    expect(roundHalfEven(0.5)).toBe(0);
    expect(roundHalfEven(1.5)).toBe(2);
    expect(roundHalfEven(2.5)).toBe(2);
    const [img] = tensorToImages(tensor("float32", [1, 3, 1, 1], new Float32Array([1, 0.5, 0])));
    expect([...(img?.data ?? [])]).toEqual([255, 128, 0]);
  });
});

describe("readPipelineFolder", () => {
  it("locates the tiny pipeline's components and weights", async () => {
    const folder = await readPipelineFolder("test/fixtures/golden/tiny-sd");
    expect(folder.pipelineClass).toBe("StableDiffusionControlNetPipeline");
    expect([...folder.components.keys()].sort()).toEqual([
      "controlnet",
      "scheduler",
      "text_encoder",
      "tokenizer",
      "unet",
      "vae",
    ]);
    expect(folder.components.get("unet")?.weights).toMatch(/unet\/diffusion_pytorch_model\.safetensors$/);
    expect(folder.components.get("text_encoder")?.weights).toMatch(/text_encoder\/model\.safetensors$/);
  });

  it("explains a missing index, a bad entry and missing weights", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sf-pipe-"));
    try {
      await expect(readPipelineFolder(dir)).rejects.toThrow(FileNotFoundError);
      await writeFile(join(dir, "model_index.json"), JSON.stringify({ unet: "diffusers" }));
      await expect(readPipelineFolder(dir)).rejects.toThrow(ConfigError);
      await writeFile(
        join(dir, "model_index.json"),
        JSON.stringify({ unet: ["diffusers", "UNet2DConditionModel"] }),
      );
      await mkdir(join(dir, "unet"));
      await writeFile(join(dir, "unet", "diffusion_pytorch_model.bin"), "");
      await expect(readPipelineFolder(dir)).rejects.toThrow("convert it to .safetensors");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
