/**
 * Named tiles for the study's grid video: each tile is a caption bar (white text on dark gray, drawn
 * once per name by sharp's SVG renderer, librsvg) above the frame. Without a usable font the text
 * renders as nothing; that is detected (no opaque pixel in the rendered text) and the tiles are then
 * left unlabelled, which the report states.
 */
import sharp from "sharp";
import type { Image } from "../image.js";
import { escapeXml } from "./plot-svg.js";

const BAR_COLOR = [40, 40, 40] as const;

/** Caption bar height for tiles `width` wide: about a twelfth of the tile height, 12 to 32 px, even. */
export function captionHeight(tileHeight: number): number {
  const h = Math.min(32, Math.max(12, Math.round(tileHeight / 12)));
  return h + (h % 2);
}

async function renderText(name: string, width: number, height: number): Promise<Uint8Array> {
  const size = Math.round(height * 0.72);
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<text x="${Math.max(2, Math.round(height / 4))}" y="${Math.round(height * 0.78)}" ` +
    `font-family="DejaVu Sans, Arial, sans-serif" font-size="${size}" fill="#fff">${escapeXml(name)}</text></svg>`;
  const { data, info } = await sharp(Buffer.from(svg))
    .ensureAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width !== width || info.height !== height || info.channels !== 4) return new Uint8Array(0);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Caption bars (RGB, `width` x `height`) for `names`, or undefined when text cannot be drawn
 * (sharp fails on the SVG, or no name renders a single visible pixel: no font).
 */
export async function renderCaptions(
  names: readonly string[],
  width: number,
  height: number,
): Promise<Image[] | undefined> {
  const bars: Image[] = [];
  let visible = false;
  for (const name of names) {
    let rgba: Uint8Array;
    try {
      rgba = await renderText(name, width, height);
    } catch {
      return undefined;
    }
    if (rgba.length !== width * height * 4) return undefined;
    const rgb = new Uint8Array(width * height * 3);
    for (let p = 0; p < width * height; p++) {
      const a = (rgba[p * 4 + 3] ?? 0) / 255;
      if (a > 0) visible = true;
      for (let c = 0; c < 3; c++) {
        const fg = rgba[p * 4 + c] ?? 0;
        rgb[p * 3 + c] = Math.round(fg * a + (BAR_COLOR[c] ?? 0) * (1 - a));
      }
    }
    bars.push({ width, height, channels: 3, data: rgb });
  }
  return visible || names.length === 0 ? bars : undefined;
}

/** The caption bar stacked above the frame (both RGB, same width). */
export function captioned(caption: Image, frame: Image): Image {
  const data = new Uint8Array(frame.width * (caption.height + frame.height) * 3);
  data.set(caption.data, 0);
  data.set(frame.data, caption.data.length);
  return { width: frame.width, height: caption.height + frame.height, channels: 3, data };
}
