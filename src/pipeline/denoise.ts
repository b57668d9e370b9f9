/**
 * One noise prediction of a denoising step, shared by text-to-image and the video engine: the
 * classifier-free-guidance batch, the ControlNet residuals (each net gated by diffusers'
 * `controlnet_keep`, summed as `MultiControlNetModel` does, guess mode feeding the nets the
 * conditional half only) and the UNet call — diffusers 0.26.3 `pipeline_controlnet.py`, step 8 of
 * `__call__`. The scheduler step stays with the caller, which may change the prediction first.
 *
 * A batch holds `n` frames (1 for an image). With guidance the UNet sees `[uncond 0..n-1, cond 0..n-1]`,
 * so `promptEmbeds` must be laid out the same way ([2n, L, C]); the control images are [n, 3, H, W].
 * An LCM-distilled UNet gets its guidance as `timestepCond` (one row, repeated over the batch).
 */
import type { AnchorAttentionIO } from "../models/anchor-attention.js";
import { controlnetKeep } from "../models/controlnet/multi-controlnet.js";
import { guidanceScaleEmbedding } from "../models/unet/embeddings.js";
import type { Scheduler } from "../schedulers/scheduler.js";
import { tensor, type HostTensor } from "../tensor.js";
import { chunkBatch, classifierFreeGuidance, concatBatch } from "./guidance.js";
import type { ControlNet, ControlNetOutputs, DenoisingUNet } from "./types.js";

/** One ControlNet acting on a batch: its control images and schedule. */
export interface BatchControl {
  readonly controlnet: ControlNet;
  /** [n, 3, H, W] in [0, 1], one per frame of the batch. */
  readonly images: HostTensor<"float32">;
  /** (optional, default 1) controlnet_conditioning_scale. */
  readonly scale?: number;
  /** (optional, default 0) fraction of the steps after which the net starts acting. */
  readonly guidanceStart?: number;
  /** (optional, default 1) fraction of the steps after which it stops. */
  readonly guidanceEnd?: number;
}

export interface NoisePredictionInput {
  readonly unet: DenoisingUNet;
  readonly scheduler: Scheduler;
  /** x_t of the batch, [n, C, h, w]. */
  readonly latents: HostTensor<"float32">;
  readonly t: number;
  /** Index of this step in the run and the run's length (for the ControlNet schedule). */
  readonly stepIndex: number;
  readonly numSteps: number;
  /** [2n, L, C] as [uncond..., cond...] with guidance, else [n, L, C]. */
  readonly promptEmbeds: HostTensor<"float32">;
  /** <= 1 disables guidance (unless `cfg` says otherwise). */
  readonly guidanceScale: number;
  /**
   * (optional) whether the batch carries the unconditional half and is guided: default
   * guidanceScale > 1 (diffusers); the LDM samplers guide whenever the scale is not 1.
   */
  readonly cfg?: boolean;
  /** (optional) [1, time_cond_proj_dim]: the guidance embedding of an LCM-distilled UNet. */
  readonly timestepCond?: HostTensor<"float32">;
  readonly controls?: readonly BatchControl[];
  /** ControlNet guess mode: the nets see the conditional half only; the other half gets zeros. */
  readonly guessMode?: boolean;
  /**
   * (optional) T2I-Adapter features of the batch's frames, already times adapter_conditioning_scale
   * ([n, C_l, h_l, w_l] per UNet down block): the UNet's down_intrablock_additional_residuals, given to
   * both halves of the CFG batch as diffusers does.
   */
  readonly intrablockResiduals?: readonly HostTensor<"float32">[];
  /**
   * (optional) the anchor cache's feeds and recordings per model ("unet", "controlnet.<k>"): models
   * built with crossFrame.anchorCache (src/models/anchor-attention.ts, src/engine/anchor-cache.ts).
   */
  readonly anchorAttention?: (model: string) => AnchorAttentionIO | undefined;
  /** Receives named intermediates (`<tag>.latent_model_input`, `<tag>.noise_pred_text`, ...). */
  readonly trace?: (name: string, value: HostTensor) => void;
  /** Prefix of the trace names (e.g. "step03"). */
  readonly tag?: string;
}

export interface NoisePrediction {
  /** The guided noise prediction (model output) for the scheduler, [n, C, h, w]. */
  readonly noisePred: HostTensor<"float32">;
}

function sumResiduals(a: ControlNetOutputs | undefined, b: ControlNetOutputs): ControlNetOutputs {
  if (a === undefined) return b;
  const add = (x: HostTensor<"float32">, y: HostTensor<"float32">): HostTensor<"float32"> =>
    tensor(
      "float32",
      x.shape,
      x.data.map((v, i) => Math.fround(v + (y.data[i] ?? 0))),
    );
  return {
    downBlockResSamples: a.downBlockResSamples.map((x, i) => add(x, b.downBlockResSamples[i] ?? x)),
    midBlockResSample: add(a.midBlockResSample, b.midBlockResSample),
  };
}

/** Guess mode with CFG: the nets ran on the conditional half only; the unconditional half gets zeros. */
function padWithZeros(r: ControlNetOutputs): ControlNetOutputs {
  const pad = (x: HostTensor<"float32">): HostTensor<"float32"> =>
    concatBatch([tensor("float32", x.shape), x]);
  return { downBlockResSamples: r.downBlockResSamples.map(pad), midBlockResSample: pad(r.midBlockResSample) };
}

/** How a run is guided: classifier-free guidance, or (LCM-distilled UNet) the guidance embedding. */
export interface GuidanceMode {
  /** True: the [uncond, cond] batch; false: the conditional batch only. */
  readonly cfg: boolean;
  /** [1, time_cond_proj_dim] = get_guidance_scale_embedding(guidance_scale - 1) for an LCM-distilled UNet. */
  readonly timestepCond?: HostTensor<"float32">;
}

/**
 * diffusers 0.26.3 (StableDiffusionPipeline, LatentConsistencyModelPipeline): a UNet with
 * time_cond_proj_dim runs without classifier-free guidance and gets the scale as an embedding;
 * any other UNet uses CFG when the scale is > 1.
 */
export function guidanceMode(unet: DenoisingUNet, guidanceScale: number): GuidanceMode {
  const dim = unet.guidanceEmbeddingDim;
  if (dim === undefined) return { cfg: guidanceScale > 1 };
  return {
    cfg: false,
    timestepCond: tensor("float32", [1, dim], guidanceScaleEmbedding([guidanceScale - 1], dim)),
  };
}

/** [1, D] repeated to [batch, D]. */
function repeatRows(row: HostTensor<"float32">, batch: number): HostTensor<"float32"> {
  const width = row.shape[1] ?? row.data.length;
  const out = new Float32Array(batch * width);
  for (let b = 0; b < batch; b++) out.set(row.data.subarray(0, width), b * width);
  return tensor("float32", [batch, width], out);
}

/** The guided noise prediction for one step (the scheduler step is the caller's). */
export async function predictNoise(p: NoisePredictionInput): Promise<NoisePrediction> {
  const trace = p.trace ?? (() => undefined);
  const tag = p.tag ?? "step";
  const cfg = p.cfg ?? p.guidanceScale > 1;
  const guessMode = p.guessMode === true;
  const { latents, t, scheduler } = p;
  const frames = latents.shape[0] ?? 1;
  const input = scheduler.scaleModelInput(cfg ? concatBatch([latents, latents]) : latents, t);
  trace(`${tag}.latent_model_input`, input);
  const batch = input.shape[0] ?? 1;
  const timestep = tensor("float32", [batch], new Float32Array(batch).fill(t));
  trace(`${tag}.timestep`, tensor("float32", [], new Float32Array([t])));
  const netCfgHalf = cfg && guessMode;
  const condEmbeds = netCfgHalf ? chunkBatch(p.promptEmbeds, 2)[1] : undefined;
  let residuals: ControlNetOutputs | undefined;
  const anchorsOf = (model: string): { anchorAttention?: AnchorAttentionIO } => {
    const io = p.anchorAttention?.(model);
    return io ? { anchorAttention: io } : {};
  };
  for (const [k, unit] of (p.controls ?? []).entries()) {
    const keep = controlnetKeep(p.stepIndex, p.numSteps, unit.guidanceStart ?? 0, unit.guidanceEnd ?? 1);
    const conditioningScale = (unit.scale ?? 1) * keep;
    if (k === 0)
      trace(
        `${tag}.controlnet.conditioning_scale`,
        tensor("float32", [], new Float32Array([conditioningScale])),
      );
    const out = await unit.controlnet.forward({
      sample: netCfgHalf ? scheduler.scaleModelInput(latents, t) : input,
      timestep: netCfgHalf ? tensor("float32", [frames], new Float32Array(frames).fill(t)) : timestep,
      encoderHiddenStates: condEmbeds ?? p.promptEmbeds,
      controlnetCond: cfg && !guessMode ? concatBatch([unit.images, unit.images]) : unit.images,
      conditioningScale,
      ...anchorsOf(`controlnet.${k}`),
    });
    residuals = sumResiduals(residuals, netCfgHalf ? padWithZeros(out) : out);
  }
  if (residuals) {
    trace(`${tag}.controlnet.mid_block_res_sample`, residuals.midBlockResSample);
    residuals.downBlockResSamples.forEach((r, j) =>
      trace(`${tag}.controlnet.down_block_res_samples.${j}`, r),
    );
  }
  const noise = await p.unet.forward({
    sample: input,
    timestep,
    encoderHiddenStates: p.promptEmbeds,
    ...(p.timestepCond ? { timestepCond: repeatRows(p.timestepCond, batch) } : {}),
    ...(p.intrablockResiduals
      ? {
          downIntrablockAdditionalResiduals: cfg
            ? p.intrablockResiduals.map((r) => concatBatch([r, r]))
            : p.intrablockResiduals,
        }
      : {}),
    ...(residuals
      ? {
          downBlockAdditionalResiduals: residuals.downBlockResSamples,
          midBlockAdditionalResidual: residuals.midBlockResSample,
        }
      : {}),
    ...anchorsOf("unet"),
  });
  if (!cfg) {
    trace(`${tag}.noise_pred_guided`, noise);
    return { noisePred: noise };
  }
  const [uncond, cond] = chunkBatch(noise, 2) as [HostTensor<"float32">, HostTensor<"float32">];
  trace(`${tag}.noise_pred_uncond`, uncond);
  trace(`${tag}.noise_pred_text`, cond);
  const guided = classifierFreeGuidance(uncond, cond, p.guidanceScale);
  trace(`${tag}.noise_pred_guided`, guided);
  return { noisePred: guided };
}
