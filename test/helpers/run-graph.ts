/**
 * Test helpers for graphs: run a GraphBuilder in memory with onnxruntime-node, and compare tensors.
 */
import ort from "onnxruntime-node";
import { expect } from "vitest";
import type { GraphBuilder } from "../../src/graph/builder.js";
import { encodeModelInline } from "../../src/graph/serialize.js";
import { fromOrtTensor, toOrtTensor } from "../../src/runtime/ort-tensor.js";
import { type HostTensor, elementAsNumber, shapeToString } from "../../src/tensor.js";

/** Serializes `g` with all weights inline and runs it once on the CPU provider. */
export async function runGraph(
  g: GraphBuilder,
  feeds: Readonly<Record<string, HostTensor>> = {},
): Promise<Record<string, HostTensor>> {
  const bytes = await encodeModelInline(g);
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: ["cpu"],
    intraOpNumThreads: 1,
    logSeverityLevel: 3,
  });
  try {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrtTensor(v);
    const results = await session.run(ortFeeds);
    const out: Record<string, HostTensor> = {};
    for (const [k, v] of Object.entries(results)) if (v instanceof ort.Tensor) out[k] = fromOrtTensor(v, k);
    return out;
  } finally {
    await session.release();
  }
}

/** A tensor's elements as JS numbers (int64 converted), [] for undefined. */
export function values(t: HostTensor | undefined): number[] {
  return t ? Array.from({ length: t.data.length }, (_, i) => elementAsNumber(t, i)) : [];
}

/** Asserts equal shapes and |a - e| <= atol + rtol * |e| everywhere; reports the worst element. */
export function expectClose(
  actual: HostTensor | undefined,
  expected: HostTensor,
  tolerance: { atol?: number; rtol?: number } = {},
): void {
  expect(actual, "output tensor").toBeDefined();
  if (!actual) return;
  expect(shapeToString(actual.shape)).toBe(shapeToString(expected.shape));
  const atol = tolerance.atol ?? 1e-5;
  const rtol = tolerance.rtol ?? 1e-5;
  let worst = -Infinity;
  let worstAt = -1;
  for (let i = 0; i < expected.data.length; i++) {
    const a = elementAsNumber(actual, i);
    const e = elementAsNumber(expected, i);
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (Number.isNaN(excess) || excess > worst) {
      worst = Number.isNaN(excess) ? Infinity : excess;
      worstAt = i;
    }
  }
  if (worst > 0) {
    const a = elementAsNumber(actual, worstAt);
    const e = elementAsNumber(expected, worstAt);
    expect.fail(
      `element ${worstAt}: got ${a}, expected ${e} (|diff| ${Math.abs(a - e)} > atol ${atol} + rtol ${rtol} * |e|)`,
    );
  }
}

/** Asserts that `fn` throws (or rejects with) an instance of `type` with `code` and a message containing `fragment`. */
export async function expectError<C extends abstract new (...args: never[]) => Error & { code: string }>(
  fn: () => unknown,
  type: C,
  code: string,
  fragment: string,
): Promise<InstanceType<C>> {
  let caught: unknown;
  try {
    await fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected ${type.name}`).toBeInstanceOf(type);
  const e = caught as InstanceType<C>;
  expect(e.code).toBe(code);
  expect(e.message).toContain(fragment);
  return e;
}
