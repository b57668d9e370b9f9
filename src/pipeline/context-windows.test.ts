import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { type HostTensor, tensor } from "../tensor.js";
import {
  type ContextOptions,
  type ContextSchedule,
  contextFuse,
  contextWindows,
  fuseWeights,
  gatherFrames,
  isWholeVideo,
  orderedHalving,
  predictInWindows,
} from "./context-windows.js";

const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

describe("context windows", () => {
  const schedules: ContextSchedule[] = ["uniform", "sliding", "static"];
  const cases: [number, number, number, number][] = [
    // frames, length, overlap, stride
    [17, 16, 4, 1],
    [24, 16, 4, 1],
    [33, 16, 4, 3],
    [40, 16, 0, 1],
    [64, 16, 8, 3],
    [100, 16, 15, 2],
    [9, 2, 1, 4],
  ];

  it("cover every frame, with windows of contextLength distinct frames, every step", () => {
    for (const schedule of schedules)
      for (const closedLoop of [false, true])
        for (const [frames, n, overlap, stride] of cases)
          for (let step = 0; step < 9; step++) {
            const opts: ContextOptions = { contextLength: n, overlap, stride, schedule, closedLoop };
            const windows = contextWindows(frames, opts, step);
            const label = `${schedule} F=${frames} N=${n} O=${overlap} s=${stride} loop=${closedLoop} step ${step}`;
            expect(new Set(windows.flat()), label).toEqual(new Set(range(0, frames)));
            for (const w of windows) {
              expect(w.length, label).toBe(n);
              expect(new Set(w).size, label).toBe(n);
              expect(
                w.every((f) => Number.isInteger(f) && f >= 0 && f < frames),
                label,
              ).toBe(true);
              // sliding and static windows never wrap around the end of the video
              if (schedule !== "uniform") expect(w, label).toEqual([...w].sort((a, b) => a - b));
            }
          }
  });

  it("static: hop contextLength - overlap, the last window moved back to end at the last frame", () => {
    expect(contextWindows(24, { contextLength: 16, overlap: 4, schedule: "static" })).toEqual([
      range(0, 16),
      range(8, 24),
    ]);
    expect(contextWindows(40, { contextLength: 16, overlap: 4, schedule: "static" }, 5)).toEqual([
      range(0, 16),
      range(12, 28),
      range(24, 40),
    ]);
    // neighbours share exactly `overlap` frames (the last pair at least that many)
    const w = contextWindows(50, { contextLength: 10, overlap: 3, schedule: "static" });
    for (let i = 1; i < w.length - 1; i++) {
      expect(w[i]?.filter((f) => w[i - 1]?.includes(f)).length).toBe(3);
    }
    expect(w.at(-1)?.filter((f) => w.at(-2)?.includes(f)).length).toBeGreaterThanOrEqual(3);
  });

  it("uniform: wraps around the end, shifts with the step, closedLoop adds the joining window", () => {
    expect([0, 1, 2, 3, 4, 5].map(orderedHalving)).toEqual([0, 0.5, 0.25, 0.75, 0.125, 0.625]);
    expect(contextWindows(24, { contextLength: 16, overlap: 4 })).toEqual([
      range(0, 16),
      [...range(12, 24), ...range(0, 4)],
    ]);
    // step 1: offset round(24 * 0.5) = 12
    expect(contextWindows(24, { contextLength: 16, overlap: 4 }, 1)).toEqual([
      [...range(12, 24), ...range(0, 4)],
      range(0, 16),
    ]);
    expect(contextWindows(28, { contextLength: 16, overlap: 4 })).toEqual([range(0, 16), range(12, 28)]);
    expect(contextWindows(28, { contextLength: 16, overlap: 4, closedLoop: true })).toEqual([
      range(0, 16),
      range(12, 28),
      [...range(24, 28), ...range(0, 12)],
    ]);
    // consecutive windows of a step share exactly `overlap` frames
    const w = contextWindows(64, { contextLength: 16, overlap: 6 }, 3);
    for (let i = 1; i < w.length; i++) expect(w[i]?.filter((f) => w[i - 1]?.includes(f)).length).toBe(6);
  });

  it("stride adds dilated windows (every 2nd, 4th frame) while they fit the video", () => {
    const w = contextWindows(32, { contextLength: 8, overlap: 2, stride: 3 });
    const spacing = (x: readonly number[]): number => ((x[1] ?? 0) - (x[0] ?? 0) + 32) % 32;
    expect(new Set(w.map(spacing))).toEqual(new Set([1, 2, 4]));
    expect(w.find((x) => spacing(x) === 4)).toEqual([0, 4, 8, 12, 16, 20, 24, 28]);
    // 8 * 8 > 32: a fourth level would repeat frames, so stride 9 gives the same windows
    expect(contextWindows(32, { contextLength: 8, overlap: 2, stride: 9 })).toEqual(w);
  });

  it("sliding: the uniform windows moved inside the video, without repeats", () => {
    // step 1 of 40 frames: uniform starts 20, 32, 44 (= 4); 32 wraps -> [24, 40) and [0, 16)
    expect(contextWindows(40, { contextLength: 16, overlap: 4 }, 1)).toEqual([
      range(20, 36),
      [...range(32, 40), ...range(0, 8)],
      range(4, 20),
    ]);
    expect(contextWindows(40, { contextLength: 16, overlap: 4, schedule: "sliding" }, 1)).toEqual([
      range(20, 36),
      range(24, 40),
      range(4, 20),
      range(0, 16),
    ]);
    expect(contextWindows(24, { contextLength: 16, overlap: 4, schedule: "sliding" })).toEqual([
      range(0, 16),
      range(8, 24),
    ]);
  });

  it("frames <= contextLength give the one whole-video window", () => {
    for (const schedule of schedules)
      for (const frames of [1, 8, 16]) {
        const windows = contextWindows(frames, { contextLength: 16, schedule, closedLoop: true }, 3);
        expect(windows).toEqual([range(0, frames)]);
        expect(isWholeVideo(windows, frames)).toBe(true);
      }
    expect(isWholeVideo([range(0, 16), range(8, 24)], 24)).toBe(false);
    expect(isWholeVideo([[1, 0]], 2)).toBe(false);
  });

  it("refuses bad options", () => {
    expect(() => contextWindows(20, { contextLength: 16, overlap: 16 })).toThrow(InvalidArgumentError);
    expect(() => contextWindows(20, { contextLength: 0 })).toThrow("context.contextLength");
    expect(() => contextWindows(20, { contextLength: 8, stride: 0 })).toThrow("context.stride");
    expect(() =>
      contextWindows(20, { contextLength: 8, schedule: "looped" as unknown as ContextSchedule }),
    ).toThrow("one of uniform, sliding, static");
    expect(() => contextFuse({ contextLength: 8, fuse: "gauss" as unknown as "flat" })).toThrow(
      "one of flat, pyramid",
    );
  });
});

describe("fusion", () => {
  it("pyramid weights rise by one from each edge; flat weights are all 1", () => {
    expect([...fuseWeights(16, "pyramid")]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1]);
    expect([...fuseWeights(5, "pyramid")]).toEqual([1, 2, 3, 2, 1]);
    expect([...fuseWeights(1, "pyramid")]).toEqual([1]);
    expect([...fuseWeights(4, "flat")]).toEqual([1, 1, 1, 1]);
    expect(contextFuse({ contextLength: 8 })).toBe("flat");
    expect(contextFuse({ contextLength: 8, schedule: "static" })).toBe("pyramid");
  });

  it("gathers frames along an axis", () => {
    const t = tensor("float32", [1, 2, 3, 1], Float32Array.from(range(0, 6)));
    expect([...gatherFrames(t, [2, 0], 2).data]).toEqual([2, 0, 5, 3]);
    expect(gatherFrames(t, [2, 0], 2).shape).toEqual([1, 2, 2, 1]);
    expect(() => gatherFrames(t, [3], 2)).toThrow(InvalidArgumentError);
  });

  // sample [1, 2, 6, 1, 2]: value = 10 * channel + frame (+ 0.5 in the second column)
  const frames = 6;
  const sample = tensor(
    "float32",
    [1, 2, frames, 1, 2],
    Float32Array.from(
      { length: 24 },
      (_, i) => 10 * Math.floor(i / 12) + (Math.floor(i / 2) % 6) + (i % 2) / 2,
    ),
  );
  /** A window's "prediction": its input plus 100 * (window index + 1), so overlapping windows differ. */
  const predict = (
    _w: readonly number[],
    x: HostTensor<"float32">,
    index: number,
  ): Promise<HostTensor<"float32">> =>
    Promise.resolve(
      tensor(
        "float32",
        x.shape,
        x.data.map((v) => v + 100 * (index + 1)),
      ),
    );
  /** Element (channel c, frame f, column col) of a [1, 2, n, 1, 2] tensor. */
  const at = (t: HostTensor, c: number, f: number, col: number): number =>
    t.data[(c * (t.shape[2] ?? 0) + f) * 2 + col] as number;

  it("averages each frame's predictions with the windows' pyramid weights (by hand)", async () => {
    const windows = contextWindows(frames, { contextLength: 4, overlap: 2, schedule: "static" });
    expect(windows).toEqual([range(0, 4), range(2, 6)]);
    const seen: number[][] = [];
    const out = await predictInWindows(sample, windows, "pyramid", (w, x, i) => {
      seen.push([...w]);
      expect(x.shape).toEqual([1, 2, 4, 1, 2]);
      expect(at(x, 1, 0, 1)).toBe(10 + (w[0] ?? 0) + 0.5);
      return predict(w, x, i);
    });
    expect(seen).toEqual(windows);
    expect(out.shape).toEqual([1, 2, 6, 1, 2]);
    // float64 sums of exact values, one float32 rounding; weights [1, 2, 2, 1]: frame 2 is position 2 of window 0 (w 2) and position 0 of window 1 (w 1)
    for (const c of [0, 1])
      for (const col of [0, 1]) {
        const v = (f: number): number => 10 * c + f + col / 2;
        expect(at(out, c, 0, col)).toBe(Math.fround(v(0) + 100));
        expect(at(out, c, 1, col)).toBe(Math.fround(v(1) + 100));
        expect(at(out, c, 2, col)).toBe(Math.fround((2 * (v(2) + 100) + 1 * (v(2) + 200)) / 3));
        expect(at(out, c, 3, col)).toBe(Math.fround((1 * (v(3) + 100) + 2 * (v(3) + 200)) / 3));
        expect(at(out, c, 4, col)).toBe(Math.fround(v(4) + 200));
        expect(at(out, c, 5, col)).toBe(Math.fround(v(5) + 200));
      }
    // flat weights: a plain mean where windows overlap
    const flat = await predictInWindows(sample, windows, "flat", predict);
    expect(at(flat, 1, 3, 0)).toBeCloseTo(13 + 150, 5);
  });

  it("follows the window order (wrapped windows) and may change the batch (CFG)", async () => {
    const windows = [
      [4, 5, 0, 1],
      [1, 2, 3, 4],
    ];
    const out = await predictInWindows(sample, windows, "flat", (_w, x) =>
      Promise.resolve(tensor("float32", [2, ...x.shape.slice(1)], new Float32Array([...x.data, ...x.data]))),
    );
    expect(out.shape).toEqual([2, 2, 6, 1, 2]);
    expect([...out.data.slice(0, 24)]).toEqual([...sample.data]);
    expect([...out.data.slice(24)]).toEqual([...sample.data]);
  });

  it("refuses uncovered frames and wrong prediction shapes", async () => {
    await expect(predictInWindows(sample, [range(0, 4)], "flat", predict)).rejects.toThrow(
      "no window for frames 4, 5",
    );
    await expect(
      predictInWindows(sample, [range(0, 4), range(2, 6)], "flat", () =>
        Promise.resolve(tensor("float32", [1, 2, 3, 1, 2])),
      ),
    ).rejects.toThrow("shape [1, 2, 4, 1, 2]");
  });
});
