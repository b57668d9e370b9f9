import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runConformance } from "../src/conformance/run.js";
import { CancelledError, InvalidArgumentError, UnsupportedError } from "../src/errors.js";
import {
  type TextToVideoZeroComponents,
  ddpmForward,
  ddpmForwardCoefficients,
  gridSampleNearestReflection,
  motionFieldGrid,
  textToVideoZero,
  warpLatentsByMotionField,
} from "../src/pipeline/text2video-zero.js";
import { classifierFreeGuidance } from "../src/pipeline/guidance.js";
import type { UNetInputs } from "../src/pipeline/types.js";
import { fromConfig } from "../src/schedulers/registry.js";
import { type HostTensor, tensor } from "../src/tensor.js";
import { GOLDEN, openGoldenFixture } from "./helpers/golden-fixture.js";
import { expectError } from "./helpers/run-graph.js";

const FIXTURE = join(GOLDEN, "pipeline_t2v_zero");

/** [1, channels, h, w] with value 100 * channel + 10 * row + column (each pixel tells where it came from). */
function ramp(channels: number, h: number, w: number): HostTensor<"float32"> {
  const data = new Float32Array(channels * h * w);
  for (let c = 0; c < channels; c++)
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[(c * h + y) * w + x] = 100 * c + 10 * y + x;
  return tensor("float32", [1, channels, h, w], data);
}

/** Row `y` of channel `c` of a [1, C, h, w] tensor. */
function row(t: HostTensor<"float32">, c: number, y: number): number[] {
  const [, , h = 0, w = 0] = t.shape;
  return Array.from(t.data.slice((c * h + y) * w, (c * h + y + 1) * w));
}

describe("warpLatentsByMotionField (diffusers create_motion_field_and_warp_latents)", () => {
  const x = ramp(2, 16, 16);

  it("a zero motion field, or frame id 0, is the identity", () => {
    expect(Array.from(warpLatentsByMotionField(x, [3], { strengthX: 0, strengthY: 0 }).warped.data)).toEqual(
      Array.from(x.data),
    );
    expect(
      Array.from(warpLatentsByMotionField(x, [0], { strengthX: 24, strengthY: -20 }).warped.data),
    ).toEqual(Array.from(x.data));
  });

  it("builds the grid on the 512 flow grid: x at column j is (32 j + 15.5 + flow) / 256 - 1 for 16 latent pixels", () => {
    const grid = motionFieldGrid([0, 2], 16, 16, { strengthX: 12, strengthY: -8 });
    expect(grid.shape).toEqual([2, 16, 16, 2]);
    const at = (k: number, i: number, j: number, axis: number): number =>
      grid.data[((k * 16 + i) * 16 + j) * 2 + axis] ?? NaN;
    expect(at(0, 0, 0, 0)).toBe(15.5 / 256 - 1);
    expect(at(0, 5, 7, 0)).toBe((32 * 7 + 15.5) / 256 - 1);
    expect(at(0, 5, 7, 1)).toBe((32 * 5 + 15.5) / 256 - 1);
    // frame 2: flow (24, -16) pixels of the 512 grid
    expect(at(1, 5, 7, 0)).toBeCloseTo((32 * 7 + 15.5 + 24) / 256 - 1, 6);
    expect(at(1, 5, 7, 1)).toBeCloseTo((32 * 5 + 15.5 - 16) / 256 - 1, 6);
  });

  it("a one-latent-pixel shift (strength 32 at 16 latent pixels) moves values by one column towards -x", () => {
    const { warped } = warpLatentsByMotionField(x, [1], { strengthX: 32, strengthY: 0 });
    for (const c of [0, 1]) {
      for (const y of [0, 9, 15]) {
        const src = row(x, c, y);
        // destination j reads source j + 31.5 / 32; the last column reflects about 15.5 back onto 15
        expect(row(warped, c, y)).toEqual([...src.slice(1), src[15]]);
      }
    }
  });

  it("moves rows with strengthY and frame ids multiply the strength", () => {
    const { warped } = warpLatentsByMotionField(x, [2], { strengthX: 0, strengthY: 16 });
    // 2 * 16 = 32 flow pixels = one latent row
    for (let y = 0; y < 15; y++) expect(row(warped, 1, y)).toEqual(row(x, 1, y + 1));
    expect(row(warped, 1, 15)).toEqual(row(x, 1, 15));
  });

  it("reflects about the border (-0.5) for shifts towards +x", () => {
    // strength -64: destination j reads j - 2 - 0.5 / 32; j = 0 -> -2.016 reflects to 1.016 -> 1, j = 1 -> 0
    const { warped } = warpLatentsByMotionField(x, [1], { strengthX: -64, strengthY: 0 });
    const src = row(x, 0, 4);
    expect(row(warped, 0, 4)).toEqual([src[1], src[0], ...src.slice(0, 14)]);
  });

  it("keeps the half-pixel term: at 2 latent pixels, strength 128.25 moves nothing and 128.75 moves one", () => {
    // One latent pixel = 256 flow pixels; destination j reads j + (strength - 0.5) / 256. 128.25 gives
    // 0.499 (rounds to 0; dropping the -0.5 would give 0.501 and move), 128.75 gives 0.501.
    const small = ramp(1, 2, 2);
    const warp = (strengthX: number): number[] =>
      Array.from(warpLatentsByMotionField(small, [1], { strengthX, strengthY: 0 }).warped.data);
    expect(warp(128.25)).toEqual([0, 1, 10, 11]);
    expect(warp(128.75)).toEqual([1, 1, 11, 11]);
  });

  it("rejects a frame id count that differs from the batch and a grid of the wrong shape", async () => {
    await expectError(
      () => warpLatentsByMotionField(x, [1, 2], { strengthX: 1, strengthY: 1 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "frameIds",
    );
    await expectError(
      () => gridSampleNearestReflection(x, tensor("float32", [1, 4, 4, 3])),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "grid",
    );
  });
});

describe("ddpmForward (diffusers TextToVideoZeroPipeline.forward_loop)", () => {
  const betas = new Float32Array([0.1, 0.2, 0.3, 0.4, 0.5]);

  it("alpha_vec = prod(alphas[t0 : t1]): the slice starts at t0 and stops before t1", () => {
    const c = ddpmForwardCoefficients(betas, 1, 3);
    // alphas = 0.9, 0.8, 0.7, 0.6, 0.5 -> alphas[1] * alphas[2] = 0.8 * 0.7 (not 0.7 * 0.6)
    expect(c.alphaVec).toBeCloseTo(0.56, 6);
    expect(c.sampleScale).toBeCloseTo(Math.sqrt(0.56), 6);
    expect(c.noiseScale).toBeCloseTo(Math.sqrt(0.44), 6);
    expect(ddpmForwardCoefficients(betas, 0, 5).alphaVec).toBeCloseTo(0.9 * 0.8 * 0.7 * 0.6 * 0.5, 6);
  });

  it("x_t1 = sqrt(alpha_vec) x_t0 + sqrt(1 - alpha_vec) eps", () => {
    const c = ddpmForwardCoefficients(betas, 2, 4); // 0.7 * 0.6 = 0.42
    const x = tensor("float32", [1, 1, 1, 2], new Float32Array([1, -2]));
    const eps = tensor("float32", [1, 1, 1, 2], new Float32Array([0.5, 3]));
    const out = ddpmForward(x, eps, c);
    expect(out.data[0]).toBeCloseTo(Math.sqrt(0.42) * 1 + Math.sqrt(0.58) * 0.5, 6);
    expect(out.data[1]).toBeCloseTo(Math.sqrt(0.42) * -2 + Math.sqrt(0.58) * 3, 6);
  });

  it("rejects t1 <= t0 and timesteps outside the schedule", async () => {
    for (const [t0, t1] of [
      [3, 3],
      [2, 6],
      [-1, 2],
    ] as const) {
      await expectError(
        () => ddpmForwardCoefficients(betas, t0, t1),
        InvalidArgumentError,
        "E_INVALID_ARGUMENT",
        "t0, t1",
      );
    }
  });
});

/** Components whose UNet predicts zeros and records its calls; a VAE that returns zeros. */
function fakeComponents(scheduler = "DDIMScheduler"): {
  components: TextToVideoZeroComponents;
  calls: UNetInputs[];
} {
  const calls: UNetInputs[] = [];
  const components: TextToVideoZeroComponents = {
    unet: {
      forward: (inputs) => {
        calls.push(inputs);
        return Promise.resolve(tensor("float32", inputs.sample.shape));
      },
    },
    vae: {
      scalingFactor: 0.18215,
      decode: (z) => Promise.resolve(tensor("float32", [z.shape[0] ?? 0, 3, 32, 32])),
    },
    scheduler: fromConfig(scheduler, { steps_offset: 1 }),
    vaeScaleFactor: 2,
    latentChannels: 4,
  };
  return { components, calls };
}

const embeds = (value: number): HostTensor<"float32"> =>
  tensor("float32", [1, 3, 2], new Float32Array(6).fill(value));

const baseOptions = {
  promptEmbeds: embeds(1),
  negativePromptEmbeds: embeds(-1),
  videoLength: 3,
  width: 32,
  height: 32,
  numInferenceSteps: 6,
  t0: 2,
  t1: 4,
  seed: 0,
};

describe("textToVideoZero", () => {
  it("runs the three passes with the CFG batch per frame, reporting progress", async () => {
    const { components, calls } = fakeComponents();
    const events: string[] = [];
    const result = await textToVideoZero(components, {
      ...baseOptions,
      onProgress: (e) => events.push(e.status === "progress" ? `${e.done}/${e.total}` : e.status),
    });
    // pass 1: 6 - 4 - 1 = 1 step, pass 2: t1 - t0 = 2, pass 3: t1 + 1 = 5
    expect(calls.map((c) => c.sample.shape[0])).toEqual([2, 2, 2, 6, 6, 6, 6, 6]);
    expect(calls.map((c) => c.timestep.data[0])).toEqual([831, 665, 499, 665, 499, 333, 167, 1]);
    // pass 3 embeddings: [uncond x F, cond x F]
    const pass3 = calls[3]?.encoderHiddenStates;
    expect(Array.from({ length: 6 }, (_, b) => pass3?.data[b * 6])).toEqual([-1, -1, -1, 1, 1, 1]);
    expect(events).toEqual(["start", ...Array.from({ length: 8 }, (_, i) => `${i + 1}/8`), "done"]);
    expect(result.frames.shape).toEqual([3, 3, 32, 32]);
    expect(result.latents.shape).toEqual([3, 4, 16, 16]);
  });

  it("stops when its AbortSignal fires", async () => {
    const { components } = fakeComponents();
    const controller = new AbortController();
    controller.abort();
    await expectError(
      () => textToVideoZero(components, { ...baseOptions, signal: controller.signal }),
      CancelledError,
      "E_CANCELLED",
      "cancelled",
    );
  });

  it("refuses t1 past the timesteps, guidance <= 1 and schedulers with fractional timesteps", async () => {
    const { components } = fakeComponents();
    await expectError(
      () => textToVideoZero(components, { ...baseOptions, t1: 6 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "t0, t1",
    );
    await expectError(
      () => textToVideoZero(components, { ...baseOptions, guidanceScale: 1 }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "guidanceScale",
    );
    for (const name of [
      "EulerDiscreteScheduler",
      "EulerAncestralDiscreteScheduler",
      "LMSDiscreteScheduler",
    ]) {
      await expectError(
        () => textToVideoZero(fakeComponents(name).components, baseOptions),
        UnsupportedError,
        "E_UNSUPPORTED",
        name,
      );
    }
  });

  // diffusers deep-copies the scheduler after pass 1 and gives the copy to pass 3. A multistep
  // scheduler that went on through pass 2 holds two more model outputs (and a later step index), so
  // pass 3 differs unless it restarts from the state after pass 1.
  for (const name of ["DPMSolverMultistepScheduler", "UniPCMultistepScheduler", "PNDMScheduler"]) {
    it(`runs pass 3 with ${name} as it was after pass 1 (diffusers' scheduler copy)`, async () => {
      const { components, calls } = fakeComponents(name);
      // a prediction that depends on the sample, the timestep and the embedding (uncond != cond)
      const unet: TextToVideoZeroComponents["unet"] = {
        forward: (inputs) => {
          calls.push(inputs);
          const [batch = 1] = inputs.sample.shape;
          const per = inputs.sample.data.length / batch;
          const out = new Float32Array(inputs.sample.data.length);
          for (let b = 0; b < batch; b++) {
            const e = inputs.encoderHiddenStates.data[b * 6] ?? 0;
            const t = inputs.timestep.data[b] ?? 0;
            for (let i = 0; i < per; i++)
              out[b * per + i] =
                0.3 * (inputs.sample.data[b * per + i] ?? 0) + 0.1 * e + t / 2000 + (i % 7) / 50;
          }
          return Promise.resolve(tensor("float32", inputs.sample.shape, out));
        },
      };
      const traced = new Map<string, HostTensor>();
      const options = { ...baseOptions, numInferenceSteps: 8, t0: 2, t1: 4, guidanceScale: 3 };
      await textToVideoZero(
        { ...components, unet },
        { ...options, trace: (key, value) => traced.set(key, value) },
      );
      const get = (key: string): HostTensor<"float32"> => {
        const value = traced.get(key);
        if (value?.dtype !== "float32") throw new Error(`no ${key} traced`);
        return value as HostTensor<"float32">;
      };
      const tag = (pass: number, i: number): string => `pass${pass}.step${String(i).padStart(2, "0")}`;
      const guided = (tag: string): HostTensor<"float32"> => {
        const u = get(`${tag}.noise_pred_uncond`);
        const c = get(`${tag}.noise_pred_text`);
        return classifierFreeGuidance(u, c, 3);
      };
      // The reference, one frame at a time: a fresh scheduler stepped through pass 1 (frame 0), then
      // through pass 3 on frame k alone. torch broadcasts the one-frame history of pass 1 against the
      // F frames of pass 3, so frame k of the batch sees exactly what this one-frame run sees.
      const frame = (x: HostTensor<"float32">, k: number): HostTensor<"float32"> => {
        const per = x.data.length / (x.shape[0] ?? 1);
        return tensor("float32", [1, ...x.shape.slice(1)], x.data.slice(k * per, (k + 1) * per));
      };
      const ts = fromConfig(name, { steps_offset: 1 });
      ts.setTimesteps(8);
      const pass1 = ts.timesteps.slice(0, ts.timesteps.length - 5);
      const pass3 = ts.timesteps.slice(ts.timesteps.length - 5);
      for (let k = 0; k < 3; k++) {
        const reference = fromConfig(name, { steps_offset: 1 });
        reference.setTimesteps(8);
        let x = get("initial_latents");
        for (const [i, t] of pass1.entries()) x = reference.step(guided(tag(1, i)), t, x).prevSample;
        expect(Array.from(x.data)).toEqual(Array.from(get("stage.x_1_t1").data));
        x = frame(get("stage.x_1k_t1"), k);
        for (const [i, t] of pass3.entries()) {
          x = reference.step(frame(guided(tag(3, i)), k), t, x).prevSample;
          const ours = frame(get(`${tag(3, i)}.latents_out`), k);
          expect(Array.from(ours.data), `frame ${k}, pass 3 step ${i}`).toEqual(Array.from(x.data));
        }
      }
    });
  }
});

describe("pipeline_t2v_zero golden fixture (diffusers TextToVideoZeroPipeline)", () => {
  it("passes conformance: every draw, pass step, warp, DDPM forward and decoded frame", async () => {
    const { outputs } = await openGoldenFixture(FIXTURE);
    const results = await runConformance([FIXTURE]);
    const rows = results.flatMap((r) => r.rows);
    for (const r of rows) console.log(`${r.tensor}: max abs err ${r.maxAbsError.toExponential(2)}`);
    expect(rows.map((r) => r.tensor).sort()).toEqual([...outputs.keys()].sort());
    expect(rows.filter((r) => !r.pass)).toEqual([]);
    // the seeded generator is bit-exact, so every draw (and the grid) matches exactly
    for (const r of rows.filter((r) => r.tensor.startsWith("rng.") || r.tensor === "warp.grid"))
      expect(r.maxAbsError, r.tensor).toBe(0);
  });
});
