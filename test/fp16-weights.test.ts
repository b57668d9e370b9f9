import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UNet2DConditionModel } from "../src/models/unet/unet-2d-condition.js";
import { findWeightsFile } from "../src/pipeline/components.js";
import { maxAbsDiff, toFloat16, toFloat32, type HostTensor } from "../src/tensor.js";
import { readSafetensors, writeSafetensors } from "../src/weights/safetensors.js";

// diffusers saves half-precision variants as diffusion_pytorch_model.fp16.safetensors (F16 tensors).
// Loading one into the fp32 graph casts every weight at write time; the result must match the fp32
// golden output to fp16's own precision.
const golden = join(import.meta.dirname, "fixtures/golden");

describe("fp16 safetensors weights", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sf-fp16-"));
    const unetDir = join(dir, "pipe", "unet");
    await mkdir(unetDir, { recursive: true });
    await copyFile(join(golden, "tiny-sd/unet/config.json"), join(unetDir, "config.json"));
    const weights = await readSafetensors(join(golden, "tiny-sd/unet/diffusion_pytorch_model.safetensors"));
    const half = new Map<string, HostTensor>();
    for (const [k, t] of weights) half.set(k, toFloat16(toFloat32(t)));
    await writeSafetensors(join(unetDir, "diffusion_pytorch_model.fp16.safetensors"), half);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("is found as the variant file and runs close to the fp32 reference", async () => {
    const unetDir = join(dir, "pipe", "unet");
    const inputs = await readSafetensors(join(golden, "unet/inputs.safetensors"));
    const outputs = await readSafetensors(join(golden, "unet/outputs.safetensors"));
    const unet = await UNet2DConditionModel.load(unetDir, { cacheDir: join(dir, "cache") });
    try {
      const sample = inputs.get("sample");
      const context = inputs.get("encoder_hidden_states");
      const expected = outputs.get("noise_pred.t_scalar");
      if (!sample || !context || !expected) throw new Error("fixture tensors missing");
      const noise = await unet.forward({ sample, timestep: 500, encoderHiddenStates: context });
      const error = maxAbsDiff(noise, expected);
      expect(error).toBeGreaterThan(0); // the weights really are rounded
      expect(error).toBeLessThan(2e-2); // fp16 weights: ~3 decimal digits
    } finally {
      await unet.release();
    }
  });

  it("is the file a component folder resolves when only the variant exists", async () => {
    expect(await findWeightsFile(join(dir, "pipe", "unet"), "diffusers")).toMatch(
      /unet\/diffusion_pytorch_model\.fp16\.safetensors$/,
    );
  });
});
