/**
 * Rendering and edit propagation of Neural Layered Atlases (ykasten/layered-neural-atlases
 * evaluate.py and only_edit.py): the fitted nets evaluated at every pixel (UV maps, alpha, the
 * reconstruction), the background crop (`get_mapping_area`: bg uv·0.5 − 0.5 of the pixels whose RAW
 * alpha output is < 0.5, a square of side max(width, height) anchored at (minx, miny)), the atlas
 * images (`get_high_res_texture`: texel (i, j) = atlas(u_j, v_i) on torch.linspace grids), the
 * lookup of colours at uv (`get_colors`: texel coordinate (u − min)·R/(max − min), bilinear with
 * clipped indices, a pixel is "relevant" when floor and ceil of both coordinates lie in [0, R)),
 * and Eqs. 15-16 (`apply_edit`): c_f = e_f·a_f + I·(1 − a_f), c_b likewise, out = α·c_f + (1 − α)·c_b
 * over the ORIGINAL frame colour I.
 */
import { throwIfAborted } from "../errors.js";
import { GraphBuilder } from "../graph/builder.js";
import * as op from "../graph/ops/index.js";
import type { Session } from "../runtime/session.js";
import { type HostTensor, tensor, toFloat32 } from "../tensor.js";
import { openGraphSession, type GraphSession } from "../train/graph-session.js";
import {
  type AtlasNets,
  type NetName,
  imlp,
  mapAlpha,
  mapColour,
  parameterInputs,
  parameterShapes,
} from "./networks.js";

const f32 = Math.fround;

/** Per-pixel maps of every frame, frame-major. */
export interface PixelMaps {
  readonly frames: number;
  readonly width: number;
  readonly height: number;
  /** [N, H, W, 2] M_f output (tanh range). */
  readonly uv1: Float32Array;
  /** [N, H, W, 2] M_b output. */
  readonly uv2: Float32Array;
  /** [N, H, W] raw tanh output of the alpha net. */
  readonly alphaRaw: Float32Array;
  /** [N, H, W] mapped alpha in [0.001, 0.991]. */
  readonly alpha: Float32Array;
  /** [N, H, W, 3] reconstruction from the networks. */
  readonly recon: Float32Array;
}

/** A square atlas crop (atlas coordinates). */
export interface AtlasCrop {
  readonly minx: number;
  readonly miny: number;
  readonly edge: number;
}

export const FOREGROUND_CROP: AtlasCrop = { minx: 0, miny: 0, edge: 1 };

/** Inference graph over `rows` points (a symbolic row count): all nets at `xyt` [rows, 3]. */
export function buildPixelGraph(nets: AtlasNets): GraphBuilder {
  const g = new GraphBuilder({ name: "nla_pixels" });
  const params = parameterInputs(g, nets);
  const xyt = g.input("xyt", "float32", ["rows", 3]);
  const uv1 = imlp(g, nets.mapping1, "mapping1", params, xyt).output;
  const uv2 = imlp(g, nets.mapping2, "mapping2", params, xyt).output;
  const raw = imlp(g, nets.alpha, "alpha", params, xyt).output;
  const alpha = mapAlpha(g, raw);
  const fg = mapColour(g, imlp(g, nets.atlas, "atlas", params, op.Add(g, op.Mul(g, uv1, 0.5), 0.5)).output);
  const bg = mapColour(g, imlp(g, nets.atlas, "atlas", params, op.Sub(g, op.Mul(g, uv2, 0.5), 0.5)).output);
  const rgb = op.Add(g, op.Mul(g, fg, alpha), op.Mul(g, bg, op.Sub(g, 1, alpha)));
  for (const [name, v] of [
    ["uv1", uv1],
    ["uv2", uv2],
    ["alpha_raw", raw],
    ["alpha", alpha],
    ["rgb", rgb],
  ] as const)
    g.output(v, name);
  return g;
}

/** Inference graph of the atlas net alone: `uv` [rows, 2] -> colour in [0, 1]. */
export function buildAtlasGraph(nets: AtlasNets): GraphBuilder {
  const g = new GraphBuilder({ name: "nla_atlas" });
  const params = parameterInputs(g, nets, ["atlas"]);
  const uv = g.input("uv", "float32", ["rows", 2]);
  g.output(mapColour(g, imlp(g, nets.atlas, "atlas", params, uv).output), "colour");
  return g;
}

/** Parameter feeds of the named nets from a name -> data map. */
export function parameterFeeds(
  nets: AtlasNets,
  params: ReadonlyMap<string, Float32Array>,
  only: readonly NetName[] = ["mapping1", "mapping2", "alpha", "atlas"],
): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const n of only)
    for (const [name, shape] of parameterShapes(n, nets[n])) {
      const data = params.get(name);
      if (!data) throw new Error(`internal: parameter ${name} missing`);
      feeds[name] = tensor("float32", shape, data);
    }
  return feeds;
}

/** An opened pixel graph and atlas graph for one model. */
export interface AtlasRenderer {
  readonly nets: AtlasNets;
  points(xyt: Float32Array): Promise<Record<string, Float32Array>>;
  atlas(uv: Float32Array): Promise<Float32Array>;
  release(): Promise<void>;
}

export async function openRenderer(
  nets: AtlasNets,
  params: ReadonlyMap<string, Float32Array>,
  options: { readonly threads?: number } = {},
): Promise<AtlasRenderer> {
  const sessions: GraphSession[] = [];
  const sessionOptions = options.threads === undefined ? {} : { intraOpNumThreads: options.threads };
  try {
    const pixel = await openGraphSession(buildPixelGraph(nets), sessionOptions);
    sessions.push(pixel);
    const atlasS = await openGraphSession(buildAtlasGraph(nets), sessionOptions);
    sessions.push(atlasS);
    const all = parameterFeeds(nets, params);
    const atlasOnly = parameterFeeds(nets, params, ["atlas"]);
    const chunked = async (
      s: Session | GraphSession,
      input: string,
      width: number,
      data: Float32Array,
      base: Record<string, HostTensor>,
    ): Promise<Record<string, Float32Array>> => {
      const rows = data.length / width;
      const chunk = 65536;
      const parts: Record<string, Float32Array[]> = {};
      for (let r = 0; r < rows; r += chunk) {
        const n = Math.min(chunk, rows - r);
        const out = await s.run({
          ...base,
          [input]: tensor("float32", [n, width], data.subarray(r * width, (r + n) * width)),
        });
        for (const [k, v] of Object.entries(out)) (parts[k] ??= []).push(toFloat32(v).data);
      }
      const joined: Record<string, Float32Array> = {};
      for (const [k, list] of Object.entries(parts)) {
        const total = list.reduce((a, b) => a + b.length, 0);
        const arr = new Float32Array(total);
        let o = 0;
        for (const p of list) {
          arr.set(p, o);
          o += p.length;
        }
        joined[k] = arr;
      }
      return joined;
    };
    return {
      nets,
      points: (xyt) => chunked(pixel, "xyt", 3, xyt, all),
      atlas: async (uv) => (await chunked(atlasS, "uv", 2, uv, atlasOnly)).colour ?? new Float32Array(0),
      release: async () => {
        for (const s of sessions) await s.release();
      },
    };
  } catch (error) {
    for (const s of sessions) await s.release();
    throw error;
  }
}

/** evaluate.py's per-pixel coordinates of frame f: x, y / (D/2) − 1 in float32, t = f32(f/(N/2) − 1). */
export function frameXyt(width: number, height: number, frame: number, frames: number): Float32Array {
  const half = f32(Math.max(width, height) / 2);
  const t = f32(frame / (frames / 2) - 1);
  const out = new Float32Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const k = (y * width + x) * 3;
      out[k] = f32(f32(x / half) - 1);
      out[k + 1] = f32(f32(y / half) - 1);
      out[k + 2] = t;
    }
  return out;
}

/** The nets at every pixel of every frame. */
export async function evaluatePixels(
  renderer: AtlasRenderer,
  geometry: { readonly width: number; readonly height: number; readonly frames: number },
  signal?: AbortSignal,
): Promise<PixelMaps> {
  const { width: w, height: h, frames: n } = geometry;
  const px = w * h;
  const maps = {
    uv1: new Float32Array(n * px * 2),
    uv2: new Float32Array(n * px * 2),
    alphaRaw: new Float32Array(n * px),
    alpha: new Float32Array(n * px),
    recon: new Float32Array(n * px * 3),
  };
  for (let f = 0; f < n; f++) {
    throwIfAborted(signal, `rendering the fitted maps (frame ${f + 1} of ${n})`);
    const out = await renderer.points(frameXyt(w, h, f, n));
    maps.uv1.set(out.uv1 ?? [], f * px * 2);
    maps.uv2.set(out.uv2 ?? [], f * px * 2);
    maps.alphaRaw.set(out.alpha_raw ?? [], f * px);
    maps.alpha.set(out.alpha ?? [], f * px);
    maps.recon.set(out.rgb ?? [], f * px * 3);
  }
  return { frames: n, width: w, height: h, ...maps };
}

/**
 * `get_mapping_area(mapping2, alpha, all pixels, invert_alpha=True)`: the background crop.
 * Returns the crop and (maxx, maxy).
 */
export function backgroundCrop(
  maps: PixelMaps,
): AtlasCrop & { readonly maxx: number; readonly maxy: number } {
  let minx = 1;
  let miny = 1;
  let maxx = -1;
  let maxy = -1;
  for (let k = 0; k < maps.alphaRaw.length; k++) {
    if (!(-(maps.alphaRaw[k] ?? 0) > -0.5)) continue;
    const u = f32(f32((maps.uv2[2 * k] ?? 0) * 0.5) - 0.5);
    const v = f32(f32((maps.uv2[2 * k + 1] ?? 0) * 0.5) - 0.5);
    minx = Math.min(minx, u);
    miny = Math.min(miny, v);
    maxx = Math.max(maxx, u);
    maxy = Math.max(maxy, v);
  }
  maxx = Math.min(maxx, 1);
  maxy = Math.min(maxy, 1);
  minx = Math.max(minx, -1);
  miny = Math.max(miny, -1);
  const edge = Math.max(f32(maxx - minx), f32(maxy - miny));
  return { minx, miny, edge, maxx, maxy };
}

/** torch.linspace(start, end, steps) in float32 (upper half computed from the end point). */
export function linspace32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++)
    out[i] = i < half ? f32(s + f32(step * i)) : f32(e - f32(step * (steps - i - 1)));
  return out;
}

/** `get_high_res_texture(R, crop)`: [R, R, 3] colours in [0, 1] (row = v, column = u). */
export async function atlasTexture(
  renderer: AtlasRenderer,
  resolution: number,
  crop: AtlasCrop,
): Promise<Float32Array> {
  const us = linspace32(crop.minx, f32(crop.minx + crop.edge), resolution);
  const vs = linspace32(crop.miny, f32(crop.miny + crop.edge), resolution);
  const uv = new Float32Array(resolution * resolution * 2);
  for (let i = 0; i < resolution; i++)
    for (let j = 0; j < resolution; j++) {
      uv[(i * resolution + j) * 2] = us[j] ?? 0;
      uv[(i * resolution + j) * 2 + 1] = vs[i] ?? 0;
    }
  return renderer.atlas(uv);
}

/** A float image [R, R, channels] over a crop. */
export interface AtlasImage {
  readonly resolution: number;
  readonly channels: number;
  readonly data: ArrayLike<number>;
  readonly crop: AtlasCrop;
}

/**
 * `get_colors`: samples `image` at atlas points (u, v); returns colours (float64, `channels` per
 * point, 0 where not relevant) and the relevant flags.
 */
export function sampleAtlas(
  image: AtlasImage,
  u: ArrayLike<number>,
  v: ArrayLike<number>,
): { colours: Float64Array; relevant: Uint8Array } {
  const r = image.resolution;
  const c = image.channels;
  const { minx, miny, edge } = image.crop;
  // fg: R / (1 - 0) in float64; bg: R / float32 edge in float32
  const size = image.crop === FOREGROUND_CROP ? r / edge : f32(r / f32(f32(minx + edge) - minx));
  const n = u.length;
  const colours = new Float64Array(n * c);
  const relevant = new Uint8Array(n);
  const clip = (i: number): number => Math.min(r - 1, Math.max(0, i));
  for (let k = 0; k < n; k++) {
    const x = f32(f32((u[k] ?? 0) - minx) * size);
    const y = f32(f32((v[k] ?? 0) - miny) * size);
    const ok =
      Math.ceil(y) >= 0 &&
      Math.floor(y) >= 0 &&
      Math.ceil(x) >= 0 &&
      Math.floor(x) >= 0 &&
      Math.ceil(y) < r &&
      Math.floor(y) < r &&
      Math.ceil(x) < r &&
      Math.floor(x) < r;
    if (!ok) continue;
    relevant[k] = 1;
    const x0 = Math.floor(x);
    const y0 = Math.floor(y);
    const x1 = x0 + 1;
    const y1 = y0 + 1;
    const wa = (x1 - x) * (y1 - y);
    const wb = (x1 - x) * (y - y0);
    const wc = (x - x0) * (y1 - y);
    const wd = (x - x0) * (y - y0);
    const at = (yy: number, xx: number, ch: number): number =>
      image.data[(clip(yy) * r + clip(xx)) * c + ch] ?? 0;
    for (let ch = 0; ch < c; ch++)
      colours[k * c + ch] =
        at(y0, x0, ch) * wa + at(y1, x0, ch) * wb + at(y0, x1, ch) * wc + at(y1, x1, ch) * wd;
  }
  return { colours, relevant };
}

/** Atlas points of the layer: fg uv·0.5 + 0.5, bg uv·0.5 − 0.5 (float32). */
export function layerPoints(uv: Float32Array, layer: "fg" | "bg"): { u: Float32Array; v: Float32Array } {
  const n = uv.length / 2;
  const u = new Float32Array(n);
  const v = new Float32Array(n);
  const shift = layer === "fg" ? 0.5 : -0.5;
  for (let k = 0; k < n; k++) {
    u[k] = f32(f32((uv[2 * k] ?? 0) * 0.5) + shift);
    v[k] = f32(f32((uv[2 * k + 1] ?? 0) * 0.5) + shift);
  }
  return { u, v };
}

/** evaluate.py's reconstruction from the atlas images (0 where neither layer is relevant). */
export function reconstructFromAtlases(
  maps: PixelMaps,
  fg: AtlasImage,
  bg: AtlasImage,
): { rgb: Float64Array; relevantFg: Uint8Array; relevantBg: Uint8Array } {
  const a = layerPoints(maps.uv1, "fg");
  const b = layerPoints(maps.uv2, "bg");
  const sf = sampleAtlas(fg, a.u, a.v);
  const sb = sampleAtlas(bg, b.u, b.v);
  const n = maps.alpha.length;
  const rgb = new Float64Array(n * 3);
  for (let k = 0; k < n; k++) {
    const al = maps.alpha[k] ?? 0;
    for (let c = 0; c < 3; c++) {
      let v = 0;
      if (sf.relevant[k]) v += (sf.colours[k * fg.channels + c] ?? 0) * al;
      if (sb.relevant[k]) v += (sb.colours[k * bg.channels + c] ?? 0) * f32(1 - al);
      rgb[k * 3 + c] = v;
    }
  }
  return { rgb, relevantFg: sf.relevant, relevantBg: sb.relevant };
}

/**
 * only_edit.apply_edit (Eqs. 15-16): RGBA edit layers over the fg / bg crops propagated to every
 * frame, composited over the original frames `rgb` ([N, H, W, 3] in [0, 1]). Returns [N, H, W, 3].
 */
export function applyEdit(
  maps: PixelMaps,
  rgb: ArrayLike<number>,
  fgEdit: AtlasImage | undefined,
  bgEdit: AtlasImage | undefined,
): Float64Array {
  const n = maps.alpha.length;
  const sample = (img: AtlasImage | undefined, uv: Float32Array, layer: "fg" | "bg"): Float64Array => {
    const out = new Float64Array(n * 4);
    if (!img) return out;
    const p = layerPoints(uv, layer);
    const s = sampleAtlas(img, p.u, p.v);
    for (let k = 0; k < n; k++) {
      if (!s.relevant[k]) continue;
      for (let c = 0; c < 4; c++)
        out[k * 4 + c] = img.channels === 4 || c < 3 ? (s.colours[k * img.channels + c] ?? 0) : 1;
    }
    return out;
  };
  const ef = sample(fgEdit, maps.uv1, "fg");
  const eb = sample(bgEdit, maps.uv2, "bg");
  const out = new Float64Array(n * 3);
  for (let k = 0; k < n; k++) {
    const al = maps.alpha[k] ?? 0;
    const af = ef[k * 4 + 3] ?? 0;
    const ab = eb[k * 4 + 3] ?? 0;
    for (let c = 0; c < 3; c++) {
      const i = rgb[k * 3 + c] ?? 0;
      const cf = (ef[k * 4 + c] ?? 0) * af + i * (1 - af);
      const cb = (eb[k * 4 + c] ?? 0) * ab + i * (1 - ab);
      out[k * 3 + c] = cf * al + (1 - al) * cb;
    }
  }
  return out;
}

/**
 * evaluate.py's per-pixel rigidity maps (`get_rigidity_loss(..., return_all=True)` at every pixel of
 * every frame) for both mappings: [N·H·W] each. The shifted points use t = f/(N/2) − 1 in float32.
 */
export async function rigidityMaps(
  renderer: AtlasRenderer,
  maps: PixelMaps,
  uvMappingScale: number,
  delta: number,
): Promise<[Float64Array, Float64Array]> {
  const { width: w, height: h, frames: n } = maps;
  const px = w * h;
  const half = f32(Math.max(w, h) / 2);
  const out: [Float64Array, Float64Array] = [new Float64Array(n * px), new Float64Array(n * px)];
  for (let f = 0; f < n; f++) {
    const t = f32(f32(f / f32(n / 2)) - 1);
    const pts = new Float32Array(2 * px * 3);
    for (let k = 0; k < px; k++) {
      const x = k % w;
      const y = Math.floor(k / w);
      pts.set([f32(f32(x / half) - 1), f32(f32((y - delta) / half) - 1), t], k * 3);
      pts.set([f32(f32((x - delta) / half) - 1), f32(f32(y / half) - 1), t], (px + k) * 3);
    }
    const res = await renderer.points(pts);
    ([res.uv1, res.uv2] as const).forEach((shifted, layer) => {
      const uv = layer === 0 ? maps.uv1 : maps.uv2;
      const target = out[layer === 0 ? 0 : 1];
      for (let k = 0; k < px; k++) {
        const q = (f * px + k) * 2;
        const scale = Math.max(w, h) / 2 / uvMappingScale / delta;
        const duDy = ((uv[q] ?? 0) - (shifted?.[2 * k] ?? 0)) * scale;
        const dvDy = ((uv[q + 1] ?? 0) - (shifted?.[2 * k + 1] ?? 0)) * scale;
        const duDx = ((uv[q] ?? 0) - (shifted?.[2 * (px + k)] ?? 0)) * scale;
        const dvDx = ((uv[q + 1] ?? 0) - (shifted?.[2 * (px + k) + 1] ?? 0)) * scale;
        const j00 = duDx * duDx + dvDx * dvDx;
        const j01 = duDx * duDy + dvDx * dvDy;
        const j11 = duDy * duDy + dvDy * dvDy;
        const a = j00 + 0.001;
        const d = j11 + 0.001;
        const det = a * d - j01 * j01;
        target[f * px + k] =
          Math.sqrt(j00 * j00 + 2 * j01 * j01 + j11 * j11) + Math.sqrt(d * d + 2 * j01 * j01 + a * a) / det;
      }
    });
  }
  return out;
}
