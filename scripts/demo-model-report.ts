/**
 * The demo model's report (issue 8): does a model Steadyframe trained itself follow the edges of a
 * clip it never saw? For the held-out clip (man-skiing, not in the recipe) and a training clip
 * (car-turn), it renders every frame from the clip's own Canny edges with the demo model and with
 * the same architecture at its initial (random) weights, measures edge F1 of each render against the
 * control (the study's metric), and writes a sample grid (source | control | demo | random) as PNG.
 *
 *   node --import tsx scripts/demo-model-report.ts [--model models/steadyframe-demo]
 *        [--out out/demo-report] [--frames 8] [--steps 20] [--guidance 3] [--seed 42]
 *
 * Writes OUT/report.md and OUT/report.json (edge F1 per clip and model), OUT/grid.jpg, and the
 * studies it ran (OUT/<clip>-<model>/). Uses the CLI (`steadyframe study`) for every render.
 */
import { execFileSync } from "node:child_process";
import { mkdir, readFile, readdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { RECIPES, REPOSITORY_ROOT } from "../src/train/loop/recipes.js";
import { writeInitialCopy } from "../src/train/unet-init.js";
import { writeFileAtomic } from "../src/util/atomic-write.js";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "models/steadyframe-demo" },
    out: { type: "string", default: "out/demo-report" },
    frames: { type: "string", default: "8" },
    steps: { type: "string", default: "20" },
    guidance: { type: "string", default: "3" },
    seed: { type: "string", default: "42" },
  },
});
const model = resolve(values.model);
const out = resolve(values.out);

const CLIPS = [
  {
    name: "man-skiing",
    seen: false,
    path: "data/demo-clips/man-skiing-128.mp4",
    prompt: "a man skiing down a snowy slope",
  },
  {
    name: "car-turn",
    seen: true,
    path: "data/demo-clips/car-turn-128.mp4",
    prompt: "a car turning on a mountain road",
  },
];

function study(modelDir: string, clip: (typeof CLIPS)[number], dir: string): number {
  const cli = join(REPOSITORY_ROOT, "src", "cli", "main.ts");
  execFileSync(
    process.execPath,
    [
      "--import",
      "tsx",
      cli,
      "study",
      clip.path,
      "--model",
      modelDir,
      "--controlnet",
      join(modelDir, "controlnet"),
      "--prompt",
      clip.prompt,
      "--size",
      "128x128",
      "--frames",
      values.frames,
      "--steps",
      values.steps,
      "--guidance",
      values.guidance,
      "--seed",
      values.seed,
      "--strategies",
      "source/per-frame/per-frame/none",
      "--out",
      dir,
    ],
    { cwd: REPOSITORY_ROOT, stdio: ["ignore", "ignore", "inherit"] },
  );
  return 0;
}

async function edgeF1(dir: string): Promise<number> {
  const m = JSON.parse(await readFile(join(dir, "metrics.json"), "utf8")) as {
    entries: { edgeF1: number }[];
  };
  return m.entries[0]?.edgeF1 ?? NaN;
}

/** Four frames of a folder of PNGs (or one image per file list) as one 4 x 128 strip. */
async function strip(files: readonly string[]): Promise<Buffer> {
  const tiles = await Promise.all(
    files.map(async (f, i) => ({
      input: await sharp(f).resize(128, 128, { fit: "cover" }).removeAlpha().png().toBuffer(),
      left: i * 130,
      top: 0,
    })),
  );
  return sharp({ create: { width: 4 * 130 - 2, height: 128, channels: 3, background: "#ffffff" } })
    .composite(tiles)
    .png()
    .toBuffer();
}

const pngs = async (dir: string): Promise<string[]> =>
  (await readdir(dir))
    .filter((f) => f.endsWith(".png"))
    .sort()
    .map((f) => join(dir, f));

await mkdir(out, { recursive: true });
const twin = join(out, "random-weights");
await writeInitialCopy(model, twin, RECIPES["demo"]?.seed ?? 0n);
const rows: { clip: string; seen: boolean; demo: number; random: number }[] = [];
const strips: Buffer[] = [];
for (const clip of CLIPS) {
  const demoDir = join(out, `${clip.name}-demo`);
  const randomDir = join(out, `${clip.name}-random`);
  for (const d of [demoDir, randomDir]) await rm(d, { recursive: true, force: true });
  study(model, clip, demoDir);
  study(twin, clip, randomDir);
  rows.push({
    clip: clip.name,
    seen: clip.seen,
    demo: await edgeF1(demoDir),
    random: await edgeF1(randomDir),
  });
  const render = join(demoDir, "renders", "source_per-frame_per-frame_none");
  const controls = await pngs(join(render, "controls", "c0"));
  const frames = await pngs(render);
  const random = await pngs(join(randomDir, "renders", "source_per-frame_per-frame_none"));
  const picks = [0, 1, 2, 3].map((i) =>
    Math.min(frames.length - 1, Math.round((i * (frames.length - 1)) / 3)),
  );
  const sourceDir = join(out, `${clip.name}-source`);
  await rm(sourceDir, { recursive: true, force: true });
  await mkdir(sourceDir);
  execFileSync("ffmpeg", [
    "-v",
    "error",
    "-i",
    clip.path,
    "-frames:v",
    values.frames,
    join(sourceDir, "f_%03d.png"),
  ]);
  const sources = await pngs(sourceDir);
  for (const list of [sources, controls, frames, random]) {
    strips.push(await strip(picks.map((i) => list[i] ?? list[0] ?? "")));
  }
}
const grid = await sharp({
  create: { width: 4 * 130 - 2, height: strips.length * 130 - 2, channels: 3, background: "#ffffff" },
})
  .composite(strips.map((input, i) => ({ input, left: 0, top: i * 130 })))
  .jpeg({ quality: 88 })
  .toBuffer();
await writeFileAtomic(join(out, "grid.jpg"), grid);
const table = [
  `| clip | in the training set | edge F1, demo model | edge F1, random weights |`,
  `|---|---|---:|---:|`,
  ...rows.map(
    (r) =>
      `| ${r.clip} | ${r.seen ? "yes" : "no (held out)"} | ${r.demo.toFixed(3)} | ${r.random.toFixed(3)} |`,
  ),
].join("\n");
await writeFileAtomic(
  join(out, "report.md"),
  `# Demo model: edge F1 against the control\n\n${table}\n\n` +
    `${values.frames} frames per clip at 128x128, ${values.steps} DDIM steps, guidance ${values.guidance}, ` +
    `seed ${values.seed}, per-frame control from the clip's own Canny edges (100, 200).\n` +
    `grid.jpg rows per clip: source, Canny control, demo model, random weights.\n`,
);
await writeFileAtomic(join(out, "report.json"), `${JSON.stringify({ rows, options: values }, null, 2)}\n`);
process.stdout.write(`${table}\nwrote ${join(out, "report.md")}, ${join(out, "grid.jpg")}\n`);
