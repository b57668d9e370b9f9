/**
 * The T2I-Adapter as an ONNX Runtime session: `loadT2IAdapter(dir | {config, store})` builds the graph
 * (t2i-adapter.ts) and compiles it (../model-runner.ts); `forward` returns one feature per UNet down
 * block. `adapterResiduals` turns them into the UNet's `downIntrablockAdditionalResiduals` as
 * diffusers' StableDiffusionAdapterPipeline does (times adapter_conditioning_scale, repeated for the
 * classifier-free-guidance batch).
 */
import { InvalidArgumentError } from "../../errors.js";
import { WeightScope } from "../../nn/weights.js";
import { type HostTensor, shapeToString, tensor, toFloat32 } from "../../tensor.js";
import type { ModelLoadOptions } from "../compiled-graph.js";
import { type ModelSource, resolveModelSource } from "../component-source.js";
import { ModelRunner, RunnerGraph, float32Output, newGraph, signalOption } from "../model-runner.js";
import { type T2IAdapterConfig, parseT2IAdapterConfig } from "./config.js";
import { T2I_ADAPTER_INPUT, adapterFeatureName, buildT2IAdapter } from "./t2i-adapter.js";

/** A diffusers T2IAdapter folder (config.json + diffusion_pytorch_model.safetensors), or a config and a weight store. */
export type T2IAdapterSource = ModelSource<T2IAdapterConfig>;

export interface T2IAdapterLoadOptions extends ModelLoadOptions {
  /** (optional, default false) also output `intermediate.unshuffle` / `intermediate.conv_in`. */
  readonly intermediates?: boolean;
}

export class T2IAdapterRunner extends ModelRunner {
  constructor(
    graph: RunnerGraph,
    readonly config: T2IAdapterConfig,
  ) {
    super("T2IAdapter", [graph]);
  }

  /** The control image's size over the latent size (downscale_factor). */
  get downscaleFactor(): number {
    return this.config.downscale_factor;
  }

  /** Runs the session on a control image [B, in_channels, H, W] in [0, 1]; every output by name. */
  async run(
    controlImage: HostTensor,
    options: { signal?: AbortSignal } = {},
  ): Promise<Record<string, HostTensor>> {
    const [, c, h = 0, w = 0] = controlImage.shape;
    const f = this.downscaleFactor;
    if (controlImage.shape.length !== 4 || c !== this.config.in_channels || h % f !== 0 || w % f !== 0) {
      throw new InvalidArgumentError(
        "controlImage",
        `[batch, ${this.config.in_channels}, H, W] with H and W multiples of ${f} (the latent size times ${f})`,
        shapeToString(controlImage.shape),
        {
          hint: "resize the control image to the output image size (in_channels comes from the adapter config)",
        },
      );
    }
    const session = await this.openSession();
    return session.run({ [T2I_ADAPTER_INPUT]: controlImage }, signalOption(options));
  }

  /** The features, one per UNet down block. */
  async forward(
    controlImage: HostTensor,
    options: { signal?: AbortSignal } = {},
  ): Promise<HostTensor<"float32">[]> {
    const out = await this.run(controlImage, options);
    const count = this.config.channels.length + (this.config.adapter_type === "light_adapter" ? 1 : 0);
    return Array.from({ length: count }, (_, i) => float32Output(out, adapterFeatureName(i)));
  }
}

/**
 * The UNet's `downIntrablockAdditionalResiduals` from adapter features: each times `scale`
 * (adapter_conditioning_scale), its batch repeated `repeat` times (2 for [uncond, cond]).
 */
export function adapterResiduals(
  features: readonly HostTensor[],
  scale: number,
  repeat = 1,
): HostTensor<"float32">[] {
  if (!Number.isFinite(scale)) throw new InvalidArgumentError("scale", "a finite number", scale);
  if (!(Number.isInteger(repeat) && repeat >= 1))
    throw new InvalidArgumentError("repeat", "a positive integer", repeat);
  return features.map((feature) => {
    const f = toFloat32(feature);
    const [batch = 1, ...rest] = f.shape;
    const out = tensor("float32", [batch * repeat, ...rest]);
    const n = f.data.length;
    for (let r = 0; r < repeat; r++)
      for (let i = 0; i < n; i++) out.data[r * n + i] = (f.data[i] ?? 0) * scale;
    return out;
  });
}

/** Builds, writes (or reuses) and opens a T2I-Adapter; see T2IAdapterLoadOptions. */
export async function loadT2IAdapter(
  source: T2IAdapterSource,
  options: T2IAdapterLoadOptions = {},
): Promise<T2IAdapterRunner> {
  const { config, store, weightsId } = await resolveModelSource(
    source,
    "adapter/config.json",
    parseT2IAdapterConfig,
  );
  const g = newGraph("t2i_adapter");
  buildT2IAdapter(WeightScope.bind(g, store), config, { intermediates: options.intermediates ?? false });
  return ModelRunner.opened(
    new T2IAdapterRunner(new RunnerGraph("t2i_adapter", g, weightsId, options), config),
    options,
  );
}
