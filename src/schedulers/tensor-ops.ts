/**
 * Small float32 tensor helpers for the schedulers. Each elementwise expression rounds to float32
 * after every operation, in the order torch evaluates the same Python expression, so results track
 * diffusers' float32 arithmetic closely.
 */
import { InvalidArgumentError } from "../errors.js";
import { type HostTensor, numel, shapeToString, shapesEqual, tensor } from "../tensor.js";

export type F32Tensor = HostTensor<"float32">;

/** Throws unless `t` is a float32 tensor (schedulers work on float32 latents). */
export function checkFloat32(t: HostTensor, name: string): F32Tensor {
  if (t.dtype !== "float32" || !(t.data instanceof Float32Array)) {
    throw new InvalidArgumentError(name, "a float32 tensor", t.dtype, {
      hint: "convert it with toFloat32() first",
    });
  }
  return { dtype: "float32", shape: t.shape, data: t.data };
}

/** Throws unless `b` has the shape of `a`. */
export function checkSameShape(a: F32Tensor, b: F32Tensor, nameA: string, nameB: string): void {
  if (!shapesEqual(a.shape, b.shape)) {
    throw new InvalidArgumentError(
      nameB,
      `shape ${shapeToString(a.shape)} (the shape of ${nameA})`,
      shapeToString(b.shape),
    );
  }
}

/** The tensors of a `step` call, checked: both float32, the model output shaped like the sample. */
export function checkStepTensors(
  modelOutput: HostTensor,
  sample: HostTensor,
): { readonly modelOutput: F32Tensor; readonly sample: F32Tensor } {
  const s = checkFloat32(sample, "sample");
  const m = checkFloat32(modelOutput, "modelOutput");
  checkSameShape(s, m, "sample", "modelOutput");
  return { modelOutput: m, sample: s };
}

/** A new float32 tensor of `shape` with out[i] = fn(i). */
export function build(shape: readonly number[], fn: (i: number) => number): F32Tensor {
  const n = numel(shape);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = fn(i);
  return tensor("float32", shape, data);
}

/**
 * Per-batch-element scalars for a batch of `shape[0]` (one value broadcast to all, or one each),
 * as diffusers' add_noise flattens and unsqueezes its timestep-indexed coefficients.
 */
export function perBatch(
  values: readonly number[],
  shape: readonly number[],
  name: string,
): (i: number) => number {
  const batch = shape[0] ?? 1;
  if (values.length !== 1 && values.length !== batch) {
    throw new InvalidArgumentError(name, `1 or ${batch} values (the batch size)`, `${values.length} values`);
  }
  const per = numel(shape) / Math.max(batch, 1);
  return (i) => (values.length === 1 ? (values[0] ?? NaN) : (values[Math.floor(i / per)] ?? NaN));
}

/** Splits [B, 2C, ...] into its first and second halves along dim 1 (learned-variance outputs). */
export function splitChannels(x: F32Tensor): [F32Tensor, F32Tensor] {
  const [b = 1, c2 = 0, ...rest] = x.shape;
  const c = c2 / 2;
  const inner = numel(rest);
  const first = new Float32Array(b * c * inner);
  const second = new Float32Array(b * c * inner);
  for (let n = 0; n < b; n++) {
    const src = n * c2 * inner;
    first.set(x.data.subarray(src, src + c * inner), n * c * inner);
    second.set(x.data.subarray(src + c * inner, src + c2 * inner), n * c * inner);
  }
  const shape = [b, c, ...rest];
  return [tensor("float32", shape, first), tensor("float32", shape, second)];
}

/** Draws noise of `shape` from the generator, checking what comes back. */
export function drawNoise(
  generator: { randn(shape: readonly number[]): HostTensor<"float32"> } | undefined,
  shape: readonly number[],
  who: string,
): F32Tensor {
  if (generator === undefined) {
    throw new InvalidArgumentError("options.generator", `a noise generator for this ${who} step`, undefined, {
      hint: "pass { generator } (e.g. a TorchGenerator) to step(); this step adds random noise",
    });
  }
  const noise = checkFloat32(generator.randn(shape), "generator.randn() result");
  if (!shapesEqual(noise.shape, shape)) {
    throw new InvalidArgumentError(
      "generator.randn() result",
      `shape ${shapeToString(shape)}`,
      shapeToString(noise.shape),
    );
  }
  return noise;
}
