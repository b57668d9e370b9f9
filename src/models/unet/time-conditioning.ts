/**
 * The time conditioning UNet2DConditionModel and ControlNetModel build alike (diffusers 0.26.3
 * `models/unets/unet_2d_condition.py`, `models/controlnet.py`): `time_proj`, the sinusoid over
 * block_out_channels[0], and `time_embedding` (linear_1 - act - linear_2) to the time embed width;
 * with `time_cond_proj_dim` (LCM-distilled UNets) `time_embedding.cond_proj` adds the guidance embedding.
 */
import type { GraphBuilder, Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import type { WeightScope } from "../../nn/weights.js";
import type { EncoderConfigFields } from "./block-config.js";
import { TimestepEmbedding, Timesteps } from "./embeddings.js";
import type { Tap } from "./unet-2d-condition.js";

export interface TimeConditioning {
  readonly time_proj: Timesteps;
  readonly time_embedding: TimestepEmbedding;
}

/**
 * time_proj and time_embedding for config `c`; `postActFn` is the UNet's timestep_post_act,
 * `condProjDim` its time_cond_proj_dim.
 */
export function timeConditioning(
  w: WeightScope,
  c: Pick<EncoderConfigFields, "block_out_channels" | "flip_sin_to_cos" | "freq_shift" | "act_fn">,
  timeEmbedDim: number,
  postActFn?: string | null,
  condProjDim?: number | null,
): TimeConditioning {
  const ch0 = c.block_out_channels[0] ?? 0;
  return {
    time_proj: new Timesteps({
      numChannels: ch0,
      flipSinToCos: c.flip_sin_to_cos,
      downscaleFreqShift: c.freq_shift,
    }),
    time_embedding: new TimestepEmbedding(w.at("time_embedding"), {
      inChannels: ch0,
      timeEmbedDim,
      actFn: c.act_fn,
      ...(postActFn === undefined ? {} : { postActFn }),
      ...(condProjDim === undefined || condProjDim === null ? {} : { condProjDim }),
    }),
  };
}

/**
 * time_proj(timestep) cast to `dtype` (tapped "time_proj"), then time_embedding (tapped
 * "time_embedding") with the optional `timestepCond` [B, time_cond_proj_dim] (cast to `dtype`).
 */
export function embedTimestep(
  g: GraphBuilder,
  modules: {
    readonly time_proj: { forward(g: GraphBuilder, timestep: Value): Value };
    readonly time_embedding: TimestepEmbedding;
  },
  timestep: Value,
  dtype: Value["dtype"],
  tap: Tap,
  timestepCond?: Value,
): Value {
  const tEmb = op.Cast(g, modules.time_proj.forward(g, timestep), dtype);
  tap("time_proj", tEmb);
  const cond = timestepCond === undefined ? undefined : op.Cast(g, timestepCond, dtype);
  const emb = modules.time_embedding.forward(tEmb, cond);
  tap("time_embedding", emb);
  return emb;
}
