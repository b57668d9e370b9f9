/**
 * The IP-Adapter graph: the image projection (./image-projection.ts) and every cross-attention's
 * `to_k_ip` / `to_v_ip` (Linear, no bias) of a published SD1.5 IP-Adapter file, built for one UNet.
 *
 * Input `image_embeds`: plain [B, n_images, D] (CLIP image_embeds), plus [B, n_images, S, E] (CLIP
 * hidden_states[-2]). Outputs: `image_proj.tokens` [B, n_images, tokens, C] and, per UNet
 * cross-attention, `ip_key.<path>` / `ip_value.<path>` [B, n_images * tokens, inner]: the inputs of
 * a UNet loaded with `ipAdapter: true` (../unet/build.ts). Several images of one adapter are
 * concatenated along the token axis, image 0 first (one softmax over all of them), as diffusers does.
 *
 * Initializer names are the file keys. `ip_adapter.<n>` numbers diffusers' `unet.attn_processors`
 * (attn1 and attn2 of every transformer block, down blocks, then up blocks, then the mid block), so
 * the cross-attention k of that order is n = 2k + 1 (../unet/build.ts ipAdapterLayers).
 */
import { UnsupportedError } from "../../errors.js";
import { GraphBuilder, type Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { Linear } from "../../nn/linear.js";
import type { GraphBuildOptions } from "../../nn/module.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { WeightScope } from "../../nn/weights.js";
import { type IpAdapterLayer, ipKeyName, ipValueName } from "../unet/build.js";
import {
  ImageProjection,
  type ImageProjectionDims,
  Resampler,
  type ResamplerDims,
} from "./image-projection.js";

export type IpAdapterLayout =
  | { readonly kind: "plain"; readonly dims: ImageProjectionDims }
  | { readonly kind: "plus"; readonly dims: ResamplerDims };

export const IP_ADAPTER_INPUT = "image_embeds";
export const IP_ADAPTER_TOKENS = "image_proj.tokens";

/** Reads which projection a file holds and its sizes (UnsupportedError for other IP-Adapter kinds). */
export function ipAdapterLayout(store: WeightStore): IpAdapterLayout {
  const shape = (key: string): readonly number[] | undefined => store.info(key)?.shape;
  const dim = (key: string, i: number): number => shape(key)?.[i] ?? 0;
  if (shape("image_proj.latents") !== undefined) {
    const layers = new Set<number>();
    for (const k of store.keys()) {
      const m = /^image_proj\.layers\.(\d+)\.0\.to_q\.weight$/.exec(k);
      if (m) layers.add(Number(m[1]));
    }
    const crossAttentionDim = dim("image_proj.norm_out.weight", 0);
    return {
      kind: "plus",
      dims: {
        embedDim: dim("image_proj.proj_in.weight", 1),
        width: dim("image_proj.latents", 2),
        tokens: dim("image_proj.latents", 1),
        crossAttentionDim,
        depth: layers.size,
        heads: Math.max(1, Math.floor(dim("image_proj.layers.0.0.to_q.weight", 0) / 64)),
        ffInner: dim("image_proj.layers.0.1.1.weight", 0),
      },
    };
  }
  if (shape("image_proj.proj.weight") !== undefined && shape("image_proj.norm.weight") !== undefined) {
    const crossAttentionDim = dim("image_proj.norm.weight", 0);
    return {
      kind: "plain",
      dims: {
        embedDim: dim("image_proj.proj.weight", 1),
        crossAttentionDim,
        tokens: Math.max(1, Math.round(dim("image_proj.proj.weight", 0) / Math.max(1, crossAttentionDim))),
      },
    };
  }
  const sample = [...store.keys()].filter((k) => k.startsWith("image_proj.")).slice(0, 6);
  throw new UnsupportedError(
    `the IP-Adapter image projection in ${store.name} (keys ${sample.join(", ") || "none under image_proj."})`,
    {
      hint: "supported: the SD1.5 ip-adapter (image_proj.proj/norm) and ip-adapter-plus (Resampler: image_proj.latents, layers.*) files",
    },
  );
}

export interface IpAdapterGraphOptions extends GraphBuildOptions {
  readonly dtype?: "float32" | "float16";
}

/** Builds the graph for `layers` (the UNet's IP-Adapter layers, in order) and checks the file covers it exactly. */
export function buildIpAdapterGraph(
  store: WeightStore,
  layers: readonly IpAdapterLayer[],
  options: IpAdapterGraphOptions = {},
): { graph: GraphBuilder; layout: IpAdapterLayout } {
  const layout = ipAdapterLayout(store);
  const g = new GraphBuilder({ name: "ip_adapter" });
  const w = WeightScope.bind(g, store, {
    ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
    ...(options.attention === undefined ? {} : { attention: options.attention }),
  });
  const c = layout.dims.crossAttentionDim;
  let tokens: Value;
  if (layout.kind === "plain") {
    const embeds = g.input(IP_ADAPTER_INPUT, w.dtype, ["batch", "images", layout.dims.embedDim]);
    const proj = new ImageProjection(w.at("image_proj"), layout.dims);
    const flat = op.Reshape(g, embeds, [-1, layout.dims.embedDim]);
    tokens = proj.forward(flat);
  } else {
    const d = layout.dims;
    const embeds = g.input(IP_ADAPTER_INPUT, w.dtype, ["batch", "images", "sequence", d.embedDim]);
    const resampler = new Resampler(w.at("image_proj"), d);
    const sequence = op.Shape(g, embeds, { start: 2, end: 3 });
    const perImage = op.Concat(g, [g.int64s([-1]), sequence, g.int64s([d.embedDim])], 0);
    tokens = resampler.forward(op.Reshape(g, embeds, perImage));
  }
  const n = layout.dims.tokens;
  const input = g.inputs[0];
  const batchImages = op.Shape(g, input ?? tokens, { start: 0, end: 2 });
  const perImage = op.Reshape(g, tokens, op.Concat(g, [batchImages, g.int64s([n, c])], 0));
  g.output(perImage, IP_ADAPTER_TOKENS);
  const flat = op.Reshape(g, perImage, [0, -1, c]);
  const ip = w.at("ip_adapter");
  layers.forEach((layer, k) => {
    const scope = ip.at(2 * k + 1);
    const toK = new Linear(scope.at("to_k_ip"), { inFeatures: c, outFeatures: layer.innerDim, bias: false });
    const toV = new Linear(scope.at("to_v_ip"), { inFeatures: c, outFeatures: layer.innerDim, bias: false });
    g.output(toK.forward(flat), ipKeyName(layer.path));
    g.output(toV.forward(flat), ipValueName(layer.path));
  });
  w.finish();
  return { graph: g, layout };
}
