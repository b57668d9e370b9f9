/**
 * LoRA fusion into a weight, as diffusers 0.26.3 fuses (`LoRACompatibleLinear._fuse_lora`,
 * `LoRACompatibleConv._fuse_lora`, `PatchedLoraProjection._fuse_lora`):
 *
 *   W' = W + sum_i scale_i * (alpha_i / rank_i) * (up_i.flatten(1) @ down_i.flatten(1)).reshape(W.shape)
 *
 * diffusers runs it in float32 (weights `.float()`), one LoRA at a time; here the sum is accumulated in
 * float64 and rounded once to float32 (within an ulp of diffusers' result). Stacked LoRAs add their
 * deltas (diffusers: fuse one, then run the other unfused; PEFT `set_adapters` with weights).
 */
import { InvalidArgumentError } from "../../errors.js";
import { type HostTensor, numel, shapeToString, tensor, toFloat32 } from "../../tensor.js";

/** One LoRA's contribution to a weight. */
export interface LoraDelta {
  /** [r, in] or [r, in, kh, kw] (any float dtype). */
  readonly down: HostTensor;
  /** [out, r] or [out, r, 1, 1]. */
  readonly up: HostTensor;
  /** scale * alpha / rank. */
  readonly multiplier: number;
}

/** `base` (float32 result, base's shape) plus every delta. */
export function fuseLoraDeltas(base: HostTensor, deltas: readonly LoraDelta[]): HostTensor<"float32"> {
  const rows = base.shape[0] ?? 0;
  const cols = rows === 0 ? 0 : numel(base.shape) / rows;
  const acc = Float64Array.from(toFloat32(base).data);
  for (const d of deltas) {
    const down = toFloat32(d.down).data;
    const up = toFloat32(d.up).data;
    const rank = d.down.shape[0] ?? 0;
    if (d.up.shape[0] !== rows || numel(d.up.shape) !== rows * rank || numel(d.down.shape) !== rank * cols) {
      throw new InvalidArgumentError(
        "LoRA delta",
        `up [${rows}, r] and down [r, ${cols}] for a weight ${shapeToString(base.shape)}`,
        `up ${shapeToString(d.up.shape)}, down ${shapeToString(d.down.shape)}`,
      );
    }
    // Row by row, four rank components per pass (one read-modify-write of the row per four).
    const part = (j: number): Float32Array => down.subarray(j * cols, (j + 1) * cols);
    for (let o = 0; o < rows; o++) {
      const row = acc.subarray(o * cols, (o + 1) * cols);
      const coef = (j: number): number => (up[o * rank + j] as number) * d.multiplier;
      let j = 0;
      for (; j + 4 <= rank; j += 4) {
        const [c0, c1, c2, c3] = [coef(j), coef(j + 1), coef(j + 2), coef(j + 3)];
        const [w0, w1, w2, w3] = [part(j), part(j + 1), part(j + 2), part(j + 3)];
        for (let i = 0; i < cols; i++) {
          row[i] =
            (row[i] as number) +
            (c0 * (w0[i] as number) +
              c1 * (w1[i] as number) +
              c2 * (w2[i] as number) +
              c3 * (w3[i] as number));
        }
      }
      for (; j < rank; j++) {
        const c = coef(j);
        const w = part(j);
        for (let i = 0; i < cols; i++) row[i] = (row[i] as number) + c * (w[i] as number);
      }
    }
  }
  return tensor("float32", base.shape, Float32Array.from(acc));
}
