import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unetMotionKind } from "../src/conformance/kinds/unet-motion.js";
import { InvalidArgumentError } from "../src/errors.js";
import { GraphBuilder } from "../src/graph/builder.js";
import { type MotionAdapterConfig, readMotionAdapterConfig } from "../src/models/motion/config.js";
import { MotionAdapter } from "../src/models/motion/motion-adapter.js";
import type { UNetMotionModelRunner } from "../src/models/motion/runner.js";
import { UNetMotionModel } from "../src/models/motion/unet-motion-model.js";
import { sinusoidalPositionTable } from "../src/models/unet/embeddings.js";
import { zeroWeights } from "../src/nn/weight-store.js";
import { WeightScope } from "../src/nn/weights.js";
import { type HostTensor, maxAbsDiff, tensor } from "../src/tensor.js";
import { openSafetensors, readSafetensors, writeSafetensors } from "../src/weights/safetensors.js";
import { randomTensor } from "./helpers/graph-reference.js";
import { GOLDEN, fixtureTensor, openGoldenFixture } from "./helpers/golden-fixture.js";
import { expectClose, expectError } from "./helpers/run-graph.js";

const dir = join(GOLDEN, "unet_motion");
const unetDir = join(GOLDEN, "tiny-sd/unet");
const adapterDir = join(dir, "motion_adapter");
const adapterFile = join(adapterDir, "diffusion_pytorch_model.safetensors");
const TOL = 5e-5;

let cacheDir = "";
let model: UNetMotionModelRunner;
let adapterConfig: MotionAdapterConfig;
let caseJson: Record<string, unknown>;
let inputs: Map<string, HostTensor>;
let outputs: Map<string, HostTensor>;
const call = () => ({
  sample: fixtureTensor(inputs, "sample"),
  timestep: fixtureTensor(inputs, "timestep"),
  encoderHiddenStates: fixtureTensor(inputs, "encoder_hidden_states"),
});

beforeAll(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), "sf-unet-motion-"));
  ({ caseJson, inputs, outputs } = await openGoldenFixture(dir));
  adapterConfig = (await readMotionAdapterConfig(join(adapterDir, "config.json"))).config;
  model = await UNetMotionModel.load({ unet: unetDir, motionAdapter: adapterDir }, { cacheDir });
});
afterAll(async () => {
  await model.release();
  await rm(cacheDir, { recursive: true, force: true });
});

/** Concatenates tensors along axis 0. */
function cat0(a: HostTensor, b: HostTensor): HostTensor<"float32"> {
  const data = new Float32Array(a.data.length + b.data.length);
  data.set(a.data as Float32Array);
  data.set(b.data as Float32Array, a.data.length);
  return tensor("float32", [(a.shape[0] ?? 0) + (b.shape[0] ?? 0), ...a.shape.slice(1)], data);
}
function half(t: HostTensor, second: boolean): HostTensor<"float32"> {
  const n = t.data.length / 2;
  const data = (t.data as Float32Array).slice(second ? n : 0, second ? 2 * n : n);
  return tensor("float32", [(t.shape[0] ?? 2) / 2, ...t.shape.slice(1)], data);
}

describe("unet_motion golden fixture (diffusers 0.26.3 UNetMotionModel.from_unet2d)", () => {
  it("passes the unet_motion conformance kind within 5e-5", async () => {
    const rows = await unetMotionKind.run({ dir, caseJson });
    expect(rows.map((r) => r.tensor)).toEqual(["noise_pred"]);
    for (const row of rows) {
      console.log(`unet_motion ${row.tensor}: max abs err ${row.maxAbsError.toExponential(2)}`);
      expect(row.pass, row.note).toBe(true);
      expect(row.tolerance).toBe(TOL);
    }
  });

  it("is as close to the float64 reference as diffusers' float32 run", async () => {
    const fp64 = fixtureTensor(await readSafetensors(join(dir, "outputs_fp64.safetensors")), "noise_pred");
    const out = await model.forward(call());
    const err = maxAbsDiff(out, fp64);
    console.log(
      `unet_motion vs fp64: ${err.toExponential(2)}, golden fp32 vs fp64: ${maxAbsDiff(fixtureTensor(outputs, "noise_pred"), fp64).toExponential(2)}`,
    );
    expect(err).toBeLessThan(TOL);
  });

  it("binds exactly the fixture's motion adapter keys", async () => {
    const file = await openSafetensors(adapterFile);
    const g = new GraphBuilder();
    new MotionAdapter(WeightScope.bind(g, zeroWeights()), adapterConfig);
    expect(g.initializers.map((i) => i.name).sort()).toEqual([...file.keys()].sort());
  });

  it("builds the positional table diffusers stores as pos_embed.pe", async () => {
    const weights = await readSafetensors(adapterFile);
    for (const [key, pe] of weights) {
      if (!key.endsWith("pos_embed.pe")) continue;
      const [, length = 0, channels = 0] = pe.shape;
      expect(length).toBe(adapterConfig.motion_max_seq_length);
      const ours = tensor("float32", pe.shape, sinusoidalPositionTable(channels, length));
      expect(maxAbsDiff(ours, pe), key).toBeLessThanOrEqual(1.2e-7); // float32 sin/cos: at most 1 ulp apart
    }
  });

  it("keeps videos apart: a batch of two equals two single-video calls", async () => {
    const sample = fixtureTensor(inputs, "sample");
    const ehs = fixtureTensor(inputs, "encoder_hidden_states");
    const other = randomTensor(sample.shape, 5);
    const otherEhs = randomTensor(ehs.shape, 6);
    const both = await model.forward({
      sample: cat0(sample, other),
      timestep: tensor("int64", [2], BigInt64Array.from([400n, 900n])),
      encoderHiddenStates: cat0(ehs, otherEhs),
    });
    expectClose(half(both, false), fixtureTensor(outputs, "noise_pred"), { atol: TOL, rtol: 0 });
    const alone = await model.forward({ sample: other, timestep: 900, encoderHiddenStates: otherEhs });
    expectClose(half(both, true), alone, { atol: 1e-5, rtol: 0 });
  });

  it("takes fewer frames in the same session", async () => {
    const sample = fixtureTensor(inputs, "sample");
    const [b = 1, c = 4, , h = 16, w = 16] = sample.shape;
    const two = await model.forward({ ...call(), sample: randomTensor([b, c, 2, h, w], 9) });
    expect(two.shape).toEqual([1, 4, 2, 16, 16]);
    expect(Array.from(two.data).every(Number.isFinite)).toBe(true);
  });

  it("loads an original AnimateDiff motion-module file (mm_sd_v15_v2 layout) to the same result", async () => {
    const diffusersWeights = await readSafetensors(adapterFile);
    const original = new Map<string, HostTensor>();
    for (const [key, t] of diffusersWeights) {
      const m = /^(.*\.motion_modules\.\d+)\.(.*)$/.exec(key);
      if (!m) throw new Error(key);
      const [, prefix = "", rest = ""] = m;
      if (rest.endsWith("pos_embed.pe")) {
        // The original stores one (longer) table per attention; the conversion drops them.
        for (const a of [0, 1])
          original.set(
            `${prefix}.temporal_transformer.transformer_blocks.0.attention_blocks.${a}.pos_encoder.pe`,
            randomTensor([1, 32, t.shape[2] ?? 0], a + 1),
          );
        continue;
      }
      const renamed = rest
        .replace(".attn1.", ".attention_blocks.0.")
        .replace(".attn2.", ".attention_blocks.1.")
        .replace(".norm1.", ".norms.0.")
        .replace(".norm2.", ".norms.1.")
        .replace(".norm3.", ".ff_norm.");
      original.set(`${prefix}.temporal_transformer.${renamed}`, t);
    }
    expect([...original.keys()]).toContain(
      "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1.to_q.weight",
    );
    const checkpoint = join(cacheDir, "mm_tiny.safetensors");
    await writeSafetensors(checkpoint, original);
    const fromCheckpoint = await UNetMotionModel.load(
      { unet: unetDir, motionAdapter: { checkpoint, config: adapterConfig } },
      { cacheDir },
    );
    try {
      const out = await fromCheckpoint.forward(call());
      const err = maxAbsDiff(out, fixtureTensor(outputs, "noise_pred"));
      console.log(`unet_motion from an AnimateDiff-layout file: max abs err ${err.toExponential(2)}`);
      expect(err).toBeLessThanOrEqual(TOL);
    } finally {
      await fromCheckpoint.release();
    }
  });

  it("adds per-frame ControlNet residuals (zeros change nothing; none given = zeros, as the UNet runner)", async () => {
    const withResiduals = await UNetMotionModel.load(
      { unet: unetDir, motionAdapter: adapterDir },
      { cacheDir, residuals: true },
    );
    try {
      const frames = 4;
      const zeros = (c: number, s: number): HostTensor => tensor("float32", [frames, c, s, s]);
      const down = [zeros(32, 16), zeros(32, 16), zeros(32, 16), zeros(32, 8), zeros(64, 8), zeros(64, 8)];
      const out = await withResiduals.forward({
        ...call(),
        downBlockAdditionalResiduals: down,
        midBlockAdditionalResidual: zeros(64, 8),
      });
      expectClose(out, fixtureTensor(outputs, "noise_pred"), { atol: TOL, rtol: 0 });
      // No residuals: zeros of each skip's per-frame shape are fed, bit-identical to explicit zeros.
      expect(maxAbsDiff(await withResiduals.forward(call()), out)).toBe(0);
      await expectError(
        () => withResiduals.forward({ ...call(), downBlockAdditionalResiduals: down }),
        InvalidArgumentError,
        "E_INVALID_ARGUMENT",
        "6 down residuals and a mid residual, or neither",
      );
      await expectError(
        () => withResiduals.forward({ ...call(), downBlockAdditionalResiduals: down.slice(1) }),
        InvalidArgumentError,
        "E_INVALID_ARGUMENT",
        "Expected 6 tensors (one per skip connection) for downBlockAdditionalResiduals",
      );
    } finally {
      await withResiduals.release();
    }
  });

  it("InvalidArgumentError for too many frames, a 4-D sample, a batch mismatch and unexpected residuals", async () => {
    const sample = fixtureTensor(inputs, "sample");
    const [b = 1, c = 4, , h = 16, w = 16] = sample.shape;
    await expectError(
      () => model.forward({ ...call(), sample: tensor("float32", [b, c, 17, h, w]) }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "Expected 1 to 16 frames (the motion adapter's motion_max_seq_length) for sample but received",
    );
    await expectError(
      () => model.forward({ ...call(), sample: tensor("float32", [4, c, h, w]) }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "a [batch, channels, frames, height, width] tensor",
    );
    await expectError(
      () => model.forward({ ...call(), encoderHiddenStates: tensor("float32", [2, 77, 32]) }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "for encoderHiddenStates",
    );
    await expectError(
      () => model.forward({ ...call(), midBlockAdditionalResidual: tensor("float32", [4, 64, 8, 8]) }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "load the UNetMotionModel with { residuals: true }",
    );
  });
});
