/**
 * Noise drawn per frame. Every frame of a render owns a torch-compatible generator; a batch of
 * frames draws its step noise (DDIM eta > 0, ancestral samplers) slot by slot from the slots'
 * generators, so a frame gets the same numbers whatever batch it lands in, and an anchor frame that
 * is denoised again replays exactly the draws it had.
 */
import { InvalidArgumentError } from "../errors.js";
import type { NoiseGenerator } from "../schedulers/scheduler.js";
import { tensor, type HostTensor } from "../tensor.js";

/** A NoiseGenerator over a batch: `randn([S, ...])` stacks one `[1, ...]` draw of each slot's generator. */
export class SlotNoiseGenerator implements NoiseGenerator {
  constructor(private readonly slots: readonly NoiseGenerator[]) {}

  randn(shape: readonly number[]): HostTensor<"float32"> {
    const [batch, ...rest] = shape;
    if (batch !== this.slots.length) {
      throw new InvalidArgumentError("noise shape", `a batch of ${this.slots.length} (one per frame)`, batch);
    }
    const parts = this.slots.map((g) => g.randn([1, ...rest]));
    const size = parts[0]?.data.length ?? 0;
    const out = new Float32Array(size * this.slots.length);
    parts.forEach((p, i) => out.set(p.data, i * size));
    return tensor("float32", shape, out);
  }
}
