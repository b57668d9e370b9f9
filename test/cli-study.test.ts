/**
 * `steadyframe study` end to end on the tiny model: three strategies (one interpolated) on the bundled
 * car clip give the study's files with one row per strategy; --resume keeps the finished renders; a
 * bad --strategies entry is refused before anything is written.
 */
import { readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clipPrompt } from "../src/cli/commands/study.js";
import { main } from "../src/cli/main.js";
import { probeVideo } from "../src/video/probe.js";
import { captureIO } from "./helpers/cli-io.js";
import { writeTinyClipModel } from "./helpers/tiny-clip-model.js";
import { makeTempDir } from "./helpers/video.js";

const GOLDEN = "test/fixtures/golden";
const CLIP = "test/fixtures/videos/car-turn-9f.mp4";
const STRATEGIES = [
  "source/per-frame/per-frame/none",
  "interpolated/shared/first/none",
  "content-flow/shared/per-frame/none",
];

const studyArgs = (out: string, extra: readonly string[] = [], controlnet = true): string[] => [
  "study",
  CLIP,
  "--model",
  `${GOLDEN}/tiny-sd`,
  ...(controlnet ? ["--controlnet", `${GOLDEN}/tiny-sd/controlnet`] : []),
  "--prompt",
  "a red car",
  "--size",
  "64x64",
  "--frames",
  "4",
  "--steps",
  "2",
  ...extra,
  "--out",
  out,
];

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir("steadyframe-study-"));
});
afterAll(() => cleanup());

describe("steadyframe study", () => {
  const out = (): string => join(dir, "study");

  it("renders every strategy and writes the grid, table, CSV, JSON and plot with one row each", async () => {
    const cli = captureIO();
    const code = await main(studyArgs(out(), ["--strategies", STRATEGIES.join(","), "--json"]), cli);
    expect(code, cli.err()).toBe(0);
    for (const [k, name] of STRATEGIES.entries())
      expect(cli.err()).toContain(`strategy ${k + 1}/3: ${name}\n`);

    const files = await readdir(out());
    for (const f of ["grid.mp4", "table.md", "metrics.csv", "metrics.json", "plot.svg", "renders"])
      expect(files).toContain(f);
    expect((await readdir(join(out(), "renders"))).sort()).toEqual([
      "content-flow_shared_per-frame_none",
      "interpolated_shared_first_none",
      "source_per-frame_per-frame_none",
    ]);

    const csv = (await readFile(join(out(), "metrics.csv"), "utf8")).trim().split("\n");
    expect(csv).toHaveLength(1 + STRATEGIES.length);
    expect(csv.slice(1).map((row) => row.split(",")[0])).toEqual(STRATEGIES);

    const table = await readFile(join(out(), "table.md"), "utf8");
    for (const name of STRATEGIES) expect(table).toContain(`| ${name} | 4`);

    const report = JSON.parse(await readFile(join(out(), "metrics.json"), "utf8")) as {
      entries: { name: string; frames: number; framesPerSourceFrame: number; secondsPerFrame: number }[];
      grid: { frames: number };
    };
    expect(report.entries.map((e) => e.name)).toEqual(STRATEGIES);
    expect(report.entries.map((e) => e.frames)).toEqual([4, 4, 4]);
    // The interpolated render has one in-between frame per source pair: 2 frames per source frame.
    expect(report.entries.map((e) => e.framesPerSourceFrame)).toEqual([1, 2, 1]);
    for (const e of report.entries) expect(e.secondsPerFrame).toBeGreaterThan(0);
    // The grid runs at the finest time base: 4 source frames x 2.
    expect(report.grid.frames).toBe(8);
    const grid = await probeVideo(join(out(), "grid.mp4"));
    expect(grid.frameCount).toBe(8);
    expect(grid.width).toBeGreaterThanOrEqual(4 * 64); // input + three strategies side by side

    const plot = await readFile(join(out(), "plot.svg"), "utf8");
    expect(plot.startsWith("<svg") || plot.startsWith("<?xml")).toBe(true);
    for (const name of STRATEGIES) expect(plot).toContain(name);

    const summary = JSON.parse(cli.out()) as { strategies: { name: string; rendered: string }[] };
    expect(summary.strategies.map((s) => [s.name, s.rendered])).toEqual(STRATEGIES.map((n) => [n, "now"]));
  });

  it("--resume keeps the finished renders and rewrites the report", async () => {
    const frame = join(out(), "renders", "interpolated_shared_first_none", "frame_000001.png");
    const before = (await stat(frame)).mtimeMs;
    const cli = captureIO();
    const code = await main(studyArgs(out(), ["--strategies", STRATEGIES.join(","), "--resume"]), cli);
    expect(code, cli.err()).toBe(0);
    for (const [k, name] of STRATEGIES.entries())
      expect(cli.err()).toContain(`strategy ${k + 1}/3: ${name} (finished, kept)`);
    expect(cli.err()).not.toMatch(/^frame \d/m);
    expect((await stat(frame)).mtimeMs).toBe(before);
    expect(cli.out()).toContain("3 strategies");
  });

  it("--resume with other options is refused, naming them", async () => {
    const cli = captureIO();
    const args = studyArgs(out(), ["--strategies", STRATEGIES.join(","), "--resume", "--seed", "5"]);
    expect(await main(args, cli)).toBe(2);
    expect(cli.err()).toMatch(/--resume.*seed/);
  });

  it("refuses a bad --strategies entry before anything is written", async () => {
    const bad = join(dir, "bad");
    const cli = captureIO();
    expect(await main(studyArgs(bad, ["--strategies", "source/shared/first,source/wobbly"]), cli)).toBe(2);
    expect(cli.err()).toContain("error [E_INVALID_ARGUMENT]");
    expect(cli.err()).toContain("--strategies");
    expect(cli.err()).toContain('"wobbly"');
    expect(cli.err()).not.toContain("loading");
    expect(await readdir(dir)).not.toContain("bad");
  });

  it("refuses motion-pipeline options (they are not strategies of the study) before anything is written", async () => {
    const bad = join(dir, "motion");
    const cli = captureIO();
    expect(
      await main(studyArgs(bad, ["--motion-adapter", `${GOLDEN}/unet_motion/motion_adapter`]), cli),
    ).toBe(2);
    expect(cli.err()).toContain("--motion-adapter");
    expect(await readdir(dir)).not.toContain("motion");
  });

  it("refuses a listed strategy that needs a ControlNet when none is given", async () => {
    const bad = join(dir, "bad");
    const cli = captureIO();
    const args = studyArgs(bad, ["--strategies", "content-flow,previous-output/shared/first"], false);
    expect(await main(args, cli)).toBe(2);
    expect(cli.err()).toMatch(/--strategies.*previous-output\/shared\/first\/none.*--controlnet/);
    expect(await readdir(dir)).not.toContain("bad");
  });

  it("without --strategies and --controlnet runs the default entries that need none, saying which were dropped", async () => {
    const only = join(dir, "default");
    const cli = captureIO();
    const code = await main(studyArgs(only, ["--frames", "2", "--steps", "1"], false), cli);
    expect(code, cli.err()).toBe(0);
    expect(cli.err()).toMatch(/warning: dropped source\/per-frame\/per-frame\/none, .*ControlNet/);
    expect(cli.err()).toContain("strategy 1/1: content-flow/shared/per-frame/none");
    const csv = (await readFile(join(only, "metrics.csv"), "utf8")).trim().split("\n");
    expect(csv.slice(1).map((row) => row.split(",")[0])).toEqual(["content-flow/shared/per-frame/none"]);
  });

  it("--clip adds CLIP-F and CLIP-T (against --prompt) to table.md, metrics.csv and metrics.json", async () => {
    const model = join(dir, "tiny-clip");
    await writeTinyClipModel(model);
    const out = join(dir, "with-clip");
    const cli = captureIO();
    const extra = [
      "--strategies",
      "content-flow/shared/per-frame",
      "--frames",
      "3",
      "--steps",
      "1",
      "--clip",
      model,
      "--json",
    ];
    const code = await main(studyArgs(out, extra, false), cli);
    expect(code, cli.err()).toBe(0);
    const table = await readFile(join(out, "table.md"), "utf8");
    expect(table).toContain("| CLIP-F ↑ | CLIP-T ↑ | s/frame ↓ |");
    expect(table).toContain("“a red car”");
    const csv = (await readFile(join(out, "metrics.csv"), "utf8")).trim().split("\n");
    expect(csv[0]).toContain(",clip_f,clip_t,seconds_per_frame");
    const report = JSON.parse(await readFile(join(out, "metrics.json"), "utf8")) as {
      input: { clipF: number };
      entries: { clipF: number; clipT: number }[];
    };
    for (const c of [report.entries[0]?.clipF, report.entries[0]?.clipT, report.input.clipF]) {
      expect(Number.isFinite(c)).toBe(true);
      expect(Math.abs(c ?? 2)).toBeLessThanOrEqual(1 + 1e-9);
    }
    const summary = JSON.parse(cli.out()) as { strategies: { clipF: number }[] };
    expect(summary.strategies[0]?.clipF).toBe(report.entries[0]?.clipF);
  });

  it("--clip without a CLIPModel folder is refused before anything is written", async () => {
    const bad = join(dir, "no-clip-model");
    const cli = captureIO();
    const args = studyArgs(
      bad,
      ["--strategies", "content-flow/shared/per-frame", "--clip", join(dir, "nothing")],
      false,
    );
    expect(await main(args, cli)).toBe(2);
    expect(cli.err()).toMatch(/--clip.*CLIPModel/);
    expect(await readdir(dir)).not.toContain("no-clip-model");
  });

  it("a --prompt-schedule scores each frame against the nearest key's prompt", () => {
    const { prompt, promptNote } = clipPrompt({ 0: "summer", 10: "winter" });
    if (typeof prompt !== "function") throw new Error("expected a prompt function");
    expect([0, 4, 5, 9, 10, 30].map(prompt)).toEqual([
      "summer",
      "summer",
      "winter",
      "winter",
      "winter",
      "winter",
    ]);
    expect(promptNote).toContain("0: summer | 10: winter");
    expect(clipPrompt("a red car")).toEqual({ prompt: "a red car" });
  });
});
