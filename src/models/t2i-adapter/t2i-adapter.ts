/**
 * T2IAdapter (full_adapter, and light_adapter: see the class) as a graph-building module, as diffusers
 * 0.26.3 `models/adapter.py` (`T2IAdapter` -> `FullAdapter` -> `AdapterBlock` -> `AdapterResnetBlock`;
 * weights under `adapter.`):
 * PixelUnshuffle(downscale_factor), conv_in (3x3), then one AdapterBlock per entry of `channels`, each
 * block's output being one feature (the UNet adds feature i at the end of its down block i). Every
 * block but the first starts with AvgPool2d(2, stride 2, ceil_mode=True), so an odd size keeps its
 * partial last window, averaged over the elements that exist, as the UNet's stride-2 conv gives ceil(n/2).
 *
 * `buildT2IAdapter` declares the graph input `control_image` [batch, in_channels, height, width]
 * (height and width multiples of downscale_factor, values in [0, 1]) and outputs `features.{i}`.
 */
import { UnsupportedError } from "../../errors.js";
import { type GraphBuilder, type Value, attr } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { Conv2d } from "../../nn/conv.js";
import { Module, moduleList } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import type { ModelGraph } from "../model-graph.js";
import type { T2IAdapterConfig } from "./config.js";

export const T2I_ADAPTER_INPUT = "control_image";

/** Graph output name of the i-th adapter feature. */
export const adapterFeatureName = (i: number): string => `features.${i}`;

/**
 * torch.nn.PixelUnshuffle(r) on [B, C, H, W] with a static C:
 * out[b, c * r * r + i * r + j, y, x] = in[b, c, r * y + i, r * x + j]. (ONNX SpaceToDepth orders
 * the channels (i, j, c), not (c, i, j).) Only reshapes with one inferred dim, so B, H, W stay dynamic.
 */
export function pixelUnshuffle(g: GraphBuilder, x: Value, channels: number, r: number): Value {
  const rows = op.Reshape(g, x, [0, 0, 0, -1, r]); // [B, C, H, W/r, j]
  const cols = op.Transpose(g, rows, [0, 1, 3, 4, 2]); // [B, C, W/r, j, H]
  const split = op.Reshape(g, cols, [0, 0, 0, 0, -1, r]); // [B, C, W/r, j, H/r, i]
  const moved = op.Transpose(g, split, [4, 2, 0, 1, 5, 3]); // [H/r, W/r, B, C, i, j]
  const merged = op.Reshape(g, moved, [0, 0, 0, channels * r * r]); // [H/r, W/r, B, C*r*r]
  return op.Transpose(g, merged, [2, 3, 0, 1]);
}

/** AvgPool2d(kernel_size=2, stride=2, ceil_mode=True): a partial window averages what exists. */
export function avgPool2x2Ceil(g: GraphBuilder, x: Value): Value {
  const half = (d: Value["shape"][number] | undefined): Value["shape"][number] =>
    typeof d === "number" ? Math.ceil(d / 2) : null;
  return g.node1(
    "AveragePool",
    [x],
    {
      kernel_shape: attr.ints([2, 2]),
      strides: attr.ints([2, 2]),
      ceil_mode: attr.int(1),
      count_include_pad: attr.int(0),
    },
    { dtype: x.dtype, shape: [x.shape[0] ?? null, x.shape[1] ?? null, half(x.shape[2]), half(x.shape[3])] },
  );
}

/** x + block2(relu(block1(x))): 3x3 then 1x1 conv, no activation after the sum. */
export class AdapterResnetBlock extends Module {
  readonly block1: Conv2d;
  readonly block2: Conv2d;

  constructor(w: WeightScope, channels: number) {
    super(w);
    this.block1 = new Conv2d(w.at("block1"), {
      inChannels: channels,
      outChannels: channels,
      kernelSize: 3,
      padding: 1,
    });
    this.block2 = new Conv2d(w.at("block2"), { inChannels: channels, outChannels: channels, kernelSize: 1 });
  }

  forward(x: Value): Value {
    return this.scoped(() => {
      const h = this.block2.forward(op.Relu(this.graph, this.block1.forward(x)));
      return op.Add(this.graph, h, x);
    });
  }
}

/** [AvgPool2d if down] -> [1x1 in_conv if the channels change] -> resnets. */
export class AdapterBlock extends Module {
  readonly in_conv: Conv2d | null;
  readonly resnets: readonly AdapterResnetBlock[];

  constructor(
    w: WeightScope,
    inChannels: number,
    outChannels: number,
    numResBlocks: number,
    readonly down: boolean,
  ) {
    super(w);
    this.in_conv =
      inChannels === outChannels
        ? null
        : new Conv2d(w.at("in_conv"), { inChannels, outChannels, kernelSize: 1 });
    this.resnets = moduleList(w.at("resnets"), numResBlocks, (s) => new AdapterResnetBlock(s, outChannels));
  }

  forward(x: Value): Value {
    return this.scoped(() => {
      let h = this.down ? avgPool2x2Ceil(this.graph, x) : x;
      if (this.in_conv) h = this.in_conv.forward(h);
      for (const resnet of this.resnets) h = resnet.forward(h);
      return h;
    });
  }
}

/** x + block2(relu(block1(x))), both 3x3 (LightAdapterResnetBlock). */
export class LightAdapterResnetBlock extends Module {
  readonly block1: Conv2d;
  readonly block2: Conv2d;

  constructor(w: WeightScope, channels: number) {
    super(w);
    const conv = { inChannels: channels, outChannels: channels, kernelSize: 3, padding: 1 };
    this.block1 = new Conv2d(w.at("block1"), conv);
    this.block2 = new Conv2d(w.at("block2"), conv);
  }

  forward(x: Value): Value {
    return this.scoped(() => {
      const h = this.block2.forward(op.Relu(this.graph, this.block1.forward(x)));
      return op.Add(this.graph, h, x);
    });
  }
}

/** [AvgPool2d if down] -> 1x1 in_conv to out/4 channels -> resnets -> 1x1 out_conv (LightAdapterBlock). */
export class LightAdapterBlock extends Module {
  readonly in_conv: Conv2d;
  readonly resnets: readonly LightAdapterResnetBlock[];
  readonly out_conv: Conv2d;

  constructor(
    w: WeightScope,
    inChannels: number,
    outChannels: number,
    numResBlocks: number,
    readonly down: boolean,
  ) {
    super(w);
    const mid = Math.floor(outChannels / 4);
    this.in_conv = new Conv2d(w.at("in_conv"), { inChannels, outChannels: mid, kernelSize: 1 });
    this.resnets = moduleList(w.at("resnets"), numResBlocks, (s) => new LightAdapterResnetBlock(s, mid));
    this.out_conv = new Conv2d(w.at("out_conv"), { inChannels: mid, outChannels, kernelSize: 1 });
  }

  forward(x: Value): Value {
    return this.scoped(() => {
      let h = this.in_conv.forward(this.down ? avgPool2x2Ceil(this.graph, x) : x);
      for (const resnet of this.resnets) h = resnet.forward(h);
      return this.out_conv.forward(h);
    });
  }
}

/** Receives `unshuffle` and `conv_in` while the graph is built. */
export type AdapterTap = (name: string, value: Value) => void;

/**
 * diffusers T2IAdapter (its FullAdapter's or LightAdapter's keys sit under `adapter.`):
 * "full_adapter": conv_in, then one AdapterBlock per entry of `channels`; "light_adapter": no
 * conv_in, one LightAdapterBlock per entry plus one more at the last width (len(channels) + 1
 * features; the UNet takes one per down block).
 */
export class T2IAdapter extends Module {
  readonly conv_in: Conv2d | null;
  readonly body: readonly (AdapterBlock | LightAdapterBlock)[];

  constructor(
    w: WeightScope,
    readonly config: T2IAdapterConfig,
  ) {
    super(w);
    const a = w.at("adapter");
    const ch = config.channels;
    const first = ch[0] ?? 0;
    const unshuffled = config.in_channels * config.downscale_factor ** 2;
    if (config.adapter_type === "light_adapter") {
      this.conv_in = null;
      const widths = [...ch, ch[ch.length - 1] ?? 0];
      this.body = moduleList(
        a.at("body"),
        widths.length,
        (s, i) =>
          new LightAdapterBlock(
            s,
            i === 0 ? unshuffled : (widths[i - 1] ?? 0),
            widths[i] ?? 0,
            config.num_res_blocks,
            i > 0,
          ),
      );
      return;
    }
    if (config.adapter_type !== "full_adapter") {
      throw new UnsupportedError(`T2IAdapter adapter_type "${config.adapter_type}"`, {
        hint: '"full_adapter" and "light_adapter" (the SD 1.5 T2I-Adapters) are built; full_adapter_xl is for SDXL',
      });
    }
    this.conv_in = new Conv2d(a.at("conv_in"), {
      inChannels: unshuffled,
      outChannels: first,
      kernelSize: 3,
      padding: 1,
    });
    this.body = moduleList(
      a.at("body"),
      ch.length,
      (s, i) => new AdapterBlock(s, ch[Math.max(i - 1, 0)] ?? 0, ch[i] ?? 0, config.num_res_blocks, i > 0),
    );
  }

  /** The control image's size over the first feature's (the latent) size. */
  get downscaleFactor(): number {
    return this.config.downscale_factor;
  }

  /** One feature per block: [B, channels[i], ceil(H / f / 2^i), ceil(W / f / 2^i)], f = downscale_factor. */
  forward(controlImage: Value, tap: AdapterTap = () => undefined): Value[] {
    const c = this.config;
    const unshuffled = pixelUnshuffle(this.graph, controlImage, c.in_channels, c.downscale_factor);
    tap("unshuffle", unshuffled);
    let h = unshuffled;
    if (this.conv_in) {
      h = this.conv_in.forward(unshuffled);
      tap("conv_in", h);
    }
    return this.body.map((block) => (h = block.forward(h)));
  }
}

export interface T2IAdapterBuildOptions {
  /** (optional, default false) also output `intermediate.unshuffle` and `intermediate.conv_in`. */
  readonly intermediates?: boolean;
}

/** Declares `control_image`, outputs `features.{i}` (then intermediates) and checks weight coverage. */
export function buildT2IAdapter(
  w: WeightScope,
  config: T2IAdapterConfig,
  options: T2IAdapterBuildOptions = {},
): ModelGraph<T2IAdapter> {
  const g = w.graph;
  const model = new T2IAdapter(w, config);
  const image = g.input(T2I_ADAPTER_INPUT, w.dtype, ["batch", config.in_channels, "height", "width"]);
  const taps: [string, Value][] = [];
  const features = model.forward(image, options.intermediates ? (n, v) => taps.push([n, v]) : undefined);
  const outputs = features.map((f, i) => g.output(f, adapterFeatureName(i)).name);
  for (const [name, v] of taps) outputs.push(g.output(v, `intermediate.${name}`).name);
  const weights = w.finish();
  return { model, inputs: g.inputs.map((v) => v.name), outputs, weights };
}
