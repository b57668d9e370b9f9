/**
 * The video pipeline kinds with settings a held-out fixture may change: the other `output_type`s,
 * ControlNet guess mode, and call arguments a runner cannot honour (refused by name). Each case
 * copies a public fixture, sets `call.output_type`, and puts in place of the pipeline's output what
 * diffusers 0.26.3 returns for that type, made from the reference's own tensors (never from ours):
 * "latent" returns the final latents, "np" the frames channels-last in [0, 1].
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runConformance } from "../src/conformance/run.js";
import { type HostTensor, tensor, toFloat32 } from "../src/tensor.js";
import { readSafetensors, writeSafetensors } from "../src/weights/safetensors.js";
import { GOLDEN } from "./helpers/golden-fixture.js";

type Outputs = Map<string, HostTensor>;

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "sf-output-types-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/**
 * A copy of fixture `name` with `call.output_type` set and its outputs rewritten by `edit`; weights
 * stay where the public fixture has them.
 */
async function variant(name: string, outputType: string, edit: (outputs: Outputs) => void): Promise<string> {
  return variantWith(name, outputType, { output_type: outputType }, edit);
}

/** A copy of fixture `name` (folder suffix `tag`) with `settings` over its call and `edit` on its outputs. */
async function variantWith(
  name: string,
  tag: string,
  settings: Record<string, unknown>,
  edit: (outputs: Outputs) => void = () => undefined,
): Promise<string> {
  const source = join(GOLDEN, name);
  const dir = join(root, `${name}-${tag}`);
  await cp(source, dir, { recursive: true });
  const caseJson = JSON.parse(await readFile(join(source, "case.json"), "utf8")) as {
    call: Record<string, unknown>;
    weights: Record<string, string>;
    outputs_file: { tensors: Record<string, unknown> };
  };
  for (const [role, rel] of Object.entries(caseJson.weights)) caseJson.weights[role] = join(source, rel);
  Object.assign(caseJson.call, settings);
  const outputs = await readSafetensors(join(source, "outputs.safetensors"));
  edit(outputs);
  caseJson.outputs_file.tensors = Object.fromEntries(
    [...outputs].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape }]),
  );
  await writeFile(join(dir, "case.json"), JSON.stringify(caseJson));
  await writeSafetensors(join(dir, "outputs.safetensors"), outputs);
  return dir;
}

function take(outputs: Outputs, name: string): HostTensor<"float32"> {
  const t = outputs.get(name);
  if (t === undefined) throw new Error(`the public fixture has no ${name}`);
  return toFloat32(t);
}

/** The decoder's tensors are not recorded when the pipeline does not decode. */
function dropDecoder(outputs: Outputs): void {
  for (const name of [...outputs.keys()])
    if (name.startsWith("vae_decode.") || name === "image_uint8") outputs.delete(name);
}

/** [..., C, H, W] with `lead` leading axes -> [..., H, W, C]. */
function channelsLast(
  t: HostTensor<"float32">,
  map: (v: number) => number = (v) => v,
): HostTensor<"float32"> {
  const [c = 0, h = 0, w = 0] = t.shape.slice(-3);
  const n = t.data.length / (c * h * w);
  const out = new Float32Array(t.data.length);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < h * w; i++)
        out[(b * h * w + i) * c + ch] = map(t.data[(b * c + ch) * h * w + i] ?? 0);
  return tensor("float32", [...t.shape.slice(0, -3), h, w, c], out);
}

/** [1, C, F, H, W] -> [1, F, C, H, W]. */
function framesFirst(t: HostTensor<"float32">): HostTensor<"float32"> {
  const [b = 1, c = 0, f = 0, h = 0, w = 0] = t.shape;
  const out = new Float32Array(t.data.length);
  const hw = h * w;
  for (let ch = 0; ch < c; ch++)
    for (let k = 0; k < f; k++)
      out.set(t.data.subarray((ch * f + k) * hw, (ch * f + k + 1) * hw), (k * c + ch) * hw);
  return tensor("float32", [b, f, c, h, w], out);
}

/** diffusers' VaeImageProcessor.denormalize: (x / 2 + 0.5).clamp(0, 1) in float32. */
const denormalize = (v: number): number => Math.min(Math.max(Math.fround(Math.fround(v / 2) + 0.5), 0), 1);

async function failures(dir: string): Promise<[string, string | undefined][]> {
  const rows = (await runConformance([dir])).flatMap((r) => r.rows);
  expect(rows.length).toBeGreaterThan(0);
  return rows.filter((r) => !r.pass).map((r) => [r.tensor, r.note]);
}

describe("video pipeline kinds with other settings (held-out fixtures)", () => {
  it("pipeline_animatediff: 'np' gives [1, F, H, W, 3], 'latent' the final latents", async () => {
    const np = await variant("pipeline_animatediff", "np", (o) => {
      o.set("frames", channelsLast(take(o, "frames")));
    });
    expect(await failures(np)).toEqual([]);
    const latent = await variant("pipeline_animatediff", "latent", (o) => {
      o.set("frames", take(o, "step03.latents_out"));
      dropDecoder(o);
    });
    expect(await failures(latent)).toEqual([]);
  }, 120_000);

  it("pipeline_animatediff_v2v: 'np' gives the denormalised frames channels-last, 'latent' the latents", async () => {
    const np = await variant("pipeline_animatediff_v2v", "np", (o) => {
      o.set("video", channelsLast(framesFirst(take(o, "video")), denormalize));
    });
    expect(await failures(np)).toEqual([]);
    const latent = await variant("pipeline_animatediff_v2v", "latent", (o) => {
      o.set("video", take(o, "step02.latents_out"));
      dropDecoder(o);
    });
    expect(await failures(latent)).toEqual([]);
    // a type that gives no tensor fails by name
    const pil = await variant("pipeline_animatediff_v2v", "pil", () => undefined);
    expect((await runConformance([pil])).flatMap((r) => r.rows).filter((r) => !r.pass)[0]?.note).toContain(
      "output_type pil",
    );
  }, 120_000);

  it("pipeline_t2v_zero and pipeline_video_controlnet: 'latent' returns the final latents", async () => {
    const t2vz = await variant("pipeline_t2v_zero", "latent", (o) => {
      o.set("frames", take(o, "stage.x_1k_0"));
      dropDecoder(o);
    });
    expect(await failures(t2vz)).toEqual([]);
    const controlnet = await variant("pipeline_video_controlnet", "latent", (o) => {
      o.set("image", take(o, "step03.latents_out"));
      dropDecoder(o);
    });
    expect(await failures(controlnet)).toEqual([]);
  }, 120_000);

  it("pipeline_video_controlnet: guess_mode is read; settings the runner cannot honour fail by name", async () => {
    // guess mode changes the ControlNet's batch and scales: the public (non-guess) outputs must not match
    const guess = await variantWith("pipeline_video_controlnet", "guess", { guess_mode: true });
    const rows = (await runConformance([guess])).flatMap((r) => r.rows);
    expect(rows.find((r) => r.tensor === "-")).toBeUndefined();
    expect(rows.find((r) => r.tensor === "step03.latents_out")?.pass).toBe(false);
    for (const [key, value] of [
      ["num_images_per_prompt", 2],
      ["timesteps", [900, 500, 100]],
      ["cross_attention_kwargs", { scale: 0.5 }],
    ] as const) {
      const dir = await variantWith("pipeline_video_controlnet", key, { [key]: value });
      expect(await failures(dir)).toEqual([
        [`call.${key}`, `${JSON.stringify(value)} is not supported by this runner`],
      ]);
    }
  }, 120_000);
});
