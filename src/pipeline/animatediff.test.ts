import { describe, expect, it } from "vitest";
import { CancelledError, InvalidArgumentError } from "../errors.js";
import { fromConfig } from "../schedulers/registry.js";
import { type HostTensor, tensor } from "../tensor.js";
import {
  type AnimateDiffComponents,
  type MotionUNet,
  type MotionUNetInputs,
  type VideoToVideoComponents,
  textToVideo,
  videoToVideo,
} from "./animatediff.js";
import type { ControlNet, ControlNetInputs } from "./types.js";

const C = 4;
const SIZE = 16; // pixels; latents 2x2
const EMBEDS = tensor(
  "float32",
  [1, 3, 4],
  Float32Array.from({ length: 12 }, (_, i) => i / 12),
);
const NEGATIVE = tensor("float32", [1, 3, 4]);

/** A frame-local fake motion UNet: noise = 0.1 * sample + 1e-4 * t (+ the mid residual's first value). */
function fakeUNet(maxFrames?: number): MotionUNet & { calls: MotionUNetInputs[] } {
  const calls: MotionUNetInputs[] = [];
  return {
    calls,
    ...(maxFrames === undefined ? {} : { maxFrames }),
    forward(inputs) {
      calls.push(inputs);
      const t = inputs.timestep.data[0] ?? 0;
      const extra = inputs.midBlockAdditionalResidual?.data[0] ?? 0;
      return Promise.resolve(
        tensor(
          "float32",
          inputs.sample.shape,
          inputs.sample.data.map((v) => 0.1 * v + 1e-4 * t + extra),
        ),
      );
    },
  };
}

/** Decoder: pixel (y, x) of channel c = latent (c, y/8, x/8); encoder: the reverse, std 1. */
const fakeVae: VideoToVideoComponents["vae"] = {
  scalingFactor: 0.18215,
  decode(z) {
    const [n = 0, , h = 0, w = 0] = z.shape;
    const out = new Float32Array(n * 3 * h * 8 * w * 8);
    for (let i = 0; i < out.length; i++) {
      const x = i % (w * 8);
      const y = Math.floor(i / (w * 8)) % (h * 8);
      const c = Math.floor(i / (w * 8 * h * 8)) % 3;
      const b = Math.floor(i / (3 * w * 8 * h * 8));
      out[i] = z.data[((b * C + c) * h + Math.floor(y / 8)) * w + Math.floor(x / 8)] ?? NaN;
    }
    return Promise.resolve(tensor("float32", [n, 3, h * 8, w * 8], out));
  },
  encode(image) {
    const [n = 0, , hh = 0, ww = 0] = image.shape;
    const h = hh / 8;
    const w = ww / 8;
    const mean = new Float32Array(n * C * h * w);
    for (let i = 0; i < mean.length; i++) {
      const x = i % w;
      const y = Math.floor(i / w) % h;
      const c = Math.floor(i / (w * h)) % C;
      const b = Math.floor(i / (C * w * h));
      mean[i] = image.data[((b * 3 + (c % 3)) * hh + y * 8) * ww + x * 8] ?? NaN;
    }
    const shape = [n, C, h, w];
    return Promise.resolve({ mean: tensor("float32", shape, mean), logvar: tensor("float32", shape) });
  },
};

function components(unet: MotionUNet): AnimateDiffComponents & VideoToVideoComponents {
  return {
    unet,
    vae: fakeVae,
    scheduler: fromConfig("ddim", { beta_schedule: "linear", timestep_spacing: "linspace" }),
    vaeScaleFactor: 8,
    latentChannels: C,
  };
}

const base = {
  promptEmbeds: EMBEDS,
  negativePromptEmbeds: NEGATIVE,
  numInferenceSteps: 3,
  guidanceScale: 7.5,
  seed: 3,
  width: SIZE,
  height: SIZE,
};

const withoutEmbeds = {
  negativePromptEmbeds: NEGATIVE,
  numInferenceSteps: 3,
  guidanceScale: 7.5,
  width: SIZE,
  height: SIZE,
};

describe("textToVideo", () => {
  it("runs a video longer than the UNet's window window by window (frame-local UNet: same result)", async () => {
    const plain = fakeUNet();
    const windowed = fakeUNet(4);
    const a = await textToVideo(components(plain), { ...base, numFrames: 10 });
    const traced = new Map<string, HostTensor>();
    const b = await textToVideo(components(windowed), {
      ...base,
      numFrames: 10,
      trace: (n, v) => traced.set(n, v),
    });
    expect(plain.calls.length).toBe(3);
    expect(windowed.calls.length).toBeGreaterThan(3 * 3);
    for (const call of windowed.calls) {
      expect(call.sample.shape).toEqual([2, C, 4, 2, 2]);
      expect(call.encoderHiddenStates.shape).toEqual([2, 3, 4]);
    }
    expect([...b.latents.data]).toEqual([...a.latents.data]);
    expect(b.frames.shape).toEqual([1, 10, 3, SIZE, SIZE]);
    expect(b.video.shape).toEqual([1, 3, 10, SIZE, SIZE]);
    expect(traced.get("rng.draw00")?.shape).toEqual([1, C, 10, 2, 2]);
    expect(traced.has("rng.draw01")).toBe(false);
    expect(traced.get("step02.noise_pred_text")?.shape).toEqual([1, C, 10, 2, 2]);
    expect(traced.get("vae_decode.input")?.shape).toEqual([10, C, 2, 2]);
  });

  it("a video within the context length is the plain path (one call per step with every frame)", async () => {
    const unet = fakeUNet(16);
    const out = await textToVideo(components(unet), {
      ...base,
      numFrames: 8,
      context: { schedule: "static", overlap: 2, fuse: "pyramid" },
    });
    expect(unet.calls.map((c) => c.sample.shape[2])).toEqual([8, 8, 8]);
    const plain = await textToVideo(components(fakeUNet()), { ...base, numFrames: 8 });
    expect([...out.frames.data]).toEqual([...plain.frames.data]);
  });

  it("feeds per-frame ControlNets the window's frames folded into the batch, with CFG halves", async () => {
    const unet = fakeUNet(4);
    const seen: ControlNetInputs[] = [];
    const controlnet: ControlNet = {
      forward(inputs) {
        seen.push(inputs);
        const n = inputs.sample.shape[0] ?? 0;
        const r = (c: number): HostTensor<"float32"> =>
          tensor("float32", [n, c, 1, 1], new Float32Array(n * c).fill(inputs.conditioningScale));
        return Promise.resolve({ downBlockResSamples: [r(8), r(8)], midBlockResSample: r(16) });
      },
    };
    const frames = 6;
    const control = tensor(
      "float32",
      [frames, 3, SIZE, SIZE],
      Float32Array.from({ length: frames * 3 * SIZE * SIZE }, (_, i) => Math.floor(i / (3 * SIZE * SIZE))),
    );
    await textToVideo(components(unet), {
      ...base,
      numFrames: frames,
      context: { schedule: "static", overlap: 2 },
      controls: [{ controlnet, frames: control, scale: 0.5, guidanceEnd: 0.5 }],
    });
    // static windows [0..3], [2..5] every step
    expect(seen.length).toBe(2 * 3);
    for (const [k, inputs] of seen.entries()) {
      const window = k % 2 === 0 ? [0, 1, 2, 3] : [2, 3, 4, 5];
      expect(inputs.sample.shape).toEqual([8, C, 2, 2]);
      expect(inputs.encoderHiddenStates.shape).toEqual([8, 3, 4]);
      expect([...inputs.encoderHiddenStates.data.slice(0, 12)]).toEqual([...NEGATIVE.data]);
      expect([...inputs.encoderHiddenStates.data.slice(4 * 12, 5 * 12)]).toEqual([...EMBEDS.data]);
      expect(inputs.timestep.shape).toEqual([8]);
      const condFrames = Array.from({ length: 8 }, (_, i) => inputs.controlnetCond.data[i * 3 * SIZE * SIZE]);
      expect(condFrames).toEqual([...window, ...window]);
      // guidanceEnd 0.5 of 3 steps: only the first step keeps the net
      expect(inputs.conditioningScale).toBe(k < 2 ? 0.5 : 0);
    }
    const call = unet.calls[0];
    expect(call?.downBlockAdditionalResiduals?.map((r) => r.shape)).toEqual([
      [8, 8, 1, 1],
      [8, 8, 1, 1],
    ]);
    expect(call?.midBlockAdditionalResidual?.shape).toEqual([8, 16, 1, 1]);
  });

  it("reports progress, stops on abort and checks its inputs", async () => {
    const events: string[] = [];
    await textToVideo(components(fakeUNet()), {
      ...base,
      numFrames: 2,
      onProgress: (e) => events.push(e.status),
    });
    expect(events).toEqual(["start", "progress", "progress", "progress", "done"]);
    const controller = new AbortController();
    controller.abort();
    await expect(
      textToVideo(components(fakeUNet()), { ...base, numFrames: 2, signal: controller.signal }),
    ).rejects.toThrow(CancelledError);
    await expect(textToVideo(components(fakeUNet()), { ...base, numFrames: 2, width: 12 })).rejects.toThrow(
      InvalidArgumentError,
    );
    await expect(
      textToVideo(components(fakeUNet()), {
        ...withoutEmbeds,
        prompt: "a car",
        numFrames: 2,
      }),
    ).rejects.toThrow("a tokenizer and text encoder");
    await expect(
      textToVideo(components(fakeUNet(4)), { ...base, numFrames: 6, context: { contextLength: 8 } }),
    ).rejects.toThrow("at most 4 (the UNet's maxFrames)");
    await expect(
      textToVideo(components(fakeUNet()), {
        ...base,
        numFrames: 2,
        controls: [
          {
            controlnet: { forward: () => Promise.reject(new Error("unused")) },
            frames: tensor("float32", [3, 3, SIZE, SIZE]),
          },
        ],
      }),
    ).rejects.toThrow("one control image per frame");
  });
});

describe("videoToVideo", () => {
  const video = tensor(
    "float32",
    [3, 3, SIZE, SIZE],
    Float32Array.from({ length: 3 * 3 * SIZE * SIZE }, (_, i) => Math.sin(i) * 0.9),
  );

  it("draws the posterior sample, then frame-major noise, and runs the last steps", async () => {
    const traced = new Map<string, HostTensor>();
    const unet = fakeUNet();
    const out = await videoToVideo(components(unet), {
      ...base,
      numInferenceSteps: 5,
      video,
      strength: 0.6,
      trace: (n, v) => traced.set(n, v),
    });
    expect(traced.get("rng.draw00")?.shape).toEqual([3, C, 2, 2]);
    expect(traced.get("rng.draw01")?.shape).toEqual([1, 3, C, 2, 2]);
    expect([...(traced.get("add_noise.timestep")?.data ?? [])]).toEqual([500]);
    expect(unet.calls.map((c) => c.timestep.data[0])).toEqual([500, 250, 0]);
    expect(traced.get("initial_latents")?.shape).toEqual([1, C, 3, 2, 2]);
    expect(out.frames.shape).toEqual([1, 3, 3, SIZE, SIZE]);
    await expect(
      videoToVideo(components(fakeUNet()), { ...base, numInferenceSteps: 5, video, strength: 0.1 }),
    ).rejects.toThrow("strength");
  });

  it("denoises given latents as they are, from the strength's first timestep, without the video", async () => {
    const traced = new Map<string, HostTensor>();
    const fromVideo = await videoToVideo(components(fakeUNet()), {
      ...base,
      numInferenceSteps: 5,
      video,
      strength: 0.6,
      trace: (n, v) => traced.set(n, v),
    });
    const initial = traced.get("initial_latents") as HostTensor<"float32">;
    const unet = fakeUNet();
    const given = new Map<string, HostTensor>();
    const fromLatents = await videoToVideo(components(unet), {
      ...base,
      numInferenceSteps: 5,
      latents: initial,
      strength: 0.6,
      trace: (n, v) => given.set(n, v),
    });
    // No VAE encode and no draws before the loop; the same steps on the same latents (eta 0).
    expect(given.has("rng.draw00")).toBe(false);
    expect(given.has("vae_encode.mean")).toBe(false);
    expect(unet.calls.map((c) => c.timestep.data[0])).toEqual([500, 250, 0]);
    expect([...fromLatents.latents.data]).toEqual([...fromVideo.latents.data]);
    await expect(
      videoToVideo(components(fakeUNet()), {
        ...base,
        numInferenceSteps: 5,
        latents: tensor("float32", [1, C, 3, 2], new Float32Array(C * 6)),
      }),
    ).rejects.toThrow("latents");
    await expect(videoToVideo(components(fakeUNet()), { ...base, numInferenceSteps: 5 })).rejects.toThrow(
      "video",
    );
  });
});
