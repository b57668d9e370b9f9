/**
 * Plain TypeScript reference implementations for graph/op/module tests (float32, row-major,
 * straightforward loops; written from the op definitions, not from any library).
 */
import { type HostTensor, type Shape, numel, tensor } from "../../src/tensor.js";

type F32 = HostTensor<"float32">;

/** Deterministic pseudo-random float32 tensor in [-scale, scale). */
export function randomTensor(shape: Shape, seed: number, scale = 1): F32 {
  let a = (seed * 2654435761) >>> 0;
  const data = new Float32Array(numel(shape));
  for (let i = 0; i < data.length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    data[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return tensor("float32", shape, data);
}

const at = (d: Float32Array, i: number): number => d[i] ?? NaN;

/** erf with |error| < 1.2e-7 (Chebyshev fit of erfc, Numerical Recipes 6.2). */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

export function mapTensor(x: F32, f: (v: number, i: number) => number): F32 {
  return tensor(
    "float32",
    x.shape,
    x.data.map((v, i) => f(v, i)),
  );
}

/** [..., K] x [K, N] (b 2-D) or batched [B, M, K] x [B, K, N]. */
export function refMatMul(a: F32, b: F32): F32 {
  const k = a.shape[a.shape.length - 1] ?? 0;
  const m = numel(a.shape) / k;
  if (b.shape.length === 2) {
    const n = b.shape[1] ?? 0;
    const out = new Float32Array(m * n);
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += at(a.data, i * k + p) * at(b.data, p * n + j);
        out[i * n + j] = s;
      }
    return tensor("float32", [...a.shape.slice(0, -1), n], out);
  }
  const batch = b.shape[0] ?? 0;
  const rows = (a.shape[1] ?? 0) * 1;
  const n = b.shape[2] ?? 0;
  const out = new Float32Array(batch * rows * n);
  for (let q = 0; q < batch; q++)
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += at(a.data, (q * rows + i) * k + p) * at(b.data, (q * k + p) * n + j);
        out[(q * rows + i) * n + j] = s;
      }
  return tensor("float32", [batch, rows, n], out);
}

/** torch Linear: x [..., in] with weight [out, in] and bias [out]. */
export function refLinear(x: F32, w: F32, b: F32 | null): F32 {
  const [out, inF] = [w.shape[0] ?? 0, w.shape[1] ?? 0];
  const wt = new Float32Array(inF * out);
  for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) wt[i * out + o] = at(w.data, o * inF + i);
  const y = refMatMul(x, tensor("float32", [inF, out], wt));
  return b ? mapTensor(y, (v, i) => v + at(b.data, i % out)) : y;
}

export interface RefConvOptions {
  readonly stride?: readonly [number, number];
  /** [top, left, bottom, right] */
  readonly pads?: readonly [number, number, number, number];
  readonly dilation?: readonly [number, number];
  readonly group?: number;
}

/** NCHW 2-D convolution. */
export function refConv2d(x: F32, w: F32, b: F32 | null, o: RefConvOptions = {}): F32 {
  const [n, c, h, wd] = x.shape as [number, number, number, number];
  const [m, cg, kh, kw] = w.shape as [number, number, number, number];
  const [sh, sw] = o.stride ?? [1, 1];
  const [pt, pl, pb, pr] = o.pads ?? [0, 0, 0, 0];
  const [dh, dw] = o.dilation ?? [1, 1];
  const group = o.group ?? 1;
  const oh = Math.floor((h + pt + pb - dh * (kh - 1) - 1) / sh) + 1;
  const ow = Math.floor((wd + pl + pr - dw * (kw - 1) - 1) / sw) + 1;
  const out = new Float32Array(n * m * oh * ow);
  const mPerGroup = m / group;
  for (let b0 = 0; b0 < n; b0++)
    for (let oc = 0; oc < m; oc++) {
      const gIdx = Math.floor(oc / mPerGroup);
      for (let y = 0; y < oh; y++)
        for (let xx = 0; xx < ow; xx++) {
          let s = b ? at(b.data, oc) : 0;
          for (let ic = 0; ic < cg; ic++)
            for (let ky = 0; ky < kh; ky++)
              for (let kx = 0; kx < kw; kx++) {
                const iy = y * sh - pt + ky * dh;
                const ix = xx * sw - pl + kx * dw;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                const cIn = gIdx * cg + ic;
                s +=
                  at(x.data, ((b0 * c + cIn) * h + iy) * wd + ix) *
                  at(w.data, ((oc * cg + ic) * kh + ky) * kw + kx);
              }
          out[((b0 * m + oc) * oh + y) * ow + xx] = s;
        }
    }
  return tensor("float32", [n, m, oh, ow], out);
}

/** GroupNorm over [N, C, ...] with per-channel affine (scale/bias may be null). */
export function refGroupNorm(x: F32, groups: number, eps: number, scale: F32 | null, bias: F32 | null): F32 {
  const [n, c] = x.shape as [number, number];
  const spatial = numel(x.shape.slice(2));
  const per = (c / groups) * spatial;
  const out = new Float32Array(x.data.length);
  for (let b0 = 0; b0 < n; b0++)
    for (let gi = 0; gi < groups; gi++) {
      const start = (b0 * c + gi * (c / groups)) * spatial;
      let mean = 0;
      for (let i = 0; i < per; i++) mean += at(x.data, start + i);
      mean /= per;
      let v = 0;
      for (let i = 0; i < per; i++) v += (at(x.data, start + i) - mean) ** 2;
      v /= per;
      for (let i = 0; i < per; i++) {
        const ch = gi * (c / groups) + Math.floor(i / spatial);
        const norm = (at(x.data, start + i) - mean) / Math.sqrt(v + eps);
        out[start + i] = norm * (scale ? at(scale.data, ch) : 1) + (bias ? at(bias.data, ch) : 0);
      }
    }
  return tensor("float32", x.shape, out);
}

/** LayerNorm over the last dim. */
export function refLayerNorm(x: F32, eps: number, scale: F32 | null, bias: F32 | null): F32 {
  const d = x.shape[x.shape.length - 1] ?? 1;
  const out = new Float32Array(x.data.length);
  for (let r = 0; r < x.data.length / d; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += at(x.data, r * d + i);
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (at(x.data, r * d + i) - mean) ** 2;
    v /= d;
    for (let i = 0; i < d; i++) {
      out[r * d + i] =
        ((at(x.data, r * d + i) - mean) / Math.sqrt(v + eps)) * (scale ? at(scale.data, i) : 1) +
        (bias ? at(bias.data, i) : 0);
    }
  }
  return tensor("float32", x.shape, out);
}

/** Softmax over the last dim. */
export function refSoftmax(x: F32): F32 {
  const d = x.shape[x.shape.length - 1] ?? 1;
  const out = new Float32Array(x.data.length);
  for (let r = 0; r < x.data.length / d; r++) {
    let mx = -Infinity;
    for (let i = 0; i < d; i++) mx = Math.max(mx, at(x.data, r * d + i));
    let s = 0;
    for (let i = 0; i < d; i++) s += Math.exp(at(x.data, r * d + i) - mx);
    for (let i = 0; i < d; i++) out[r * d + i] = Math.exp(at(x.data, r * d + i) - mx) / s;
  }
  return tensor("float32", x.shape, out);
}

/** Multi-head attention on packed heads: q [B, S, H*D], k [B, L, H*D], v [B, L, H*Dv]. */
export function refAttention(q: F32, k: F32, v: F32, heads: number, scale?: number, causal = false): F32 {
  const [b, s, hd] = q.shape as [number, number, number];
  const l = k.shape[1] ?? 0;
  const hdv = v.shape[2] ?? 0;
  const d = hd / heads;
  const dv = hdv / heads;
  const sc = scale ?? 1 / Math.sqrt(d);
  const out = new Float32Array(b * s * hdv);
  const scores = new Float64Array(l);
  for (let bi = 0; bi < b; bi++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < s; i++) {
        let mx = -Infinity;
        for (let j = 0; j < l; j++) {
          let dot = 0;
          for (let p = 0; p < d; p++)
            dot += at(q.data, (bi * s + i) * hd + h * d + p) * at(k.data, (bi * l + j) * hd + h * d + p);
          scores[j] = causal && j > i ? -Infinity : dot * sc;
          mx = Math.max(mx, scores[j] ?? -Infinity);
        }
        let sum = 0;
        for (let j = 0; j < l; j++) sum += scores[j] = Math.exp((scores[j] ?? 0) - mx);
        for (let p = 0; p < dv; p++) {
          let acc = 0;
          for (let j = 0; j < l; j++)
            acc += ((scores[j] ?? 0) / sum) * at(v.data, (bi * l + j) * hdv + h * dv + p);
          out[(bi * s + i) * hdv + h * dv + p] = acc;
        }
      }
  return tensor("float32", [b, s, hdv], out);
}

/** Nearest-neighbour upsampling of the last two dims by an integer factor (PyTorch "nearest"). */
export function refUpsampleNearest(x: F32, factor: number): F32 {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const out = new Float32Array(n * c * h * factor * w * factor);
  for (let p = 0; p < n * c; p++)
    for (let y = 0; y < h * factor; y++)
      for (let xx = 0; xx < w * factor; xx++) {
        out[(p * h * factor + y) * w * factor + xx] = at(
          x.data,
          (p * h + Math.floor(y / factor)) * w + Math.floor(xx / factor),
        );
      }
  return tensor("float32", [n, c, h * factor, w * factor], out);
}

/** Selects rows of a [B*F, ...] tensor by frame: out[v*F + f] = x[v*F + pick(f)]. */
export function refSelectFrames(x: F32, frames: number, pick: (f: number) => number): F32 {
  const per = numel(x.shape.slice(1));
  const out = new Float32Array(x.data.length);
  const videos = (x.shape[0] ?? 0) / frames;
  for (let vi = 0; vi < videos; vi++)
    for (let f = 0; f < frames; f++)
      out.set(
        x.data.subarray((vi * frames + pick(f)) * per, (vi * frames + pick(f) + 1) * per),
        (vi * frames + f) * per,
      );
  return tensor("float32", x.shape, out);
}

/** Concatenates two [N, L, C] tensors along L. */
export function refConcatSeq(a: F32, b: F32): F32 {
  const [n, la, c] = a.shape as [number, number, number];
  const lb = b.shape[1] ?? 0;
  const out = new Float32Array(n * (la + lb) * c);
  for (let i = 0; i < n; i++) {
    out.set(a.data.subarray(i * la * c, (i + 1) * la * c), i * (la + lb) * c);
    out.set(b.data.subarray(i * lb * c, (i + 1) * lb * c), (i * (la + lb) + la) * c);
  }
  return tensor("float32", [n, la + lb, c], out);
}
