/**
 * A Uni-ControlNet checkpoint (`uni.ckpt` through the safe unpickler, or a `.safetensors` copy) as three
 * ONNX Runtime sessions: the SD UNet (the ordinary UNet runner, built with residual inputs), the local
 * adapter (a `ControlNet` to the pipelines: same inputs, same residual outputs) and the global adapter.
 * `loadUniControlNet` refuses a file that is not a Uni-ControlNet with an InvalidArgumentError saying
 * what the file is, and lists every weight problem of the three graphs in one MissingWeightsError.
 *
 * Mirrors ShihaoZhaoZSH/Uni-ControlNet `models/uni_controlnet.py` (`UniControlNet.apply_model`) and
 * `models/util.py` (`load_state_dict`: `d.get('state_dict', d)`, which readTorchStateDict does too).
 */
import { stat } from "node:fs/promises";
import { InvalidArgumentError, UnsupportedError } from "../../errors.js";
import type { WeightStore } from "../../nn/weight-store.js";
import { type HostTensor, elementAsNumber, shapeToString, tensor } from "../../tensor.js";
import { UNI_KEY_MAP_VERSION, UNI_PREFIXES } from "../../weights/key-maps/uni.js";
import { openCheckpointStore } from "../../weights/single-file.js";
import type { ModelLoadOptions } from "../compiled-graph.js";
import type { ControlNet, ControlNetInputs, ControlNetOutputs } from "../model-interfaces.js";
import { ModelRunner, RunnerGraph, float32Output, signalOption, timestepFeed } from "../model-runner.js";
import type { CrossFrameSetting } from "../unet/build.js";
import { UNet2DConditionModelRunner } from "../unet/runner.js";
import {
  GLOBAL_ADAPTER_INPUT,
  GLOBAL_ADAPTER_OUTPUT,
  LOCAL_ADAPTER_INPUT,
  LOCAL_MID_RESIDUAL,
  buildUniControlNetGraphs,
  localDownResidualName,
} from "./build.js";
import { type UniControlNetConfig, inferUniConfig, uniUNetConfig } from "./config.js";

export interface LocalAdapterRunInputs {
  /** [B, in_channels, h, w]. */
  readonly sample: HostTensor;
  /** A number, or a tensor of shape [], [1] or [B]. */
  readonly timestep: HostTensor | number;
  /** [B, 77 + K, context_dim]: text context with the global tokens appended. */
  readonly encoderHiddenStates: HostTensor;
  /** [B, local_channels, 8h, 8w] in [0, 1] (absent maps = zeros). */
  readonly localConditions: HostTensor;
  /**
   * local_strength (one number) or local_control_scales (one per residual, last = middle block; a
   * longer list is cut to the residual count, as the original's zip does).
   */
  readonly scales: number | readonly number[];
}

export class LocalAdapterRunner extends ModelRunner implements ControlNet {
  /** Per-residual factors applied on top of `conditioningScale` by `forward` (default all 1). */
  residualScales: readonly number[] | undefined;

  constructor(
    graph: RunnerGraph,
    readonly config: UniControlNetConfig,
    /** Residuals per call: one per UNet skip connection, then the middle block. */
    readonly numResiduals: number,
  ) {
    super("LocalAdapter", [graph]);
  }

  /** Runs the session; every output by name (down_block_res_samples.i, mid_block_res_sample, intermediate.*). */
  async run(
    inputs: LocalAdapterRunInputs,
    options: { signal?: AbortSignal } = {},
  ): Promise<Record<string, HostTensor>> {
    const { sample, localConditions: maps } = inputs;
    const [batch = 0, , h = 0, w = 0] = sample.shape;
    const expected = [batch, this.config.local_channels, h * 8, w * 8];
    if (maps.shape.join() !== expected.join()) {
      throw new InvalidArgumentError(
        "localConditions",
        `shape ${shapeToString(expected)} (8x the latent size)`,
        shapeToString(maps.shape),
        {
          hint: `stack the ${this.config.local_channels / 3} local maps (3 channels each, zeros where absent) at the image size, once per batch item`,
        },
      );
    }
    if ((8 * h) % 64 !== 0 || (8 * w) % 64 !== 0) {
      throw new InvalidArgumentError(
        "localConditions",
        "an image size that is a multiple of 64",
        `${8 * w}x${8 * h}`,
        {
          hint: "Uni-ControlNet's feature extractor halves the maps six times; round width and height to multiples of 64",
        },
      );
    }
    const scales =
      typeof inputs.scales === "number"
        ? Array<number>(this.numResiduals).fill(inputs.scales)
        : // `zip(residuals, local_control_scales)` in the original: a longer list (13) is cut.
          inputs.scales.slice(0, this.numResiduals);
    if (scales.length !== this.numResiduals || !scales.every(Number.isFinite)) {
      throw new InvalidArgumentError(
        "scales",
        `a finite number or at least ${this.numResiduals} finite numbers (one per residual)`,
        inputs.scales,
      );
    }
    const feeds: Record<string, HostTensor> = {
      [LOCAL_ADAPTER_INPUT.sample]: sample,
      [LOCAL_ADAPTER_INPUT.timestep]: timestepFeed(inputs.timestep, batch),
      [LOCAL_ADAPTER_INPUT.encoderHiddenStates]: inputs.encoderHiddenStates,
      [LOCAL_ADAPTER_INPUT.localConditions]: maps,
      [LOCAL_ADAPTER_INPUT.scales]: tensor("float32", [scales.length], Float32Array.from(scales)),
    };
    return (await this.openSession()).run(feeds, signalOption(options));
  }

  /** The residuals of `run`'s outputs, in the UNet's order. */
  residuals(out: Readonly<Record<string, HostTensor>>): ControlNetOutputs {
    return {
      downBlockResSamples: Array.from({ length: this.numResiduals - 1 }, (_, i) =>
        float32Output(out, localDownResidualName(i)),
      ),
      midBlockResSample: float32Output(out, LOCAL_MID_RESIDUAL),
    };
  }

  /** The pipelines' ControlNet call: `controlnetCond` = the stacked local maps, `conditioningScale` = local_strength. */
  async forward(inputs: ControlNetInputs): Promise<ControlNetOutputs> {
    const s = inputs.conditioningScale;
    const scales = this.residualScales?.map((f) => f * s) ?? s;
    const out = await this.run({
      sample: inputs.sample,
      timestep: inputs.timestep,
      encoderHiddenStates: inputs.encoderHiddenStates,
      localConditions: inputs.controlnetCond,
      scales,
    });
    return this.residuals(out);
  }
}

export class GlobalAdapterRunner extends ModelRunner {
  constructor(
    graph: RunnerGraph,
    readonly config: UniControlNetConfig,
    /** Tokens per image (channel_mult[-1]). */
    readonly numTokens: number,
  ) {
    super("GlobalAdapter", [graph]);
  }

  /** [B, in_dim] CLIP image embeddings (projected, not normalised) -> unscaled tokens [B, K, in_dim]. */
  async tokens(
    embedding: HostTensor,
    options: { signal?: AbortSignal } = {},
  ): Promise<HostTensor<"float32">> {
    const d = this.config.global_adapter.in_dim;
    if (embedding.shape.length !== 2 || embedding.shape[1] !== d) {
      throw new InvalidArgumentError(
        "global embedding",
        `shape [batch, ${d}] (CLIP image features)`,
        shapeToString(embedding.shape),
        {
          hint: `Uni-ControlNet's global adapter takes the ${d}-d projected CLIP ViT-L/14 image embedding (zeros = no content image)`,
        },
      );
    }
    const out = await (
      await this.openSession()
    ).run({ [GLOBAL_ADAPTER_INPUT]: embedding }, signalOption(options));
    return float32Output(out, GLOBAL_ADAPTER_OUTPUT);
  }
}

/** A loaded Uni-ControlNet: its config, the three runners and the DDPM schedule the file carries. */
export interface UniControlNet {
  readonly config: UniControlNetConfig;
  readonly unet: UNet2DConditionModelRunner;
  readonly localAdapter: LocalAdapterRunner;
  readonly globalAdapter: GlobalAdapterRunner;
  /** The checkpoint's `alphas_cumprod` buffer (float32 [1000]) when it has one. */
  readonly alphasCumprod: Float32Array | undefined;
  /** The checkpoint (for its VAE / text encoder keys, when the file has them). */
  readonly store: WeightStore;
  release(): Promise<void>;
}

/** A uni.ckpt / .safetensors path, or an opened store (e.g. random weights, with a config). */
export type UniControlNetSource = string | { readonly store: WeightStore; readonly weightsId?: string };

export interface UniControlNetLoadOptions extends ModelLoadOptions {
  /** (optional) the configuration; default: read from the checkpoint's shapes (see inferUniConfig). */
  readonly config?: UniControlNetConfig;
  /** (optional, default 8) attention heads when the config is read from the checkpoint. */
  readonly numHeads?: number;
  /** (optional, default false) the local adapter and UNet also output `intermediate.*`. */
  readonly intermediates?: boolean;
  /** (optional) cross-frame attention in the UNet and the local adapter (video methods). */
  readonly crossFrame?: CrossFrameSetting;
}

/** Refuses a checkpoint without Uni-ControlNet's three key groups, saying what the file looks like. */
export function checkUniControlNetStore(store: WeightStore): void {
  const counts = { unet: 0, local: 0, global: 0, controlnet: 0 };
  let total = 0;
  for (const key of store.keys()) {
    total++;
    if (key.startsWith(UNI_PREFIXES.unet)) counts.unet++;
    else if (key.startsWith(UNI_PREFIXES.local_adapter)) counts.local++;
    else if (key.startsWith(UNI_PREFIXES.global_adapter)) counts.global++;
    else if (key.startsWith("control_model.") || key.startsWith("controlnet_")) counts.controlnet++;
  }
  if (counts.local > 0 && counts.global > 0 && counts.unet > 0) return;
  const what =
    counts.local > 0 || counts.global > 0
      ? `a partial Uni-ControlNet (${counts.unet} UNet, ${counts.local} local_adapter, ${counts.global} global_adapter keys)`
      : counts.controlnet > 0
        ? "a ControlNet checkpoint (control_model.* keys)"
        : counts.unet > 0
          ? "a Stable Diffusion checkpoint without Uni-ControlNet adapters"
          : `a file with ${total} tensors and none of Uni-ControlNet's keys`;
  if (counts.local > 0 || counts.global > 0) {
    throw new UnsupportedError(`Uni-ControlNet checkpoint ${store.name}: ${what}`, {
      hint: "load the merged uni.ckpt (model.diffusion_model.*, local_adapter.* and global_adapter.*, as utils/prepare_weights.py integrate writes it)",
    });
  }
  throw new InvalidArgumentError(
    "Uni-ControlNet checkpoint",
    "a uni.ckpt with model.diffusion_model.*, local_adapter.* and global_adapter.* keys",
    store.name,
    { hint: `the file is ${what}; use --model/--controlnet for plain SD and ControlNet files` },
  );
}

/** float32 [1000] `alphas_cumprod` of the checkpoint, or undefined. */
async function checkpointAlphas(store: WeightStore): Promise<Float32Array | undefined> {
  const info = store.info("alphas_cumprod");
  if (info === undefined || info.shape.length !== 1) return undefined;
  const t = await store.source("alphas_cumprod").load();
  return Float32Array.from({ length: t.data.length }, (_, i) => elementAsNumber(t, i));
}

/** Opens a Uni-ControlNet checkpoint, checks it, builds and (by default) compiles its three graphs. */
export async function loadUniControlNet(
  source: UniControlNetSource,
  options: UniControlNetLoadOptions = {},
): Promise<UniControlNet> {
  let store: WeightStore;
  let weightsId: string | null = null;
  if (typeof source === "string") {
    const info = await stat(source).catch(() => undefined);
    if (info === undefined || !info.isFile()) {
      throw new InvalidArgumentError(
        "Uni-ControlNet checkpoint",
        "an existing uni.ckpt or .safetensors file",
        source,
      );
    }
    store = await openCheckpointStore(source);
    weightsId = `${source}:${info.size}:${info.mtimeMs}:uni${UNI_KEY_MAP_VERSION}`;
  } else {
    store = source.store;
    weightsId = source.weightsId ?? null;
  }
  if (!store.synthesize) checkUniControlNetStore(store);
  const config = options.config ?? inferUniConfig(store, store.name, options.numHeads);
  // The local adapter has no anchor-cache feeds: Uni renders denoise their anchors again.
  const crossFrame: CrossFrameSetting = { ...options.crossFrame };
  delete (crossFrame as { anchorCache?: boolean }).anchorCache;
  const graphs = buildUniControlNetGraphs(store, config, {
    intermediates: options.intermediates ?? false,
    ...(options.crossFrame ? { crossFrame } : {}),
  });
  const id = (part: string): string | null => (weightsId === null ? null : `${weightsId}#${part}`);
  const unet = new UNet2DConditionModelRunner(
    new RunnerGraph("unet", graphs.unet.graph, id("unet"), options),
    uniUNetConfig(config),
    options.crossFrame ? crossFrame : undefined,
    true,
  );
  const localAdapter = new LocalAdapterRunner(
    new RunnerGraph("uni-local-adapter", graphs.localAdapter.graph, id("local_adapter"), options),
    config,
    graphs.localAdapter.built.model.numResiduals,
  );
  const globalAdapter = new GlobalAdapterRunner(
    new RunnerGraph("uni-global-adapter", graphs.globalAdapter.graph, id("global_adapter"), options),
    config,
    graphs.globalAdapter.built.model.numTokens,
  );
  const runners = [unet, localAdapter, globalAdapter];
  const release = async (): Promise<void> => {
    for (const r of runners) await r.release();
  };
  try {
    for (const r of runners) await ModelRunner.opened(r, options);
  } catch (error) {
    await release();
    throw error;
  }
  return {
    config,
    unet,
    localAdapter,
    globalAdapter,
    alphasCumprod: store.synthesize ? undefined : await checkpointAlphas(store),
    store,
    release,
  };
}
