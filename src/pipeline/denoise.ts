/**
 * One noise prediction of a denoising step, shared by text-to-image and the video engine: the
 * classifier-free-guidance batch, the ControlNet residuals (each net gated by diffusers'
 * `controlnet_keep`, summed as `MultiControlNetModel` does, guess mode feeding the nets the
 * conditional half only) and the UNet call — diffusers 0.26.3 `pipeline_controlnet.py`, step 8 of
 * `__call__`. The scheduler step stays with the caller, which may change the prediction first.
 *
 * A batch holds `n` frames (1 for an image). With guidance the UNet sees `[uncond 0..n-1, cond 0..n-1]`,
 * so `promptEmbeds` must be laid out the same way ([2n, L, C]); the control images are [n, 3, H, W].
 */
import { controlnetKeep } from "../models/controlnet/multi-controlnet.js";
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
  /** <= 1 disables guidance. */
  readonly guidanceScale: number;
  readonly controls?: readonly BatchControl[];
  /** ControlNet guess mode: the nets see the conditional half only; the other half gets zeros. */
  readonly guessMode?: boolean;
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

/** The guided noise prediction for one step (the scheduler step is the caller's). */
export async function predictNoise(p: NoisePredictionInput): Promise<NoisePrediction> {
  const trace = p.trace ?? (() => undefined);
  const tag = p.tag ?? "step";
  const cfg = p.guidanceScale > 1;
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
    ...(residuals
      ? {
          downBlockAdditionalResiduals: residuals.downBlockResSamples,
          midBlockAdditionalResidual: residuals.midBlockResSample,
        }
      : {}),
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
