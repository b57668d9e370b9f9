/**
 * Host-side data of Neural Layered Atlases fitting, as unwrap_utils.load_input_data and train.py
 * prepare it (ykasten/layered-neural-atlases): frames in [0, 1] (float32 of uint8/255), the +1 px
 * colour differences (zero on the last column / row), bootstrapping masks, forward/backward flows
 * with their consistency masks (`||F12(p) + F21(p + F12(p))|| < 1`, F21 sampled with cv2.remap
 * INTER_LINEAR, border 0), and the per-iteration batch: `torch.randint(N·H·W, (B, 1))` indices into
 * jif_all (k = f·H·W + y·W + x) turned into the step graph's feeds (./losses.ts), with every
 * coordinate normalised in float32 in the release's op order.
 */
import { InvalidArgumentError } from "../errors.js";
import type { FlowField } from "../control/flow.js";
import { loadCv } from "../control/opencv.js";
import { warpFloatsSync } from "../control/warp.js";
import { MT19937 } from "../random/mt19937.js";
import { type HostTensor, tensor } from "../tensor.js";
import { ALPHA_BLOCKS, type AtlasLossConfig, type MapBlock, mapBlocks } from "./losses.js";

const f32 = Math.fround;

/** Everything the losses read, frame-major. */
export interface AtlasData {
  readonly frames: number;
  readonly width: number;
  readonly height: number;
  /** max(W, H). */
  readonly largerDim: number;
  /** [N, H, W, 3] in [0, 1]. */
  readonly rgb: Float32Array;
  /** [N, H, W, 3] I(x+1) − I(x), 0 on the last column. */
  readonly dx: Float32Array;
  /** [N, H, W, 3] I(y+1) − I(y), 0 on the last row. */
  readonly dy: Float32Array;
  /** [N, H, W] bootstrapping target in [0, 1]. */
  readonly mask: Float32Array;
  /** [N−1] flow i → i+1. */
  readonly flowFw: readonly FlowField[];
  /** [N−1] flow i+1 → i. */
  readonly flowBw: readonly FlowField[];
  /** [N, H, W] 1 where the forward flow of frame f is consistent (last frame: 0). */
  readonly maskFw: Uint8Array;
  /** [N, H, W] 1 where the backward flow into frame f−1 is consistent (frame 0: 0). */
  readonly maskBw: Uint8Array;
}

/** `compute_consistency(flow12, flow21)`: per-pixel ||F12 + remap(F21, p + F12)|| (float32). */
export async function flowResidual(flow12: FlowField, flow21: FlowField): Promise<Float32Array> {
  const cv = await loadCv();
  const { width, height } = flow12;
  const warped = warpFloatsSync(cv, flow21.data, { width, height, channels: 2 }, flow12, {
    interpolation: "linear",
    borderMode: "constant",
    borderValue: 0,
  });
  const out = new Float32Array(width * height);
  for (let k = 0; k < out.length; k++) {
    const a = f32((flow12.data[2 * k] ?? 0) + (warped[2 * k] ?? 0));
    const b = f32((flow12.data[2 * k + 1] ?? 0) + (warped[2 * k + 1] ?? 0));
    out[k] = f32(Math.sqrt(f32(f32(a * a) + f32(b * b))));
  }
  return out;
}

export interface AtlasDataSource {
  readonly width: number;
  readonly height: number;
  /** [N, H, W, 3] uint8 RGB. */
  readonly frames: Uint8Array;
  readonly count: number;
  /** (optional) [N, H, W] uint8 0..255 masks; absent = all zeros (everything background). */
  readonly masks?: Uint8Array;
  readonly flowFw: readonly FlowField[];
  readonly flowBw: readonly FlowField[];
}

/** Builds {@link AtlasData}; flows must be [N−1] fields of the frame size. */
export async function prepareAtlasData(src: AtlasDataSource): Promise<AtlasData> {
  const { width: w, height: h, count: n } = src;
  const px = w * h;
  if (src.frames.length !== n * px * 3)
    throw new InvalidArgumentError(
      "frames",
      `${n * px * 3} bytes ([${n}, ${h}, ${w}, 3])`,
      src.frames.length,
    );
  for (const [name, flows] of [
    ["forward flows", src.flowFw],
    ["backward flows", src.flowBw],
  ] as const) {
    if (flows.length !== n - 1)
      throw new InvalidArgumentError(name, `${n - 1} flow fields (one per consecutive pair)`, flows.length, {
        hint: "compute the flows of every consecutive frame pair at the working size",
      });
    flows.forEach((fl, i) => {
      if (fl.width !== w || fl.height !== h || fl.data.length !== px * 2)
        throw new InvalidArgumentError(
          `${name}[${i}]`,
          `a ${w}x${h}x2 flow field`,
          `${fl.width}x${fl.height}`,
          {
            hint: "compute or resize the flows at the working size",
          },
        );
    });
  }
  const rgb = new Float32Array(n * px * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = f32((src.frames[i] ?? 0) / 255);
  const dx = new Float32Array(rgb.length);
  const dy = new Float32Array(rgb.length);
  for (let f = 0; f < n; f++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let c = 0; c < 3; c++) {
          const k = ((f * h + y) * w + x) * 3 + c;
          if (x + 1 < w) dx[k] = f32((rgb[k + 3] ?? 0) - (rgb[k] ?? 0));
          if (y + 1 < h) dy[k] = f32((rgb[k + 3 * w] ?? 0) - (rgb[k] ?? 0));
        }
  const mask = new Float32Array(n * px);
  if (src.masks) {
    if (src.masks.length !== n * px)
      throw new InvalidArgumentError("masks", `${n * px} bytes ([${n}, ${h}, ${w}])`, src.masks.length);
    for (let i = 0; i < mask.length; i++) mask[i] = f32((src.masks[i] ?? 0) / 255);
  }
  const maskFw = new Uint8Array(n * px);
  const maskBw = new Uint8Array(n * px);
  for (let i = 0; i + 1 < n; i++) {
    const fw = src.flowFw[i] as FlowField;
    const bw = src.flowBw[i] as FlowField;
    const rf = await flowResidual(fw, bw);
    const rb = await flowResidual(bw, fw);
    for (let k = 0; k < px; k++) {
      maskFw[i * px + k] = (rf[k] ?? Infinity) < 1 ? 1 : 0;
      maskBw[(i + 1) * px + k] = (rb[k] ?? Infinity) < 1 ? 1 : 0;
    }
  }
  return {
    frames: n,
    width: w,
    height: h,
    largerDim: Math.max(w, h),
    rgb,
    dx,
    dy,
    mask,
    flowFw: src.flowFw,
    flowBw: src.flowBw,
    maskFw,
    maskBw,
  };
}

/**
 * `torch.randint(high, (count,))` on a CPU generator seeded with `seed` (high < 2^32: one 32-bit
 * mt19937 draw per value, `draw % high`).
 */
export class TorchRandint {
  private engine: MT19937;
  constructor(seed: number) {
    this.engine = new MT19937(seed >>> 0);
  }
  next(high: number, count: number): Int32Array {
    if (!Number.isInteger(high) || high < 1 || high >= 2 ** 31)
      throw new InvalidArgumentError("randint high", "an integer in [1, 2^31)", high);
    const out = new Int32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.engine.nextUint32() % high;
    return out;
  }
  /** Discards `count` draws (resuming a stream). */
  skip(count: number): void {
    for (let i = 0; i < count; i++) this.engine.nextUint32();
  }
}

/**
 * The pixels (jif_all indices) of one iteration's batch: `batch` draws from the random stream, the
 * first round(focus x batch) of them among the foreground pixels (`foreground`, the mask's pixels
 * >= 0.5), the rest among all pixels, as the release draws them. focus 0 is the release's sampling;
 * with focus > 0 the losses weigh the object more (not the release's; see docs/atlas.md). Each call
 * takes exactly `batch` draws, so a resumed fit skips the same number per iteration either way.
 */
export function batchIndices(
  rng: TorchRandint,
  total: number,
  batch: number,
  focus: number,
  foreground: Int32Array,
): Int32Array {
  const k = focus > 0 ? Math.round(focus * batch) : 0;
  if (k === 0) return rng.next(total, batch);
  const out = new Int32Array(batch);
  const picks = rng.next(foreground.length, k);
  for (let i = 0; i < k; i++) out[i] = foreground[picks[i] ?? 0] ?? 0;
  out.set(rng.next(total, batch - k), k);
  return out;
}

/** The jif_all indices of the foreground pixels (mask >= 0.5), ascending. */
export function foregroundIndices(mask: Float32Array): Int32Array {
  let count = 0;
  for (const v of mask) if (v >= 0.5) count++;
  const out = new Int32Array(count);
  let j = 0;
  mask.forEach((v, i) => {
    if (v >= 0.5) out[j++] = i;
  });
  return out;
}

/** Normalised coordinate v/(denom) − 1 in float32 (torch: int tensor / float scalar, then − 1). */
const norm = (v: number, denom: number): number => f32(f32(v / f32(denom)) - 1);

/** Normalised (x, y, t) of a pixel as train.py's xyt_current. */
export function normalisedXyt(
  x: number,
  y: number,
  f: number,
  data: Pick<AtlasData, "largerDim" | "frames">,
): [number, number, number] {
  const half = data.largerDim / 2;
  return [norm(x, half), norm(y, half), norm(f, data.frames / 2)];
}

/** The step graph's batch feeds for jif_all indices `indices` and the coefficients `coefficients`. */
export function batchFeeds(
  data: AtlasData,
  indices: ArrayLike<number>,
  config: AtlasLossConfig,
  coefficients: Float32Array,
  totals?: BatchTotals,
  globalRigidity = true,
): Record<string, HostTensor> {
  const b = indices.length;
  const { width: w, height: h, frames: n } = data;
  const half = data.largerDim / 2;
  const halfW = w / 2;
  const tHalf = n / 2;
  const px = w * h;
  const blocks = mapBlocks(config, globalRigidity);
  const xytMap = new Float32Array(blocks.length * b * 3);
  const xytAlpha = new Float32Array(ALPHA_BLOCKS.length * b * 3);
  const rgbGt = new Float32Array(b * 3);
  const dxGt = new Float32Array(b * 3);
  const dyGt = new Float32Array(b * 3);
  const maskGt = new Float32Array(b);
  const wFw = new Float32Array(b);
  const wBw = new Float32Array(b);
  const put = (arr: Float32Array, block: number, i: number, xyt: readonly number[]): void => {
    arr.set(xyt, (block * b + i) * 3);
  };
  const mb = (name: MapBlock): number => blocks.indexOf(name);
  const ab = (name: (typeof ALPHA_BLOCKS)[number]): number => ALPHA_BLOCKS.indexOf(name);
  for (let i = 0; i < b; i++) {
    const k = indices[i] ?? 0;
    if (!Number.isInteger(k) || k < 0 || k >= n * px)
      throw new InvalidArgumentError(`batch index ${i}`, `an integer in [0, ${n * px})`, k);
    const f = Math.floor(k / px);
    const y = Math.floor((k % px) / w);
    const x = k % w;
    const t = norm(f, tHalf);
    const p = [norm(x, half), norm(y, half), t];
    put(xytMap, mb("p"), i, p);
    put(xytAlpha, ab("p"), i, p);
    // gradient loss: normalised by W/2 (the release passes resx)
    const xp1 = [norm(x + 1, halfW), norm(y, halfW), t];
    const yp1 = [norm(x, halfW), norm(y + 1, halfW), t];
    put(xytMap, mb("xp1"), i, xp1);
    put(xytMap, mb("yp1"), i, yp1);
    put(xytAlpha, ab("xp1"), i, xp1);
    put(xytAlpha, ab("yp1"), i, yp1);
    for (const [yb, xb, d] of [
      ["rig_y", "rig_x", config.derivativeAmount],
      ["grig_y", "grig_x", config.globalDerivativeFg],
      ["grig_bg_y", "grig_bg_x", config.globalDerivativeBg],
    ] as const) {
      if (!blocks.includes(yb)) continue;
      put(xytMap, mb(yb), i, [norm(x, half), norm(y - d, half), t]);
      put(xytMap, mb(xb), i, [norm(x - d, half), norm(y, half), t]);
    }
    // flow matches; rows outside the consistency mask repeat P (weight 0)
    const pix = y * w + x;
    const fwOk = (data.maskFw[f * px + pix] ?? 0) === 1;
    const bwOk = (data.maskBw[f * px + pix] ?? 0) === 1;
    wFw[i] = fwOk ? 1 : 0;
    wBw[i] = bwOk ? 1 : 0;
    for (const [ok, flows, df, block] of [
      [fwOk, data.flowFw, 1, "flow_fw"],
      [bwOk, data.flowBw, -1, "flow_bw"],
    ] as const) {
      let match = p;
      const field = flows[df === 1 ? f : f - 1];
      if (ok && field) {
        const mx = f32(x + (field.data[2 * pix] ?? 0));
        const my = f32(y + (field.data[2 * pix + 1] ?? 0));
        match = [norm(mx, half), norm(my, half), norm(f + df, tHalf)];
      }
      put(xytMap, mb(block), i, match);
      put(xytAlpha, ab(block), i, match);
    }
    const q = (f * px + pix) * 3;
    rgbGt.set(data.rgb.subarray(q, q + 3), i * 3);
    dxGt.set(data.dx.subarray(q, q + 3), i * 3);
    dyGt.set(data.dy.subarray(q, q + 3), i * 3);
    maskGt[i] = data.mask[f * px + pix] ?? 0;
  }
  return {
    xyt_map: tensor("float32", [blocks.length * b, 3], xytMap),
    xyt_alpha: tensor("float32", [ALPHA_BLOCKS.length * b, 3], xytAlpha),
    rgb_gt: tensor("float32", [b, 3], rgbGt),
    rgb_dx_gt: tensor("float32", [b, 3], dxGt),
    rgb_dy_gt: tensor("float32", [b, 3], dyGt),
    alpha_mask: tensor("float32", [b, 1], maskGt),
    flow_w_fw: tensor("float32", [b, 1], wFw),
    flow_w_bw: tensor("float32", [b, 1], wBw),
    coefficients: tensor("float32", [coefficients.length], coefficients),
    denominators: tensor(
      "float32",
      [3],
      Float32Array.from(
        totals
          ? [totals.batch, totals.flowFw, totals.flowBw]
          : [b, wFw.reduce((a, v) => a + v, 0), wBw.reduce((a, v) => a + v, 0)],
      ),
    ),
  };
}

/** Counts of a whole batch that every shard's means divide by. */
export interface BatchTotals {
  readonly batch: number;
  /** Rows whose forward flow is consistent. */
  readonly flowFw: number;
  /** Rows whose backward flow is consistent. */
  readonly flowBw: number;
}

/** {@link BatchTotals} of jif_all indices. */
export function batchTotals(data: AtlasData, indices: ArrayLike<number>): BatchTotals {
  let fw = 0;
  let bw = 0;
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i] ?? 0;
    fw += data.maskFw[k] ?? 0;
    bw += data.maskBw[k] ?? 0;
  }
  return { batch: indices.length, flowFw: fw, flowBw: bw };
}
