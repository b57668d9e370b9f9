/**
 * Side-by-side and grid compositions of frames (source | controls | output) for comparison videos.
 * Gray and RGBA inputs become RGB; inputs of different sizes are scaled (bilinear) to a common
 * height (side by side) or fitted into equal cells (grid). `composeStreams` zips several frame
 * streams and stops at the shortest.
 */
import { InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";

export interface ComposeOptions {
  /** Pixels between panels (default 0). */
  readonly gap?: number;
  /** RGB colour of gaps and letterboxing (default black). */
  readonly background?: readonly [number, number, number];
}

export interface SideBySideOptions extends ComposeOptions {
  /** Common panel height (default: the first image's height). */
  readonly height?: number;
}

export interface GridOptions extends ComposeOptions {
  /** Panels per row (default: ceil(sqrt(n))). */
  readonly columns?: number;
  /** Cell size (default: the first image's size); each image is scaled to fit and centred. */
  readonly cellWidth?: number;
  readonly cellHeight?: number;
}

export type Layout =
  ({ readonly kind: "side-by-side" } & SideBySideOptions) | ({ readonly kind: "grid" } & GridOptions);

/** 1-channel -> RGB (replicated), RGBA -> RGB (alpha dropped), RGB unchanged. */
export function toRgb(img: Image): Image {
  if (img.channels === 3) return img;
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  const c = img.channels;
  for (let i = 0; i < n; i++) {
    const v = img.data[i * c] ?? 0;
    out[i * 3] = v;
    out[i * 3 + 1] = c === 1 ? v : (img.data[i * c + 1] ?? 0);
    out[i * 3 + 2] = c === 1 ? v : (img.data[i * c + 2] ?? 0);
  }
  return { width: img.width, height: img.height, channels: 3, data: out };
}

/** Bilinear resize of an RGB image (pixel centres aligned, edges clamped). */
export function resizeRgb(img: Image, width: number, height: number): Image {
  if (img.width === width && img.height === height) return img;
  const out = new Uint8Array(width * height * 3);
  const sx = img.width / width;
  const sy = img.height / height;
  for (let y = 0; y < height; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), img.height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, img.height - 1);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), img.width - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, img.width - 1);
      const wx = fx - x0;
      for (let ch = 0; ch < 3; ch++) {
        const p = (yy: number, xx: number): number => img.data[(yy * img.width + xx) * 3 + ch] ?? 0;
        const top = p(y0, x0) + (p(y0, x1) - p(y0, x0)) * wx;
        const bottom = p(y1, x0) + (p(y1, x1) - p(y1, x0)) * wx;
        out[(y * width + x) * 3 + ch] = Math.round(top + (bottom - top) * wy);
      }
    }
  }
  return { width, height, channels: 3, data: out };
}

function canvas(width: number, height: number, background: readonly [number, number, number]): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  if (background[0] !== 0 || background[1] !== 0 || background[2] !== 0) {
    for (let i = 0; i < width * height; i++) data.set(background, i * 3);
  }
  return data;
}

function blit(dst: Uint8Array, dstWidth: number, src: Image, left: number, top: number): void {
  for (let y = 0; y < src.height; y++) {
    const row = src.data.subarray(y * src.width * 3, (y + 1) * src.width * 3);
    dst.set(row, ((top + y) * dstWidth + left) * 3);
  }
}

function checkInputs(images: readonly Image[], gap: number): void {
  if (images.length === 0) throw new InvalidArgumentError("images", "at least one image", images.length);
  if (!Number.isInteger(gap) || gap < 0) throw new InvalidArgumentError("gap", "an integer >= 0", gap);
}

/** Panels left to right, each scaled to the same height (aspect kept). */
export function sideBySide(images: readonly Image[], options: SideBySideOptions = {}): Image {
  const gap = options.gap ?? 0;
  checkInputs(images, gap);
  const height = options.height ?? images[0]?.height ?? 1;
  if (!Number.isInteger(height) || height <= 0)
    throw new InvalidArgumentError("height", "a positive integer", height);
  const panels = images.map((img) =>
    resizeRgb(toRgb(img), Math.max(1, Math.round((img.width * height) / img.height)), height),
  );
  const width = panels.reduce((sum, p) => sum + p.width, 0) + gap * (panels.length - 1);
  const data = canvas(width, height, options.background ?? [0, 0, 0]);
  let left = 0;
  for (const panel of panels) {
    blit(data, width, panel, left, 0);
    left += panel.width + gap;
  }
  return { width, height, channels: 3, data };
}

/** Panels in rows of `columns` equal cells; each panel fitted into its cell and centred. */
export function grid(images: readonly Image[], options: GridOptions = {}): Image {
  const gap = options.gap ?? 0;
  checkInputs(images, gap);
  const columns = options.columns ?? Math.ceil(Math.sqrt(images.length));
  if (!Number.isInteger(columns) || columns <= 0)
    throw new InvalidArgumentError("columns", "a positive integer", columns);
  const cellWidth = options.cellWidth ?? images[0]?.width ?? 1;
  const cellHeight = options.cellHeight ?? images[0]?.height ?? 1;
  if (!Number.isInteger(cellWidth) || cellWidth <= 0)
    throw new InvalidArgumentError("cellWidth", "a positive integer", cellWidth);
  if (!Number.isInteger(cellHeight) || cellHeight <= 0) {
    throw new InvalidArgumentError("cellHeight", "a positive integer", cellHeight);
  }
  const cols = Math.min(columns, images.length);
  const rows = Math.ceil(images.length / cols);
  const width = cols * cellWidth + gap * (cols - 1);
  const height = rows * cellHeight + gap * (rows - 1);
  const data = canvas(width, height, options.background ?? [0, 0, 0]);
  images.forEach((img, i) => {
    const scale = Math.min(cellWidth / img.width, cellHeight / img.height);
    const w = Math.min(cellWidth, Math.max(1, Math.round(img.width * scale)));
    const h = Math.min(cellHeight, Math.max(1, Math.round(img.height * scale)));
    const panel = resizeRgb(toRgb(img), w, h);
    const left = (i % cols) * (cellWidth + gap) + Math.floor((cellWidth - w) / 2);
    const top = Math.floor(i / cols) * (cellHeight + gap) + Math.floor((cellHeight - h) / 2);
    blit(data, width, panel, left, top);
  });
  return { width, height, channels: 3, data };
}

/** Composes the i-th frame of every stream into one frame, until the shortest stream ends. */
export async function* composeStreams(
  streams: readonly (AsyncIterable<Image> | Iterable<Image>)[],
  layout: Layout,
): AsyncGenerator<Image, void, undefined> {
  if (streams.length === 0) throw new InvalidArgumentError("streams", "at least one frame stream", 0);
  const iterators = streams.map((s) =>
    Symbol.asyncIterator in s ? s[Symbol.asyncIterator]() : toAsync(s[Symbol.iterator]()),
  );
  try {
    for (;;) {
      const results = await Promise.all(iterators.map((it) => it.next()));
      const frames: Image[] = [];
      for (const r of results) {
        if (r.done) return;
        frames.push(r.value);
      }
      yield layout.kind === "grid" ? grid(frames, layout) : sideBySide(frames, layout);
    }
  } finally {
    await Promise.all(iterators.map((it) => it.return?.()));
  }
}

function toAsync(it: Iterator<Image>): AsyncIterator<Image> {
  return {
    next: () => Promise.resolve(it.next()),
    return: () => Promise.resolve(it.return?.() ?? { done: true, value: undefined }),
  };
}
