import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { controlnetKind, fixtureScales, guessModeOf, scaleTag } from "../src/conformance/kinds/controlnet.js";
import { ConfigError, InvalidArgumentError } from "../src/errors.js";
import { readControlNetModelConfig, type ControlNetModelConfig } from "../src/models/controlnet/config.js";
import { ControlNetModel, guessModeScales } from "../src/models/controlnet/controlnet-model.js";
import { fitsUNet } from "../src/models/controlnet/fits-unet.js";
import { MultiControlNetModel, controlnetKeep } from "../src/models/controlnet/multi-controlnet.js";
import type { ControlNetModelRunner } from "../src/models/controlnet/runner.js";
import { readUNet2DConditionModelConfig } from "../src/models/unet/config.js";
import { safetensorsStore } from "../src/nn/weight-store.js";
import { type HostTensor, tensor, toFloat32 } from "../src/tensor.js";
import { openSafetensors } from "../src/weights/safetensors.js";
import { GOLDEN, expectOutputsPass, fixtureTensor, openGoldenFixture } from "./helpers/golden-fixture.js";
import { expectClose, expectError } from "./helpers/run-graph.js";

const dir = join(GOLDEN, "controlnet");
const cnDir = join(GOLDEN, "tiny-sd/controlnet");
const TOL = 1e-4;

let cacheDir = "";
let net: ControlNetModelRunner;
let config: ControlNetModelConfig;
let caseJson: Record<string, unknown>;
let inputs: Map<string, HostTensor>;
let outputs: Map<string, HostTensor>;
const get = (m: Map<string, HostTensor>, k: string): HostTensor<"float32"> => toFloat32(fixtureTensor(m, k));
const runInputs = (scale: number, cond = get(inputs, "controlnet_cond")) => ({
  sample: get(inputs, "sample"),
  timestep: tensor("float32", [2], Float32Array.of(500, 500)),
  encoderHiddenStates: get(inputs, "encoder_hidden_states"),
  controlnetCond: cond,
  conditioningScale: scale,
});
/** A ControlNet session over the tiny weights with config changes. */
async function loadVariant(
  changes: Partial<ControlNetModelConfig>,
  options: { guessMode?: boolean } = {},
): Promise<ControlNetModelRunner> {
  const store = safetensorsStore(await openSafetensors(join(cnDir, "diffusion_pytorch_model.safetensors")));
  return ControlNetModel.load({ config: { ...config, ...changes }, store }, options);
}

beforeAll(async () => {
  ({ caseJson, inputs, outputs } = await openGoldenFixture(dir));
  config = (await readControlNetModelConfig(join(cnDir, "config.json"))).config;
  cacheDir = await mkdtemp(join(tmpdir(), "sf-controlnet-"));
  net = await ControlNetModel.load(cnDir, { cacheDir });
});
afterAll(async () => {
  await net.release();
  await rm(cacheDir, { recursive: true, force: true });
});

describe("controlnet golden fixture (diffusers 0.26.3 ControlNetModel + UNet residuals)", () => {
  it("passes the controlnet conformance kind: residuals and UNet prediction per scale within 1e-4", async () => {
    const rows = await controlnetKind.run({ dir, caseJson });
    expectOutputsPass(rows, outputs, TOL);
    expect(fixtureScales("case.json", caseJson, [])).toEqual([1, 0.5]);
    expect([scaleTag(1), scaleTag(0.5)]).toEqual(["scale1", "scale0p5"]);
    expect(guessModeOf({ a: "controlnet(sample, t, guess_mode=True)" })).toBe(true);
    expect(guessModeOf(caseJson.calls as Record<string, string>)).toBe(false);
  });

  it("one session serves every conditioning scale", async () => {
    for (const [scale, tag] of [
      [1, "scale1"],
      [0.5, "scale0p5"],
    ] as const) {
      const out = await net.forward(runInputs(scale));
      expect(out.downBlockResSamples.length).toBe(6);
      out.downBlockResSamples.forEach((r, i) =>
        expectClose(r, get(outputs, `${tag}.down_block_res_samples.${i}`), { atol: TOL, rtol: 0 }),
      );
      expectClose(out.midBlockResSample, get(outputs, `${tag}.mid_block_res_sample`), { atol: TOL, rtol: 0 });
    }
  });

  it("MultiControlNetModel sums per-net scaled residuals (0.5 + 0.5 = scale 1; a 0 scale is skipped)", async () => {
    const multi = new MultiControlNetModel([net, net]);
    const base = {
      ...runInputs(0),
      controlnetCond: [get(inputs, "controlnet_cond"), get(inputs, "controlnet_cond")],
    };
    const halves = await multi.forward({ ...base, conditioningScale: [0.5, 0.5] });
    halves.downBlockResSamples.forEach((r, i) =>
      expectClose(r, get(outputs, `scale1.down_block_res_samples.${i}`), { atol: TOL, rtol: 0 }),
    );
    expectClose(halves.midBlockResSample, get(outputs, "scale1.mid_block_res_sample"), {
      atol: TOL,
      rtol: 0,
    });
    const one = await multi.forward({ ...base, conditioningScale: [0, 0.5] });
    expectClose(one.midBlockResSample, get(outputs, "scale0p5.mid_block_res_sample"), { atol: TOL, rtol: 0 });
    const none = await multi.forward({ ...base, conditioningScale: [0, 0] });
    expect(Math.max(...none.midBlockResSample.data.map(Math.abs))).toBe(0);
    await expectError(
      () => multi.forward({ ...base, conditioningScale: [1] }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "2 entries each (one per ControlNet)",
    );
    expect(() => new MultiControlNetModel([])).toThrow(InvalidArgumentError);
  });

  it("guess mode scales residual i by logspace(-1, 0, 7)[i] (mid by 1)", async () => {
    const scales = guessModeScales(7);
    expect(scales[0]).toBeCloseTo(0.1, 7);
    expect(scales[6]).toBe(1);
    expect(scales[3]).toBeCloseTo(10 ** -0.5, 7);
    const guess = await loadVariant({}, { guessMode: true });
    try {
      const out = await guess.forward(runInputs(0.5));
      out.downBlockResSamples.forEach((r, i) => {
        const ref = get(outputs, `scale1.down_block_res_samples.${i}`);
        const s = Math.fround((scales[i] ?? 0) * 0.5);
        expectClose(
          r,
          tensor(
            "float32",
            ref.shape,
            ref.data.map((v) => v * s),
          ),
          { atol: TOL, rtol: 0 },
        );
      });
      expectClose(out.midBlockResSample, get(outputs, "scale0p5.mid_block_res_sample"), {
        atol: TOL,
        rtol: 0,
      });
    } finally {
      await guess.release();
    }
  });

  it("global_pool_conditions averages each residual over H and W; bgr flips the control image's channels", async () => {
    const pooled = await loadVariant({ global_pool_conditions: true });
    const bgr = await loadVariant({ controlnet_conditioning_channel_order: "bgr" });
    try {
      const out = await pooled.forward(runInputs(1));
      const ref = get(outputs, "scale1.mid_block_res_sample");
      const [b = 0, c = 0, h = 0, w = 0] = ref.shape;
      const mean = new Float32Array(b * c);
      for (let i = 0; i < b * c; i++)
        mean[i] = ref.data.subarray(i * h * w, (i + 1) * h * w).reduce((s, v) => s + v, 0) / (h * w);
      expectClose(out.midBlockResSample, tensor("float32", [b, c, 1, 1], mean), { atol: TOL, rtol: 0 });
      const cond = get(inputs, "controlnet_cond");
      const plane = (cond.shape[2] ?? 0) * (cond.shape[3] ?? 0);
      const flipped = new Float32Array(cond.data.length);
      for (let n = 0; n < (cond.shape[0] ?? 0); n++)
        for (let ch = 0; ch < 3; ch++)
          flipped.set(
            cond.data.subarray((n * 3 + ch) * plane, (n * 3 + ch + 1) * plane),
            (n * 3 + 2 - ch) * plane,
          );
      const fromBgr = await bgr.forward(runInputs(1, tensor("float32", cond.shape, flipped)));
      expectClose(fromBgr.midBlockResSample, ref, { atol: TOL, rtol: 0 });
    } finally {
      await pooled.release();
      await bgr.release();
    }
  });

  it("refuses a control image of the wrong size and a non-finite scale", async () => {
    await expectError(
      () => net.forward(runInputs(1, tensor("float32", [2, 3, 16, 16]))),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "Expected shape [2, 3, 32, 32] (the latent size times 2) for controlnetCond",
    );
    await expectError(
      () => net.forward(runInputs(NaN)),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "Expected a finite number for conditioningScale",
    );
  });

  it("controlnetKeep follows diffusers' guidance window", () => {
    const keep = (start: number, end: number): number[] =>
      Array.from({ length: 10 }, (_, i) => controlnetKeep(i, 10, start, end));
    expect(keep(0, 1)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(keep(0.2, 0.8)).toEqual([0, 0, 1, 1, 1, 1, 1, 1, 0, 0]);
    expect(keep(0, 0.5)).toEqual([1, 1, 1, 1, 1, 0, 0, 0, 0, 0]);
    expect(() => controlnetKeep(0, 10, 0.8, 0.2)).toThrow(InvalidArgumentError);
  });

  it("fitsUNet accepts the tiny pair and names every mismatch otherwise", async () => {
    const unetConfig = (await readUNet2DConditionModelConfig(join(GOLDEN, "tiny-sd/unet/config.json")))
      .config;
    expect(fitsUNet(config, unetConfig)).toBe(true);
    const wrong = { ...config, block_out_channels: [32, 128], cross_attention_dim: 1024 };
    const error = await expectError(
      () => fitsUNet(wrong, unetConfig),
      ConfigError,
      "E_CONFIG",
      'controlnet/config.json: field "block_out_channels" should be [32,64] as in unet/config.json',
    );
    expect(error.message).toContain("cross_attention_dim: 1024 vs 32");
    expect(error.message).toContain("use a ControlNet trained for this base model");
  });
});
