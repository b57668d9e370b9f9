/**
 * The script behind docs/images/atlas-edit-preview.png (docs/atlas.md, "Edit preview"): paints a
 * hand-edit on an exported atlas (the route that needs no SD weights) and composes the side-by-side
 * preview of original and re-rendered frames. Run from the repository root:
 *
 *   node --import tsx scripts/atlas-preview.ts paint ATLAS.png OUT.png [X Y]
 *     an RGBA edit of ATLAS.png's size: transparent (the frames keep their colours) but for a grid
 *     every 1/8 of the atlas (magenta rows, cyan columns, 60 % opaque) and an opaque yellow "NLA"
 *     mark on a dark box whose top-left corner is at (X, Y), fractions of the atlas (default 0.15 0.6)
 *   node --import tsx scripts/atlas-preview.ts compose ORIGINAL_DIR EDITED_DIR OUT.png [0,4,8]
 *     rows = the listed frames (PNG files of each folder in name order), columns = original | edited
 *   node --import tsx scripts/atlas-preview.ts overlay ATLAS.png EDIT.png OUT.png [SIDE]
 *     the atlas with the RGBA edit laid over it, scaled to SIDE x SIDE (default 256)
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";

type Rgb = readonly [number, number, number];

const GLYPHS: Readonly<Record<string, readonly string[]>> = {
  N: ["10001", "11001", "10101", "10011", "10001", "10001", "10001"],
  L: ["10000", "10000", "10000", "10000", "10000", "10000", "11111"],
  A: ["01110", "10001", "10001", "11111", "10001", "10001", "10001"],
};

async function paint(src: string, out: string, fx: number, fy: number): Promise<void> {
  const meta = await sharp(src).metadata();
  const r = meta.width ?? 0;
  if (r === 0 || meta.height !== r) throw new Error(`${src}: expected a square atlas PNG`);
  const rgba = new Uint8Array(r * r * 4);
  const put = (x: number, y: number, colour: Rgb, alpha: number): void => {
    if (x < 0 || y < 0 || x >= r || y >= r) return;
    rgba.set([...colour, Math.round(alpha * 255)], (y * r + x) * 4);
  };
  const step = Math.round(r / 8);
  const line = Math.max(2, Math.round(r / 128));
  for (let y = 0; y < r; y++)
    for (let x = 0; x < r; x++) {
      if (y % step < line) put(x, y, [255, 0, 200], 0.6);
      else if (x % step < line) put(x, y, [0, 220, 255], 0.6);
    }
  const s = Math.max(2, Math.round(r / 64)); // atlas pixels per font pixel
  const x0 = Math.round(fx * r);
  const y0 = Math.round(fy * r);
  for (let y = -s; y < 8 * s; y++) for (let x = -s; x < 18 * s; x++) put(x0 + x, y0 + y, [20, 20, 60], 1);
  [..."NLA"].forEach((ch, i) =>
    (GLYPHS[ch] ?? []).forEach((row, gy) =>
      [...row].forEach((bit, gx) => {
        if (bit !== "1") return;
        for (let dy = 0; dy < s; dy++)
          for (let dx = 0; dx < s; dx++) put(x0 + (i * 6 + gx) * s + dx, y0 + gy * s + dy, [255, 220, 0], 1);
      }),
    ),
  );
  await sharp(rgba, { raw: { width: r, height: r, channels: 4 } })
    .png()
    .toFile(out);
  console.log(`${out}: ${r}x${r} RGBA edit of ${src}`);
}

async function compose(origDir: string, editDir: string, out: string, list: string): Promise<void> {
  const pngs = async (dir: string): Promise<string[]> =>
    (await readdir(dir))
      .filter((n) => n.endsWith(".png"))
      .sort()
      .map((n) => join(dir, n));
  const [orig, edit] = [await pngs(origDir), await pngs(editDir)];
  const frames = list.split(",").map(Number);
  const first = orig[0];
  if (first === undefined) throw new Error(`${origDir}: no PNG frames`);
  const meta = await sharp(first).metadata();
  const [w, h, gap] = [meta.width ?? 0, meta.height ?? 0, 2];
  const tiles = frames.flatMap((f, row) => [
    { input: orig[f] ?? "", left: 0, top: row * (h + gap) },
    { input: edit[f] ?? "", left: w + gap, top: row * (h + gap) },
  ]);
  const canvas = {
    width: 2 * w + gap,
    height: frames.length * (h + gap) - gap,
    channels: 3 as const,
    background: "#ffffff",
  };
  await sharp({ create: canvas })
    .composite(tiles)
    .png({ compressionLevel: 9, palette: true, colours: 256 })
    .toFile(out);
  console.log(`${out}: frames ${list}, ${canvas.width}x${canvas.height}`);
}

async function overlay(atlas: string, edit: string, out: string, side: number): Promise<void> {
  await sharp(
    await sharp(atlas)
      .composite([{ input: edit }])
      .png()
      .toBuffer(),
  )
    .resize(side, side, { kernel: "lanczos3" })
    .png({ compressionLevel: 9, palette: true, colours: 256 })
    .toFile(out);
  console.log(`${out}: ${side}x${side}`);
}

const [command, ...args] = process.argv.slice(2);
if (command === "paint" && args.length >= 2)
  await paint(args[0] ?? "", args[1] ?? "", Number(args[2] ?? 0.15), Number(args[3] ?? 0.6));
else if (command === "compose" && args.length >= 3)
  await compose(args[0] ?? "", args[1] ?? "", args[2] ?? "", args[3] ?? "0,4,8");
else if (command === "overlay" && args.length >= 3)
  await overlay(args[0] ?? "", args[1] ?? "", args[2] ?? "", Number(args[3] ?? 256));
else {
  console.error(
    "usage: atlas-preview.ts paint ATLAS.png OUT.png [X Y] | compose ORIG/ EDITED/ OUT.png [0,4,8] | overlay ATLAS.png EDIT.png OUT.png [SIDE]",
  );
  process.exitCode = 2;
}
