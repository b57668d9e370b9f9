/** Small tensors and noise sources for the scheduler unit tests. */
import { type HostTensor, numel, tensor } from "../../src/tensor.js";
import type { NoiseGenerator } from "../../src/schedulers/scheduler.js";

/** A float32 tensor of `shape` with element i = fn(i). */
export function filled(shape: readonly number[], fn: (i: number) => number): HostTensor<"float32"> {
  const data = new Float32Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = fn(i);
  return tensor("float32", shape, data);
}

/** A deterministic, non-trivial test pattern in about [-1.5, 1.5]. */
export function pattern(shape: readonly number[], seed = 1): HostTensor<"float32"> {
  return filled(shape, (i) => Math.sin(i * 0.7 + seed) * 1.5);
}

/** A noise source returning `value` everywhere and counting its calls. */
export class ConstantNoise implements NoiseGenerator {
  calls = 0;
  constructor(private readonly value = 0) {}
  randn(shape: readonly number[]): HostTensor<"float32"> {
    this.calls += 1;
    return filled(shape, () => this.value);
  }
}

/** A noise source that fails the test if it is used. */
export const NO_NOISE: NoiseGenerator = {
  randn(): HostTensor<"float32"> {
    throw new Error("this step must not draw noise");
  },
};

/** Element i of a tensor. */
export function at(t: HostTensor<"float32">, i: number): number {
  return t.data[i] ?? NaN;
}
