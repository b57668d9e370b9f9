/**
 * Fixture kind `pipeline_controlnet`: an end-to-end StableDiffusionControlNetPipeline run on the model
 * folder named by case.json (`model_dir`), with the call arguments, scheduler, supplied latents and
 * control image from the fixture. Every recorded intermediate (prompt embeddings, each step's model
 * inputs/outputs and latents, the decoder output, the image) is compared step by step, so a failure
 * points at the first step that drifts.
 */
import { join } from "node:path";
import { ConfigError } from "../../errors.js";
import { pillowResize } from "../../image.js";
import { image } from "../../image.js";
import { StableDiffusionPipeline } from "../../pipeline/stable-diffusion.js";
import { imageToTensor, tensorToImages } from "../../pipeline/images.js";
import { tensor, toFloat32, type HostTensor } from "../../tensor.js";
import { readSafetensors } from "../../weights/safetensors.js";
import { compareTensors, failedRow } from "../compare.js";
import type { ConformanceRow, FixtureKind } from "../types.js";
import { callNumber, callSeed, fixtureScheduler } from "./model-fixture.js";

function record(value: unknown, file: string, field: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(file, field, "an object", value);
  }
  return value as Record<string, unknown>;
}

function fileName(caseJson: Record<string, unknown>, field: string, fallback: string): string {
  const value = caseJson[field];
  if (typeof value === "string") return value;
  if (typeof value === "object" && value !== null && "file" in value && typeof value.file === "string")
    return value.file;
  return fallback;
}

function num(call: Record<string, unknown>, key: string, fallback?: number): number {
  const v = call[key];
  if (typeof v === "number") return v;
  if (v === null || v === undefined) {
    if (fallback !== undefined) return fallback;
  }
  throw new ConfigError("case.json", `call.${key}`, "a number", v);
}

/** HWC uint8 [H, W, 3] tensor -> Image. */
function uint8Image(t: HostTensor): ReturnType<typeof image> {
  const [h = 0, w = 0, c = 0] = t.shape;
  if (t.dtype !== "uint8" || c !== 3)
    throw new ConfigError("inputs.safetensors", "control_image_uint8", "uint8 [H, W, 3]", t.shape);
  return image(w, h, 3, t.data as Uint8Array);
}

export const pipelineControlnetKind: FixtureKind = {
  kind: "pipeline_controlnet",
  description: "end-to-end StableDiffusionControlNetPipeline, compared step by step",
  async run({ dir, caseJson, signal }) {
    const file = join(dir, "case.json");
    const fixture = typeof caseJson["fixture"] === "string" ? caseJson["fixture"] : "pipeline_controlnet";
    const call = record(caseJson["call"], file, "call");
    const scheduler = await fixtureScheduler({ dir, caseJson });
    const modelDir = caseJson["model_dir"];
    if (typeof modelDir !== "string") throw new ConfigError(file, "model_dir", "a path", modelDir);
    const tolerance = Number(record(caseJson["tolerance"], file, "tolerance")["suggested_max_abs_err"]);
    const inputs = await readSafetensors(join(dir, fileName(caseJson, "inputs_file", "inputs.safetensors")));
    const outputs = await readSafetensors(
      join(dir, fileName(caseJson, "outputs_file", "outputs.safetensors")),
    );
    const rows: ConformanceRow[] = [];

    const controlUint8 = inputs.get("control_image_uint8");
    const controlRef = inputs.get("control_image");
    const pipeline = await StableDiffusionPipeline.load(join(dir, modelDir), {
      useFolderControlNet: controlUint8 !== undefined || controlRef !== undefined,
    });
    try {
      // Size: the call's, else the control image's rounded down to the VAE factor (diffusers'
      // get_default_height_width). Control image: the uint8 picture resized as the pipeline's
      // control_image_processor does (PIL lanczos) and scaled to [0, 1], checked against the
      // pipeline's tensor.
      const picture0 = controlUint8 ? uint8Image(controlUint8) : undefined;
      const factor = pipeline.vaeScaleFactor;
      const fit = (n: number | undefined): number | undefined =>
        n === undefined ? undefined : n - (n % factor);
      const width = num(call, "width", fit(picture0?.width ?? controlRef?.shape[3]));
      const height = num(call, "height", fit(picture0?.height ?? controlRef?.shape[2]));
      const control = picture0
        ? imageToTensor(pillowResize(picture0, width, height, "lanczos"), "0,1")
        : controlRef
          ? toFloat32(controlRef)
          : undefined;
      if (controlUint8 && controlRef && control)
        rows.push(compareTensors(fixture, "inputs.control_image", control, controlRef, 0));
      const traced = new Map<string, HostTensor>();
      const latents = inputs.get("latents");
      const negative = call["negative_prompt"];
      const clipSkip = call["clip_skip"];
      const seed = callSeed(call);
      const imagesPerPrompt = call["num_images_per_prompt"];
      if (imagesPerPrompt !== undefined && imagesPerPrompt !== null && imagesPerPrompt !== 1) {
        return [
          ...rows,
          failedRow(
            fixture,
            "-",
            `num_images_per_prompt ${String(imagesPerPrompt)} is not supported (1 image per call)`,
          ),
        ];
      }
      const result = await pipeline.generate({
        prompt: String(call["prompt"] ?? ""),
        ...(typeof negative === "string" ? { negativePrompt: negative } : {}),
        width,
        height,
        numInferenceSteps: num(call, "num_inference_steps"),
        guidanceScale: num(call, "guidance_scale"),
        eta: num(call, "eta", 0),
        guessMode: call["guess_mode"] === true,
        ...(typeof clipSkip === "number" ? { clipSkip } : {}),
        ...(latents ? { latents: toFloat32(latents) } : {}),
        ...(seed === undefined ? {} : { seed }),
        scheduler: scheduler.className,
        schedulerConfig: record(scheduler.config, scheduler.source, "scheduler config"),
        controls: control
          ? [
              {
                image: control,
                scale: num(call, "controlnet_conditioning_scale", 1),
                guidanceStart: callNumber(call, file, "control_guidance_start", 0),
                guidanceEnd: callNumber(call, file, "control_guidance_end", 1),
              },
            ]
          : [],
        ...(signal ? { signal } : {}),
        trace: (name, value) => traced.set(name, value),
      });
      const [picture] = tensorToImages(result.image);
      if (picture)
        traced.set("image_uint8", tensor("uint8", [1, picture.height, picture.width, 3], picture.data));
      for (const [name, expected] of outputs) {
        const actual = traced.get(name);
        if (actual === undefined) {
          rows.push(failedRow(fixture, name, "not produced by the pipeline"));
          continue;
        }
        // uint8 pictures may differ by one level where a value sits on a rounding boundary (case.json note).
        const tol = expected.dtype === "uint8" ? 1 : expected.dtype === "int64" ? 0 : tolerance;
        rows.push(compareTensors(fixture, name, actual, expected, tol));
      }
    } finally {
      await pipeline.release();
    }
    return rows;
  },
};
