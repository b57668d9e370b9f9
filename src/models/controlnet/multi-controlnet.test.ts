import { describe, expect, it } from "vitest";
import { expectError } from "../../../test/helpers/run-graph.js";
import { InvalidArgumentError } from "../../errors.js";
import type { ControlNet, ControlNetInputs, ControlNetOutputs } from "../model-interfaces.js";
import { type HostTensor, tensor } from "../../tensor.js";
import { MultiControlNetModel, controlnetKeep } from "./multi-controlnet.js";

/** A fake net: residual = scale * value, of the given spatial size; records its calls. */
function fakeNet(value: number, size = 2): ControlNet & { calls: number } {
  const make = (s: number): HostTensor<"float32"> =>
    tensor("float32", [1, 1, size, size], new Float32Array(size * size).fill(s * value));
  return {
    calls: 0,
    forward(inputs: ControlNetInputs): Promise<ControlNetOutputs> {
      this.calls++;
      return Promise.resolve({
        downBlockResSamples: [make(inputs.conditioningScale)],
        midBlockResSample: make(inputs.conditioningScale),
      });
    },
  };
}

const one = tensor("float32", [1], Float32Array.of(1));
const inputs = (scales: number[]) => ({
  sample: one,
  timestep: one,
  encoderHiddenStates: one,
  controlnetCond: scales.map(() => one),
  conditioningScale: scales,
});

describe("MultiControlNetModel", () => {
  it("sums per-net scaled residuals and skips nets with scale 0", async () => {
    const [a, b] = [fakeNet(1), fakeNet(10)];
    const out = await new MultiControlNetModel([a, b]).forward(inputs([0.5, 2]));
    expect(Array.from(out.midBlockResSample.data)).toEqual([20.5, 20.5, 20.5, 20.5]);
    await new MultiControlNetModel([a, b]).forward(inputs([0, 1]));
    expect([a.calls, b.calls]).toEqual([1, 2]);
  });

  it("refuses residuals of different shapes", async () => {
    await expectError(
      () => new MultiControlNetModel([fakeNet(1, 2), fakeNet(1, 3)]).forward(inputs([1, 1])),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "Expected shape [1, 1, 2, 2] (as the first ControlNet's) for controlnets[1] down_block_res_samples.0",
    );
  });

  it("controlnetKeep refuses a bad step count", async () => {
    await expectError(
      () => controlnetKeep(0, 0, 0, 1),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      "Expected a positive integer for numSteps",
    );
  });
});
