/**
 * Reproducible randomness of a training run. Every random draw comes from a torch-compatible
 * generator (src/random) seeded from (run seed, purpose, index) by splitmix64, so step k's noise and
 * timesteps and epoch e's shuffle depend on nothing but the seed: a run resumed at step k draws
 * exactly what the uninterrupted run drew, and the "RNG state" a checkpoint records is just the seed
 * and the step count (counter-based seeding, as JAX's PRNG keys; no generator state is carried).
 */
import { TorchGenerator } from "../../random/torch-generator.js";

/** What a generator is for: separate streams never share a seed. */
export const STREAM = { shuffle: 1n, noise: 2n, latents: 3n, captions: 4n } as const;

const MASK = (1n << 64n) - 1n;

/** splitmix64's output function (Steele, Lea, Flood 2014). */
function mix64(z: bigint): bigint {
  let x = z & MASK;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & MASK;
  return x ^ (x >> 31n);
}

/** A 64-bit seed for (run seed, stream, index). */
export function derivedSeed(seed: bigint, stream: bigint, index: number): bigint {
  const golden = 0x9e3779b97f4a7c15n;
  return mix64(mix64(mix64(BigInt.asUintN(64, seed) + golden) + stream * golden) + BigInt(index) * golden);
}

/** A fresh generator for (seed, stream, index). */
export function generatorFor(seed: bigint, stream: bigint, index: number): TorchGenerator {
  return new TorchGenerator(derivedSeed(seed, stream, index));
}

/** A permutation of 0..n-1 (Fisher-Yates driven by torch.rand draws of the epoch's generator). */
export function epochPermutation(seed: bigint, epoch: number, n: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  const u = generatorFor(seed, STREAM.shuffle, epoch).rand([Math.max(1, n)]).data;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor((u[i] ?? 0) * (i + 1)));
    [order[i], order[j]] = [order[j] ?? 0, order[i] ?? 0];
  }
  return order;
}

/**
 * The dataset items of step `step` (0-based): positions step*batch .. step*batch+batch-1 of the
 * endless sequence of shuffled epochs (an epoch ends mid-batch and the next continues it).
 */
export function batchItems(seed: bigint, step: number, batch: number, size: number): number[] {
  const items: number[] = [];
  let cached: { epoch: number; order: number[] } | undefined;
  for (let j = 0; j < batch; j++) {
    const p = step * batch + j;
    const epoch = Math.floor(p / size);
    if (cached?.epoch !== epoch) cached = { epoch, order: epochPermutation(seed, epoch, size) };
    items.push(cached.order[p % size] ?? 0);
  }
  return items;
}
