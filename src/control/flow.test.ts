import { describe, expect, it } from "vitest";
import { CancelledError, InvalidArgumentError } from "../errors.js";
import { texture } from "../../test/helpers/synthetic-images.js";
import { farnebackFlow, pairFlows, resolveFarneback, type FlowField } from "./flow.js";

function interiorMedian(flow: FlowField, component: 0 | 1, margin: number): number {
  const values: number[] = [];
  for (let y = margin; y < flow.height - margin; y++) {
    for (let x = margin; x < flow.width - margin; x++)
      values.push(flow.data[2 * (y * flow.width + x) + component] ?? NaN);
  }
  values.sort((a, b) => a - b);
  return values[values.length >> 1] ?? NaN;
}

describe("farnebackFlow", () => {
  it("recovers a (2, 1) px shift of a smooth texture", async () => {
    const prev = texture(64, 64);
    const next = texture(64, 64, { dx: 2, dy: 1 });
    const flow = await farnebackFlow(prev, next);
    expect(flow.data.length).toBe(64 * 64 * 2);
    expect(interiorMedian(flow, 0, 12)).toBeCloseTo(2, 1);
    expect(interiorMedian(flow, 1, 12)).toBeCloseTo(1, 1);
    const back = await farnebackFlow(next, prev, { winsize: 9, polyN: 7, polySigma: 1.5, flags: 256 });
    expect(interiorMedian(back, 0, 12)).toBeCloseTo(-2, 1);
  });

  it("converts RGB input to gray first", async () => {
    const flow = await farnebackFlow(
      texture(48, 48, { channels: 3 }),
      texture(48, 48, { channels: 3, dx: -1 }),
    );
    expect(interiorMedian(flow, 0, 10)).toBeCloseTo(-1, 1);
  });

  it("refines a given initial flow with OPTFLOW_USE_INITIAL_FLOW", async () => {
    const prev = texture(64, 64);
    const next = texture(64, 64, { dx: 3 });
    const initialFlow = await farnebackFlow(prev, next);
    const refined = await farnebackFlow(prev, next, { flags: 4, initialFlow, levels: 0 });
    expect(interiorMedian(refined, 0, 12)).toBeCloseTo(3, 1);
  });

  it("validates every parameter", () => {
    expect(() => resolveFarneback({ pyrScale: 1 })).toThrow(
      "Expected a number in (0, 1) for pyrScale but received 1",
    );
    // @ts-expect-error poly_n must be 5 or 7
    expect(() => resolveFarneback({ polyN: 6 })).toThrow(InvalidArgumentError);
    expect(() => resolveFarneback({ flags: 1 })).toThrow("for flags");
    expect(() => resolveFarneback({ flags: 4 })).toThrow("for initialFlow");
    expect(resolveFarneback()).toEqual({
      pyrScale: 0.5,
      levels: 3,
      winsize: 15,
      iterations: 3,
      polyN: 5,
      polySigma: 1.2,
      flags: 0,
    });
  });

  it("rejects frames of different sizes", async () => {
    const error = await farnebackFlow(texture(16, 16), texture(16, 12)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).message).toContain(
      "Expected 16x16 (the size of prev) for next size",
    );
  });
});

describe("pairFlows", () => {
  it("computes forward and backward flows of consecutive pairs with progress", async () => {
    const frames = [0, 1, 2].map((i) => texture(32, 32, { dx: i }));
    const events: string[] = [];
    const { forward, backward } = await pairFlows(frames, { onProgress: (e) => events.push(e.status) });
    expect(forward).toHaveLength(2);
    expect(backward).toHaveLength(2);
    expect(events).toEqual(["start", "progress", "progress", "done"]);
  });

  it("stops when the signal is aborted", async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await pairFlows([texture(8, 8), texture(8, 8)], { signal: controller.signal }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CancelledError);
    expect((error as CancelledError).code).toBe("E_CANCELLED");
    expect((error as CancelledError).message).toContain("optical flow was cancelled");
  });
});
