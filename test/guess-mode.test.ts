/**
 * ControlNet guess mode through StableDiffusionPipeline (issue 13, bug 2), as diffusers 0.26.3 runs it:
 * the net sees only the conditional half of the CFG batch, the unconditional half gets zero residuals,
 * residual i is scaled by torch.logspace(-1, 0, n + 1)[i] (the mid block's by the last, 1.0), and a
 * net whose config has global_pool_conditions switches guess mode on and averages its residuals
 * spatially. The expectations are built by hand from plain ControlNet runs (no guess mode, scale 1)
 * on the inputs the pipeline traced, never from the pipeline's own residuals.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readImageFile } from "../src/control/png.js";
import { ControlNetModel, type ControlNetModelRunner } from "../src/models/controlnet/index.js";
import { chunkBatch } from "../src/pipeline/guidance.js";
import { imageToTensor } from "../src/pipeline/images.js";
import { StableDiffusionPipeline } from "../src/pipeline/stable-diffusion.js";
import type { HostTensor } from "../src/tensor.js";

const TINY = "test/fixtures/golden/tiny-sd";
const CONTROL = "test/fixtures/golden/pipeline_controlnet/control_image.png";
/** tiny-sd's ControlNet has 6 down residuals + the mid block: torch.logspace(-1, 0, 7) = 10^(-1 + i/6). */
const LOGSPACE_7 = Array.from({ length: 7 }, (_, i) => 10 ** (-1 + i / 6));
const SCALE = 0.5;

type Traces = Map<string, HostTensor>;

async function generate(sd: StableDiffusionPipeline, guessMode?: boolean): Promise<Traces> {
  const control = imageToTensor(await readImageFile(CONTROL), "0,1");
  const traces: Traces = new Map();
  await sd.generate({
    prompt: "a photo of an astronaut riding a horse on mars",
    negativePrompt: "blurry",
    width: 32,
    height: 32,
    numInferenceSteps: 2,
    guidanceScale: 7.5,
    seed: 1,
    scheduler: "ddim",
    ...(guessMode === undefined ? {} : { guessMode }),
    controls: [{ image: control, scale: SCALE }],
    trace: (name, t) => traces.set(name, t),
  });
  return traces;
}

function get(traces: Traces, name: string): HostTensor<"float32"> {
  const t = traces.get(name);
  if (t?.dtype !== "float32") throw new Error(`no float32 trace ${name}`);
  return t as HostTensor<"float32">;
}

/** The residuals of the plain (no guess mode) net at scale 1 on the conditional half of step 0. */
async function rawCondResiduals(net: ControlNetModelRunner, traces: Traces) {
  const [, condInput] = chunkBatch(get(traces, "step00.latent_model_input"), 2);
  const [, condEmbeds] = chunkBatch(get(traces, "prompt_embeds"), 2);
  const t = get(traces, "step00.timestep").data[0] ?? 0;
  return net.forward({
    sample: condInput as HostTensor<"float32">,
    timestep: t,
    encoderHiddenStates: condEmbeds as HostTensor<"float32">,
    controlnetCond: imageToTensor(await readImageFile(CONTROL), "0,1"),
    conditioningScale: 1,
  });
}

/** Largest |a - b| / max(1, |b|). */
function worst(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let w = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < b.length; i++) {
    const ref = b[i] ?? 0;
    w = Math.max(w, Math.abs((a[i] ?? 0) - ref) / Math.max(1, Math.abs(ref)));
  }
  return w;
}

describe("ControlNet guess mode in StableDiffusionPipeline", () => {
  let dir: string;
  let plain: ControlNetModelRunner;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sf-guess-"));
    plain = await ControlNetModel.load(`${TINY}/controlnet`);
  });
  afterAll(async () => {
    await plain.release();
    await rm(dir, { recursive: true, force: true });
  });

  it("zeros the unconditional half and scales residual i by logspace(-1, 0, 7)[i] times the scale", async () => {
    const sd = await StableDiffusionPipeline.load(TINY, {
      controlnets: [`${TINY}/controlnet`],
      guessMode: true,
    });
    try {
      const traces = await generate(sd);
      const raw = await rawCondResiduals(plain, traces);
      const residual = (j: number): HostTensor<"float32"> =>
        get(
          traces,
          j < 6 ? `step00.controlnet.down_block_res_samples.${j}` : "step00.controlnet.mid_block_res_sample",
        );
      for (let j = 0; j < 7; j++) {
        const [uncond, cond] = chunkBatch(residual(j), 2) as [HostTensor<"float32">, HostTensor<"float32">];
        expect(uncond.data.every((x) => x === 0)).toBe(true);
        const r = j < 6 ? raw.downBlockResSamples[j] : raw.midBlockResSample;
        const expected = Array.from(r?.data ?? [], (x) => x * (LOGSPACE_7[j] ?? 0) * SCALE);
        const err = worst(cond.data, expected);
        expect(err, `residual ${j}: max rel error ${err}`).toBeLessThan(1e-5);
      }
      // Asking for plain mode on the same pipeline builds the plain nets: both halves controlled, scale only.
      const off = await generate(sd, false);
      const [uncondOff, condOff] = chunkBatch(get(off, "step00.controlnet.mid_block_res_sample"), 2);
      expect(uncondOff?.data.some((x) => x !== 0)).toBe(true);
      const rawOff = await rawCondResiduals(plain, off);
      const expectedOff = Array.from(rawOff.midBlockResSample.data, (x) => x * SCALE);
      expect(worst(condOff?.data ?? [], expectedOff)).toBeLessThan(1e-5);
    } finally {
      await sd.release();
    }
  });

  it("global_pool_conditions switches guess mode on and averages the residuals spatially", async () => {
    const pooledDir = join(dir, "controlnet-pooled");
    await cp(`${TINY}/controlnet`, pooledDir, { recursive: true });
    const config = JSON.parse(await readFile(join(pooledDir, "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    await writeFile(
      join(pooledDir, "config.json"),
      JSON.stringify({ ...config, global_pool_conditions: true }),
    );
    const sd = await StableDiffusionPipeline.load(TINY, { controlnets: [pooledDir] });
    try {
      const traces = await generate(sd); // no guessMode asked for
      const raw = await rawCondResiduals(plain, traces);
      for (let j = 0; j < 7; j++) {
        const name =
          j < 6 ? `step00.controlnet.down_block_res_samples.${j}` : "step00.controlnet.mid_block_res_sample";
        const [uncond, cond] = chunkBatch(get(traces, name), 2) as [
          HostTensor<"float32">,
          HostTensor<"float32">,
        ];
        expect(uncond.data.every((x) => x === 0)).toBe(true);
        const r = (j < 6 ? raw.downBlockResSamples[j] : raw.midBlockResSample) as HostTensor<"float32">;
        const [, c = 0, h = 0, w = 0] = r.shape;
        expect(cond.shape).toEqual(r.shape); // broadcast back to the skip's size, as the UNet adds it
        const expected = new Float64Array(c * h * w);
        for (let ch = 0; ch < c; ch++) {
          let sum = 0;
          for (let i = 0; i < h * w; i++) sum += r.data[ch * h * w + i] ?? 0;
          expected.fill((sum / (h * w)) * SCALE, ch * h * w, (ch + 1) * h * w); // no logspace: pooled nets
        }
        const err = worst(cond.data, expected);
        expect(err, `residual ${j}: max rel error ${err}`).toBeLessThan(1e-5);
      }
    } finally {
      await sd.release();
    }
  });
});
