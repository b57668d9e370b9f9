import { describe, expect, it } from "vitest";
import { randomTensor, refSelectFrames } from "../../test/helpers/graph-reference.js";
import { expectClose, expectError, runGraph } from "../../test/helpers/run-graph.js";
import { GraphError } from "../errors.js";
import { GraphBuilder } from "../graph/builder.js";
import { crossFrameSelect, crossFrameSelectByVideos } from "./cross-frame.js";

describe("crossFrameSelectByVideos (frames per video found at run time)", () => {
  it("equals crossFrameSelect with frames = batch / videos, in both modes", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", ["batch", "tokens", 8]);
    g.output(crossFrameSelectByVideos(g, x, { videos: 2 }), "byVideos");
    g.output(crossFrameSelect(g, x, { frames: 3 }), "byFrames");
    g.output(crossFrameSelectByVideos(g, x, { videos: 2, mode: "first-and-previous" }), "prevVideos");
    g.output(crossFrameSelect(g, x, { frames: 3, mode: "first-and-previous" }), "prevFrames");
    const xt = randomTensor([6, 5, 8], 1);
    const out = await runGraph(g, { x: xt });
    expectClose(
      out["byVideos"],
      refSelectFrames(xt, 3, () => 0),
      { atol: 0, rtol: 0 },
    );
    expectClose(
      out["byFrames"],
      refSelectFrames(xt, 3, () => 0),
      { atol: 0, rtol: 0 },
    );
    expect(out["prevVideos"]?.shape).toEqual([6, 10, 8]);
    expectClose(out["prevVideos"], out["prevFrames"] ?? xt, { atol: 0, rtol: 0 });
  });

  it("refuses a bad video count and a batch that is not whole videos", async () => {
    const g = new GraphBuilder();
    await expectError(
      () => crossFrameSelectByVideos(g, g.input("a", "float32", [4, 2, 8]), { videos: 0 }),
      GraphError,
      "E_GRAPH",
      "videos must be a positive integer, got 0",
    );
    await expectError(
      () => crossFrameSelectByVideos(g, g.input("b", "float32", [5, 2, 8]), { videos: 2 }),
      GraphError,
      "E_GRAPH",
      "batch 5 of [5, 2, 8] is not a multiple of 2 videos",
    );
  });
});

describe('cross-frame mode "anchors" (key frames)', () => {
  it("gives every frame the first A frames' tokens concatenated, per video, in both forms", async () => {
    const g = new GraphBuilder();
    const x = g.input("x", "float32", ["batch", "tokens", 3]);
    g.output(crossFrameSelectByVideos(g, x, { videos: 2, mode: "anchors", anchors: 2 }), "byVideos");
    g.output(crossFrameSelect(g, x, { frames: 4, mode: "anchors", anchors: 2 }), "byFrames");
    g.output(crossFrameSelectByVideos(g, x, { videos: 2, mode: "anchors", anchors: 1 }), "one");
    g.output(crossFrameSelectByVideos(g, x, { videos: 2 }), "first");
    const xt = randomTensor([8, 2, 3], 7); // 2 videos x 4 frames, 2 tokens of 3 channels
    const out = await runGraph(g, { x: xt });
    // Hand-built reference: frame f of video v -> [tokens of frame 0 ; tokens of frame 1] of video v.
    const expected = new Float32Array(8 * 4 * 3);
    for (let v = 0; v < 2; v++)
      for (let f = 0; f < 4; f++)
        for (let a = 0; a < 2; a++)
          for (let i = 0; i < 6; i++)
            expected[((v * 4 + f) * 4 + a * 2) * 3 + i] = xt.data[(v * 4 + a) * 6 + i] ?? NaN;
    expect(out["byVideos"]?.shape).toEqual([8, 4, 3]);
    const values = (name: string): number[] => Array.from(out[name]?.data as Float32Array);
    expect(values("byVideos")).toEqual(Array.from(expected));
    expect(values("byFrames")).toEqual(Array.from(expected));
    expect(values("one")).toEqual(values("first"));
  });

  it("refuses more anchors than frames", () => {
    const g = new GraphBuilder();
    expect(() =>
      crossFrameSelect(g, g.input("a", "float32", [4, 2, 8]), { frames: 2, mode: "anchors", anchors: 3 }),
    ).toThrow(/2 frames per video cannot hold 3 anchor frames/);
  });
});
