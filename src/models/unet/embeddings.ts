/**
 * Embeddings, as diffusers 0.26.3 `models/embeddings.py`: `Timesteps` (the sinusoid of
 * `get_timestep_embedding`, always float32), `TimestepEmbedding` (linear_1 - act - linear_2, with
 * the optional bias-free `cond_proj` of LCM-distilled UNets), `SinusoidalPositionalEmbedding` (the
 * motion modules' `pos_embed`) and `guidanceScaleEmbedding` (the LCM pipelines'
 * `get_guidance_scale_embedding`, computed on the host).
 */
import { GraphError } from "../../errors.js";
import type { GraphBuilder, Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { Linear } from "../../nn/linear.js";
import { Module } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import { diffusersActivation } from "./activation.js";

export interface TimestepsOptions {
  readonly numChannels: number;
  readonly flipSinToCos: boolean;
  readonly downscaleFreqShift: number;
  /** Default 1. */
  readonly scale?: number;
  /** Default 10000. */
  readonly maxPeriod?: number;
}

/**
 * The sinusoid frequencies exp(-ln(max_period) * i / (half - shift)), rounded step by step to
 * float32 as torch computes them (float32 arange times a float32-cast scalar, divided, exp).
 */
export function timestepFrequencies(
  embeddingDim: number,
  downscaleFreqShift: number,
  maxPeriod = 10000,
): Float32Array {
  const half = Math.floor(embeddingDim / 2);
  const factor = Math.fround(-Math.log(maxPeriod));
  const divisor = Math.fround(half - downscaleFreqShift);
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++)
    out[i] = Math.fround(Math.exp(Math.fround(Math.fround(factor * i) / divisor)));
  return out;
}

/** diffusers Timesteps: timestep [B] (any float/int dtype) -> float32 [B, numChannels]. No weights. */
export class Timesteps {
  constructor(readonly options: TimestepsOptions) {
    if (!Number.isInteger(options.numChannels) || options.numChannels < 2) {
      throw new GraphError("Timesteps", `num_channels must be an integer >= 2, got ${options.numChannels}`);
    }
  }

  forward(g: GraphBuilder, timestep: Value): Value {
    const { numChannels, flipSinToCos, downscaleFreqShift } = this.options;
    if (timestep.rank !== 1)
      throw new GraphError(
        "Timesteps",
        `timesteps must be 1-D [batch] but ${timestep.name} has rank ${timestep.rank}`,
      );
    return g.scope("time_proj", () => {
      const freqs = timestepFrequencies(numChannels, downscaleFreqShift, this.options.maxPeriod);
      const t = op.Unsqueeze(g, op.Cast(g, timestep, "float32"), [1]); // [B, 1]
      let args = op.Mul(g, t, g.constant({ dtype: "float32", shape: [freqs.length], data: freqs })); // [B, half]
      const scale = this.options.scale ?? 1;
      if (scale !== 1) args = op.Mul(g, args, scale);
      const sin = op.Sin(g, args);
      const cos = op.Cos(g, args);
      let emb = op.Concat(g, flipSinToCos ? [cos, sin] : [sin, cos], 1);
      if (numChannels % 2 === 1) emb = op.Pad(g, emb, [0, 0, 0, 1]);
      return emb;
    });
  }
}

export interface GaussianFourierProjectionOptions {
  /** embedding_size: the number of frequencies (the output has twice as many channels). */
  readonly embeddingSize: number;
  readonly flipSinToCos: boolean;
}

/**
 * diffusers GaussianFourierProjection as UNet2DConditionModel builds it for time_embedding_type
 * "fourier" (set_W_to_weight=False, log=False): timestep [B] -> float32 [B, 2 * embeddingSize],
 * x_proj = t * weight * 2 * pi (rounded in float32 left to right, as torch), then [sin, cos] (or
 * [cos, sin] with flip_sin_to_cos). Weight key `weight` [embeddingSize].
 */
export class GaussianFourierProjection extends Module {
  readonly weight: Value;

  constructor(
    w: WeightScope,
    readonly options: GaussianFourierProjectionOptions,
  ) {
    super(w);
    this.weight = w.param("weight", [options.embeddingSize]);
  }

  forward(g: GraphBuilder, timestep: Value): Value {
    if (timestep.rank !== 1)
      throw new GraphError(
        "GaussianFourierProjection",
        `timesteps must be 1-D [batch] but ${timestep.name} has rank ${timestep.rank}`,
      );
    return this.scoped(() => {
      const t = op.Unsqueeze(g, op.Cast(g, timestep, "float32"), [1]); // [B, 1]
      const weight = op.Unsqueeze(g, op.Cast(g, this.weight, "float32"), [0]); // [1, n]
      const proj = op.Mul(g, op.Mul(g, op.Mul(g, t, weight), 2), Math.fround(Math.PI));
      const sin = op.Sin(g, proj);
      const cos = op.Cos(g, proj);
      return op.Concat(g, this.options.flipSinToCos ? [cos, sin] : [sin, cos], 1);
    });
  }
}

export interface TimestepEmbeddingOptions {
  readonly inChannels: number;
  readonly timeEmbedDim: number;
  /** Default: timeEmbedDim. */
  readonly outDim?: number;
  /** act_fn (default "silu"). */
  readonly actFn?: string;
  /** timestep_post_act (default none). */
  readonly postActFn?: string | null;
  /** time_cond_proj_dim: adds `cond_proj` (no bias, [inChannels, condProjDim]) (default none). */
  readonly condProjDim?: number | null;
}

/** diffusers TimestepEmbedding: keys linear_1, linear_2 (and cond_proj with condProjDim). */
export class TimestepEmbedding extends Module {
  readonly linear_1: Linear;
  readonly linear_2: Linear;
  readonly cond_proj: Linear | null;

  constructor(
    w: WeightScope,
    readonly options: TimestepEmbeddingOptions,
  ) {
    super(w);
    this.linear_1 = new Linear(w.at("linear_1"), {
      inFeatures: options.inChannels,
      outFeatures: options.timeEmbedDim,
    });
    this.linear_2 = new Linear(w.at("linear_2"), {
      inFeatures: options.timeEmbedDim,
      outFeatures: options.outDim ?? options.timeEmbedDim,
    });
    const cond = options.condProjDim;
    this.cond_proj =
      cond === undefined || cond === null
        ? null
        : new Linear(w.at("cond_proj"), { inFeatures: cond, outFeatures: options.inChannels, bias: false });
  }

  /** `condition` [B, condProjDim] (the guidance embedding) is projected and added to `sample` first. */
  forward(sample: Value, condition?: Value): Value {
    const g = this.graph;
    return this.scoped(() => {
      if (condition !== undefined) {
        if (this.cond_proj === null)
          throw new GraphError("TimestepEmbedding", "got a condition but the model has no cond_proj");
        sample = op.Add(g, sample, this.cond_proj.forward(condition));
      }
      let h = diffusersActivation(g, this.linear_1.forward(sample), this.options.actFn ?? "silu");
      h = this.linear_2.forward(h);
      const post = this.options.postActFn;
      return post === undefined || post === null ? h : diffusersActivation(g, h, post);
    });
  }
}

/**
 * The table diffusers' SinusoidalPositionalEmbedding registers as `pe` [1, maxSeqLength, embedDim]:
 * pe[p, 2i] = sin(p * d_i), pe[p, 2i+1] = cos(p * d_i), d_i = exp(2i * -ln(10000) / embedDim), each
 * step rounded to float32 as torch computes it. Row-major [maxSeqLength, embedDim].
 */
export function sinusoidalPositionTable(embedDim: number, maxSeqLength: number): Float32Array {
  if (!Number.isInteger(embedDim) || embedDim < 2 || embedDim % 2 !== 0) {
    throw new GraphError(
      "SinusoidalPositionalEmbedding",
      `embed_dim must be an even integer >= 2, got ${embedDim}`,
    );
  }
  if (!Number.isInteger(maxSeqLength) || maxSeqLength < 1) {
    throw new GraphError(
      "SinusoidalPositionalEmbedding",
      `max_seq_length must be a positive integer, got ${maxSeqLength}`,
    );
  }
  const factor = Math.fround(-Math.log(10000) / embedDim);
  const half = embedDim / 2;
  const div = new Float32Array(half);
  for (let i = 0; i < half; i++) div[i] = Math.fround(Math.exp(Math.fround(2 * i * factor)));
  const out = new Float32Array(maxSeqLength * embedDim);
  for (let p = 0; p < maxSeqLength; p++) {
    for (let i = 0; i < half; i++) {
      const arg = Math.fround(p * (div[i] ?? 0));
      out[p * embedDim + 2 * i] = Math.fround(Math.sin(arg));
      out[p * embedDim + 2 * i + 1] = Math.fround(Math.cos(arg));
    }
  }
  return out;
}

export interface SinusoidalPositionalEmbeddingOptions {
  readonly embedDim: number;
  readonly maxSeqLength: number;
}

/**
 * diffusers SinusoidalPositionalEmbedding: x [N, S, embedDim] + pe[:, :S]. The `pe` buffer is a
 * weight (key `pe`, [1, maxSeqLength, embedDim]) as diffusers saves it; stores without it (original
 * AnimateDiff checkpoints) get `sinusoidalPositionTable`. S may be a runtime dim (at most maxSeqLength).
 */
export class SinusoidalPositionalEmbedding extends Module {
  readonly pe: Value;

  constructor(
    w: WeightScope,
    readonly options: SinusoidalPositionalEmbeddingOptions,
  ) {
    super(w);
    this.pe = w.param("pe", [1, options.maxSeqLength, options.embedDim]);
  }

  forward(x: Value): Value {
    const g = this.graph;
    return this.scoped(() => {
      const seq = x.shape[1];
      const ends = typeof seq === "number" ? [seq] : op.Shape(g, x, { start: 1, end: 2 });
      return op.Add(g, x, op.Slice(g, this.pe, { starts: [0], ends, axes: [1] }));
    });
  }
}

/**
 * diffusers' `get_guidance_scale_embedding(w, embedding_dim)` of the LCM pipelines (the VDM
 * sinusoid): for each w, with W = 1000 w and half = floor(dim / 2),
 * [sin(W f_0) .. sin(W f_{half-1}), cos(W f_0) .. cos(W f_{half-1})] (zero-padded to `dim` when odd),
 * f_i = exp(-i ln(10000) / (half - 1)); each step rounded to float32 as torch computes it.
 * Returns float32 [w.length, dim] row-major. The pipelines pass w = guidance_scale - 1.
 */
export function guidanceScaleEmbedding(w: readonly number[], dim: number): Float32Array {
  const half = Math.floor(dim / 2);
  if (!Number.isInteger(dim) || half < 2) {
    throw new GraphError("guidanceScaleEmbedding", `embedding_dim must be an integer >= 4, got ${dim}`);
  }
  const step = Math.fround(Math.fround(Math.log(10000)) / (half - 1));
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) freqs[i] = Math.fround(Math.exp(Math.fround(i * -step)));
  const out = new Float32Array(w.length * dim);
  w.forEach((value, b) => {
    const scaled = Math.fround(Math.fround(value) * 1000);
    for (let i = 0; i < half; i++) {
      const arg = Math.fround(scaled * (freqs[i] ?? 0));
      out[b * dim + i] = Math.fround(Math.sin(arg));
      out[b * dim + half + i] = Math.fround(Math.cos(arg));
    }
  });
  return out;
}
