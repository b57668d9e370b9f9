/**
 * IP-Adapter runner (`IpAdapterRunner`): opens a published IP-Adapter file (`.safetensors` with flat
 * `image_proj.*` / `ip_adapter.*` keys, or the `.bin` dict {image_proj, ip_adapter} through the safe
 * unpickler), builds its graph for a UNet loaded with `ipAdapter: true` (./graph.ts) and runs it,
 * compiled by the runner family's one policy (../model-runner.ts). `keyValues` gives the UNet's
 * `ipAdapterKeyValues` feeds with the ip scale folded into the values (scale * softmax(q k^T) v =
 * softmax(q k^T)(scale * v)); scale 0 therefore adds exactly nothing.
 */
import { InvalidArgumentError } from "../../errors.js";
import { type HostTensor, shapeToString, tensor, toFloat32 } from "../../tensor.js";
import { openCheckpointStore } from "../../weights/single-file.js";
import type { ModelLoadOptions } from "../compiled-graph.js";
import { ModelRunner, RunnerGraph, signalOption } from "../model-runner.js";
import type { UNet2DConditionModelRunner } from "../unet/runner.js";
import { type IpAdapterLayer, ipValueName } from "../unet/build.js";
import {
  IP_ADAPTER_INPUT,
  IP_ADAPTER_TOKENS,
  type IpAdapterGraphOptions,
  type IpAdapterLayout,
  buildIpAdapterGraph,
} from "./graph.js";
import { stat } from "node:fs/promises";
import type { WeightStore } from "../../nn/weight-store.js";

export interface IpAdapterLoadOptions
  extends ModelLoadOptions, Pick<IpAdapterGraphOptions, "dtype" | "attention"> {}

/** An IP-Adapter file path, or a weight store in the file's key layout. */
export type IpAdapterSource = string | { readonly store: WeightStore; readonly weightsId?: string };

export interface IpAdapterOutputs {
  /** The projected image tokens, [B, n_images, tokens, C]. */
  readonly tokens: HostTensor<"float32">;
  /** `ip_key.<path>` / `ip_value.<path>` [B, n_images * tokens, inner] (unscaled). */
  readonly keyValues: Readonly<Record<string, HostTensor<"float32">>>;
}

export class IpAdapterRunner extends ModelRunner {
  private constructor(
    graph: RunnerGraph,
    readonly layout: IpAdapterLayout,
    /** The UNet cross-attentions this adapter feeds. */
    readonly layers: readonly IpAdapterLayer[],
  ) {
    super("IPAdapter", [graph]);
  }

  /** Opens the file and builds the adapter for `unet` (its IP-Adapter layers; load the UNet with ipAdapter: true). */
  static async load(
    source: IpAdapterSource,
    unet: Pick<UNet2DConditionModelRunner, "ipAdapterLayers">,
    options: IpAdapterLoadOptions = {},
  ): Promise<IpAdapterRunner> {
    const layers = unet.ipAdapterLayers;
    if (layers.length === 0) {
      throw new InvalidArgumentError(
        "unet",
        "a UNet loaded with { ipAdapter: true }",
        "a UNet without IP-Adapter inputs",
      );
    }
    let store: WeightStore;
    let weightsId: string | null;
    if (typeof source === "string") {
      const info = await stat(source);
      store = await openCheckpointStore(source);
      weightsId = `${source}:${info.size}:${info.mtimeMs}`;
    } else {
      store = source.store;
      weightsId = source.weightsId ?? null;
    }
    const { graph, layout } = buildIpAdapterGraph(store, layers, {
      ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
      ...(options.attention === undefined ? {} : { attention: options.attention }),
    });
    return ModelRunner.opened(
      new IpAdapterRunner(new RunnerGraph("ip_adapter", graph, weightsId, options), layout, layers),
      options,
    );
  }

  /** "plain" takes CLIP image_embeds [B, n, D]; "plus" takes CLIP hidden_states[-2] [B, n, S, E]. */
  get kind(): IpAdapterLayout["kind"] {
    return this.layout.kind;
  }

  /** Runs the projection and every to_k_ip / to_v_ip on `imageEmbeds` (see `kind` for the shape). */
  async run(imageEmbeds: HostTensor, options: { signal?: AbortSignal } = {}): Promise<IpAdapterOutputs> {
    const d = this.layout.dims.embedDim;
    const rank = this.kind === "plain" ? 3 : 4;
    if (imageEmbeds.shape.length !== rank || imageEmbeds.shape[rank - 1] !== d) {
      const expected =
        this.kind === "plain"
          ? `[batch, images, ${d}] (CLIP image_embeds)`
          : `[batch, images, tokens, ${d}] (CLIP hidden_states[-2])`;
      throw new InvalidArgumentError("imageEmbeds", expected, shapeToString(imageEmbeds.shape), {
        hint: "the image encoder does not belong to this IP-Adapter (plain adapters take image_embeds, plus adapters the penultimate hidden states)",
      });
    }
    const session = await this.openSession();
    const out = await session.run({ [IP_ADAPTER_INPUT]: toFloat32(imageEmbeds) }, signalOption(options));
    const keyValues: Record<string, HostTensor<"float32">> = {};
    for (const [k, v] of Object.entries(out)) if (k !== IP_ADAPTER_TOKENS) keyValues[k] = toFloat32(v);
    const tokens = out[IP_ADAPTER_TOKENS];
    if (tokens === undefined) throw new InvalidArgumentError(IP_ADAPTER_TOKENS, "an output", undefined);
    return { tokens: toFloat32(tokens), keyValues };
  }

  /** The UNet's `ipAdapterKeyValues` for `imageEmbeds` at ip scale `scale` (values multiplied by it). */
  async keyValues(
    imageEmbeds: HostTensor,
    scale: number,
    options: { signal?: AbortSignal } = {},
  ): Promise<Record<string, HostTensor<"float32">>> {
    // Any finite scale, as diffusers multiplies by it (a negative one steers away from the image).
    if (!Number.isFinite(scale)) throw new InvalidArgumentError("ipAdapterScale", "a finite number", scale);
    const { keyValues } = await this.run(imageEmbeds, options);
    return scaleIpValues(keyValues, this.layers, scale);
  }
}

/** `keyValues` with every `ip_value.*` multiplied by `scale` (keys unchanged). */
export function scaleIpValues(
  keyValues: Readonly<Record<string, HostTensor<"float32">>>,
  layers: readonly IpAdapterLayer[],
  scale: number,
): Record<string, HostTensor<"float32">> {
  const values = new Set(layers.map((l) => ipValueName(l.path)));
  const out: Record<string, HostTensor<"float32">> = {};
  for (const [k, v] of Object.entries(keyValues)) {
    out[k] =
      values.has(k) && scale !== 1
        ? tensor(
            "float32",
            v.shape,
            v.data.map((x) => Math.fround(x * scale)),
          )
        : v;
  }
  return out;
}
