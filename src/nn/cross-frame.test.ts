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
