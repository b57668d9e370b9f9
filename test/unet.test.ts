import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { intermediatesCall, unetCallInputs, unetKind } from "../src/conformance/kinds/unet.js";
import { InvalidArgumentError } from "../src/errors.js";
import { UNet2DConditionModel } from "../src/models/unet/unet-2d-condition.js";
import type { UNet2DConditionModelRunner } from "../src/models/unet/runner.js";
import { type HostTensor, maxAbsDiff, tensor } from "../src/tensor.js";
import { GOLDEN, expectOutputsPass, fixtureTensor, openGoldenFixture } from "./helpers/golden-fixture.js";
import { expectClose, expectError } from "./helpers/run-graph.js";

const dir = join(GOLDEN, "unet");
const unetDir = join(GOLDEN, "tiny-sd/unet");
const TOL = 5e-5;

let cacheDir = "";
let unet: UNet2DConditionModelRunner;
let caseJson: Record<string, unknown>;
let inputs: Map<string, HostTensor>;
let outputs: Map<string, HostTensor>;

beforeAll(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), "sf-unet-"));
  ({ caseJson, inputs, outputs } = await openGoldenFixture(dir));
  const started = performance.now();
  unet = await UNet2DConditionModel.load(unetDir, { cacheDir });
  console.log(`tiny UNet build + write + load: ${(performance.now() - started).toFixed(0)} ms`);
});
afterAll(async () => {
  await unet.release();
  await rm(cacheDir, { recursive: true, force: true });
});

describe("unet golden fixture (diffusers 0.26.3 UNet2DConditionModel)", () => {
  it("passes the unet conformance kind: 4 calls and 8 intermediates, every row within 5e-5", async () => {
    const rows = await unetKind.run({ dir, caseJson });
    expectOutputsPass(rows, outputs, TOL);
  });

  it("parses the fixture's call strings (literal, per-batch, 0-dim float and scaled sample)", () => {
    const scalar = unetCallInputs(
      "unet(sample, 500, encoder_hidden_states=encoder_hidden_states).sample  # int",
      inputs,
    );
    expect(scalar.timestep).toBe(500);
    const small = unetCallInputs(
      "unet(0.01 * sample, 500, encoder_hidden_states=encoder_hidden_states).sample",
      inputs,
    );
    expect(maxAbsDiff(small.sample, fixtureTensor(inputs, "sample_small"))).toBeLessThan(1e-9);
    const fractional = unetCallInputs("unet(sample, timestep_float, ...).sample", inputs);
    expect(fractional.timestep).toBe(fixtureTensor(inputs, "timestep_float"));
    expect(
      intermediatesCall("for the t_scalar call: intermediate.time_proj", [
        "noise_pred.t_batch",
        "noise_pred.t_scalar",
      ]),
    ).toBe("noise_pred.t_scalar");
  });

  it("takes integer, per-batch and fractional timesteps as numbers or tensors", async () => {
    const sample = fixtureTensor(inputs, "sample");
    const encoderHiddenStates = fixtureTensor(inputs, "encoder_hidden_states");
    const asNumber = await unet.forward({ sample, timestep: 500, encoderHiddenStates });
    const asInt64 = await unet.forward({
      sample,
      timestep: fixtureTensor(inputs, "timestep_scalar"),
      encoderHiddenStates,
    });
    const asBatch = await unet.forward({
      sample,
      timestep: tensor("float32", [2], Float32Array.of(500, 500)),
      encoderHiddenStates,
    });
    expectClose(asNumber, fixtureTensor(outputs, "noise_pred.t_scalar"), { atol: TOL, rtol: 0 });
    expect(maxAbsDiff(asInt64, asNumber)).toBe(0);
    expect(maxAbsDiff(asBatch, asNumber)).toBe(0);
    const perItem = await unet.forward({
      sample,
      timestep: fixtureTensor(inputs, "timestep_batch"),
      encoderHiddenStates,
    });
    expectClose(perItem, fixtureTensor(outputs, "noise_pred.t_batch"), { atol: TOL, rtol: 0 });
    const fractional = await unet.forward({ sample, timestep: 946.42108, encoderHiddenStates });
    expectClose(fractional, fixtureTensor(outputs, "noise_pred.t_float"), { atol: TOL, rtol: 0 });
  });

  it("reuses the written model from the cache folder on a second load", async () => {
    const again = await UNet2DConditionModel.load(unetDir, { cacheDir });
    try {
      expect(again.reused).toBe(true);
      expect(again.modelPath).toBe(unet.modelPath);
      expect(unet.reused).toBe(false);
    } finally {
      await again.release();
    }
  });

  it("with residual inputs: zeros (fed when none are given) leave the prediction unchanged", async () => {
    const withResiduals = await UNet2DConditionModel.load(unetDir, { cacheDir, residuals: true });
    try {
      expect(withResiduals.acceptsResiduals).toBe(true);
      expect(withResiduals.session.inputs.map((s) => s.name)).toEqual([
        "sample",
        "timestep",
        "encoder_hidden_states",
        ...Array.from({ length: 6 }, (_, i) => `down_block_additional_residuals.${i}`),
        "mid_block_additional_residual",
      ]);
      const out = await withResiduals.forward({
        sample: fixtureTensor(inputs, "sample"),
        timestep: 500,
        encoderHiddenStates: fixtureTensor(inputs, "encoder_hidden_states"),
      });
      expectClose(out, fixtureTensor(outputs, "noise_pred.t_scalar"), { atol: TOL, rtol: 0 });
      await expectError(
        () =>
          withResiduals.forward({
            sample: fixtureTensor(inputs, "sample"),
            timestep: 500,
            encoderHiddenStates: fixtureTensor(inputs, "encoder_hidden_states"),
            downBlockAdditionalResiduals: [fixtureTensor(inputs, "sample")],
          }),
        InvalidArgumentError,
        "E_INVALID_ARGUMENT",
        "Expected 6 tensors (one per skip connection) for downBlockAdditionalResiduals",
      );
      // A mid residual without the down ones is refused, as by the UNetMotionModel runner.
      await expectError(
        () =>
          withResiduals.forward({
            sample: fixtureTensor(inputs, "sample"),
            timestep: 500,
            encoderHiddenStates: fixtureTensor(inputs, "encoder_hidden_states"),
            midBlockAdditionalResidual: tensor("float32", [2, 64, 8, 8]),
          }),
        InvalidArgumentError,
        "E_INVALID_ARGUMENT",
        "6 down residuals and a mid residual, or neither",
      );
    } finally {
      await withResiduals.release();
    }
  });

  it("refuses residuals without residual inputs and a timestep of the wrong length", async () => {
    const sample = fixtureTensor(inputs, "sample");
    const encoderHiddenStates = fixtureTensor(inputs, "encoder_hidden_states");
    await expectError(
      () => unet.forward({ sample, timestep: 1, encoderHiddenStates, midBlockAdditionalResidual: sample }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "load the UNet2DConditionModel with { residuals: true }",
    );
    await expectError(
      () =>
        unet.forward({
          sample,
          timestep: tensor("float32", [3], Float32Array.of(1, 2, 3)),
          encoderHiddenStates,
        }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      'Expected a scalar or a [2] tensor (one per batch item) for timestep but received "[3]"',
    );
  });
});
