/**
 * Flow on the latent grid: a pixel flow field averaged over each `factor`x`factor` block and divided
 * by `factor`, backward warps of latents (nearest keeps Gaussian noise Gaussian; bilinear for
 * content), and a consistency mask pooled to the latent grid (a latent cell counts only when every
 * pixel of its block does: Rerender's max-pooled occlusion).
 */
import type { Image } from "../image.js";
import type { FlowField } from "../control/flow.js";
import { tensor, type HostTensor } from "../tensor.js";

/** The flow on an `h`x`w` latent grid (`factor` = image size / latent size). */
export function latentFlow(flow: FlowField, h: number, w: number): FlowField {
  const fy = flow.height / h;
  const fx = flow.width / w;
  const out = new Float32Array(h * w * 2);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let dx = 0;
      let dy = 0;
      let n = 0;
      for (let yy = Math.floor(y * fy); yy < Math.floor((y + 1) * fy); yy++) {
        for (let xx = Math.floor(x * fx); xx < Math.floor((x + 1) * fx); xx++) {
          const k = (yy * flow.width + xx) * 2;
          dx += flow.data[k] ?? 0;
          dy += flow.data[k + 1] ?? 0;
          n++;
        }
      }
      out[(y * w + x) * 2] = n > 0 ? dx / n / fx : 0;
      out[(y * w + x) * 2 + 1] = n > 0 ? dy / n / fy : 0;
    }
  }
  return { width: w, height: h, data: out };
}

/**
 * Backward warp of latents [1, C, h, w]: out(p) = src(p + flow(p)); "nearest" rounds the source
 * position, "bilinear" interpolates; positions outside the grid are clamped to the border.
 */
export function warpLatents(
  src: HostTensor<"float32">,
  flow: FlowField,
  mode: "nearest" | "bilinear",
): HostTensor<"float32"> {
  const [, c = 0, h = 0, w = 0] = src.shape;
  const out = new Float32Array(src.data.length);
  const at = (ch: number, y: number, x: number): number =>
    src.data[(ch * h + Math.min(h - 1, Math.max(0, y))) * w + Math.min(w - 1, Math.max(0, x))] ?? 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const k = (y * w + x) * 2;
      const sx = x + (flow.data[k] ?? 0);
      const sy = y + (flow.data[k + 1] ?? 0);
      for (let ch = 0; ch < c; ch++) {
        let v: number;
        if (mode === "nearest") v = at(ch, Math.round(sy), Math.round(sx));
        else {
          const x0 = Math.floor(sx);
          const y0 = Math.floor(sy);
          const ax = sx - x0;
          const ay = sy - y0;
          v =
            (1 - ax) * (1 - ay) * at(ch, y0, x0) +
            ax * (1 - ay) * at(ch, y0, x0 + 1) +
            (1 - ax) * ay * at(ch, y0 + 1, x0) +
            ax * ay * at(ch, y0 + 1, x0 + 1);
        }
        out[(ch * h + y) * w + x] = v;
      }
    }
  }
  return tensor("float32", src.shape, out);
}

/** A one-channel 0/255 mask pooled to h x w: 1 where every pixel of the block is 255, else 0. */
export function latentMask(mask: Image, h: number, w: number): Float32Array {
  const fy = mask.height / h;
  const fx = mask.width / w;
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let all = true;
      for (let yy = Math.floor(y * fy); all && yy < Math.floor((y + 1) * fy); yy++) {
        for (let xx = Math.floor(x * fx); xx < Math.floor((x + 1) * fx); xx++) {
          if ((mask.data[(yy * mask.width + xx) * mask.channels] ?? 0) === 0) {
            all = false;
            break;
          }
        }
      }
      out[y * w + x] = all ? 1 : 0;
    }
  }
  return out;
}

/** m * a + (1 - m) * b per latent cell (m broadcast over channels), in float32. */
export function blendLatents(
  a: HostTensor<"float32">,
  b: HostTensor<"float32">,
  mask: Float32Array,
  strength = 1,
): HostTensor<"float32"> {
  const [, c = 0, h = 0, w = 0] = a.shape;
  const out = new Float32Array(a.data.length);
  for (let ch = 0; ch < c; ch++) {
    for (let k = 0; k < h * w; k++) {
      const m = Math.fround((mask[k] ?? 0) * strength);
      const i = ch * h * w + k;
      out[i] = Math.fround(Math.fround(m * (a.data[i] ?? 0)) + Math.fround((1 - m) * (b.data[i] ?? 0)));
    }
  }
  return tensor("float32", a.shape, out);
}
