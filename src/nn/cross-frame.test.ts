import { describe, expect, it } from "vitest";
import { randomTensor, refSelectFrames } from "../../test/helpers/graph-reference.js";
import { expectClose, expectError, runGraph } from "../../test/helpers/run-graph.js";
import { GraphError } from "../errors.js";
import { GraphBuilder } from "../graph/builder.js";
import { type HostTensor, tensor } from "../tensor.js";
import { crossFrameSelect, crossFrameSelectByVideos, crossFrameSelectCached } from "./cross-frame.js";

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

describe("cross-frame selection with cached anchors", () => {
  /** Frames [from, to) of each of `videos` videos of x ([V*F, L, C]), as [V*(to-from), L, C]. */
  function framesOf(
    x: HostTensor<"float32">,
    videos: number,
    from: number,
    to: number,
  ): HostTensor<"float32"> {
    const [b = 0, l = 0, c = 0] = x.shape;
    const frames = b / videos;
    const out = new Float32Array(videos * (to - from) * l * c);
    for (let v = 0; v < videos; v++)
      out.set(
        x.data.subarray((v * frames + from) * l * c, (v * frames + to) * l * c),
        v * (to - from) * l * c,
      );
    return tensor("float32", [videos * (to - from), l, c], out);
  }

  it("equals the selection over [anchors ; batch] with the anchors denoised in the batch, in every mode", async () => {
    const videos = 2;
    const [anchors, frames] = [2, 3];
    const all = randomTensor([videos * (anchors + frames), 4, 3], 11) as HostTensor<"float32">;
    const batch = framesOf(all, videos, anchors, anchors + frames);
    const cached = framesOf(all, videos, 0, anchors);
    for (const [mode, count] of [
      ["first", 1],
      ["first-and-previous", 1],
      ["anchors", 2],
    ] as const) {
      const ref = new GraphBuilder();
      const rx = ref.input("x", "float32", ["batch", "tokens", 3]);
      ref.output(crossFrameSelectByVideos(ref, rx, { videos, mode, anchors: count }), "y");
      const expected = framesOf(
        (await runGraph(ref, { x: all }))["y"] as HostTensor<"float32">,
        videos,
        anchors,
        anchors + frames,
      );

      const g = new GraphBuilder();
      const x = g.input("x", "float32", ["batch", "tokens", 3]);
      const cache = g.input("cache", "float32", ["n"]);
      const record = g.input("record", "int64", ["r"]);
      const out = crossFrameSelectCached(g, x, { videos, mode, anchors: count, cache, record });
      g.output(out.selected, "y");
      g.output(out.recorded, "rec");
      const got = await runGraph(g, {
        x: batch,
        cache: tensor("float32", [cached.data.length], cached.data),
        record: tensor("int64", [2], BigInt64Array.of(2n, 0n)),
      });
      expect(Array.from(got["y"]!.data as Float32Array), mode).toEqual(Array.from(expected.data));
      // Recorded: frames 2 and 0 of the batch, per video: [V, 2, L, C].
      const rec = got["rec"]!;
      expect(rec.shape).toEqual([videos, 2, 4, 3]);
      const want = [
        ...framesOf(batch, videos, 2, 3).data.subarray(0, 12),
        ...framesOf(batch, videos, 0, 1).data.subarray(0, 12),
        ...framesOf(batch, videos, 2, 3).data.subarray(12),
        ...framesOf(batch, videos, 0, 1).data.subarray(12),
      ];
      expect(Array.from(rec.data as Float32Array)).toEqual(want);
    }
  });

  it("with no anchors fed (an empty cache) equals plain cross-frame attention, and records nothing", async () => {
    const x0 = randomTensor([6, 4, 3], 5) as HostTensor<"float32">;
    const g = new GraphBuilder();
    const x = g.input("x", "float32", ["batch", "tokens", 3]);
    const cache = g.input("cache", "float32", ["n"]);
    const record = g.input("record", "int64", ["r"]);
    const out = crossFrameSelectCached(g, x, { videos: 2, mode: "first-and-previous", cache, record });
    g.output(out.selected, "y");
    g.output(out.recorded, "rec");
    g.output(crossFrameSelectByVideos(g, x, { videos: 2, mode: "first-and-previous" }), "plain");
    const got = await runGraph(g, {
      x: x0,
      cache: tensor("float32", [0]),
      record: tensor("int64", [0]),
    });
    expect(Array.from(got["y"]!.data as Float32Array)).toEqual(
      Array.from(got["plain"]!.data as Float32Array),
    );
    expect(got["rec"]!.shape).toEqual([2, 0, 4, 3]);
  });
});
