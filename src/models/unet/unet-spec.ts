/**
 * The full block layout of a UNet2DConditionModel config (down, mid and up paths, skip connection
 * shapes), following diffusers 0.26.3 `UNet2DConditionModel.__init__`; refuses UNet-only config
 * fields the builder does not implement.
 */
import { ConfigError } from "../../errors.js";
import { type EncoderSpec, depthPerLayer, requireSupported, resolveEncoder } from "./block-config.js";
import type { UNet2DConditionModelConfig } from "./config.js";
import type { UpBlockSpec } from "./up-blocks.js";

export interface UNetSpec extends EncoderSpec {
  readonly up: readonly UpBlockSpec[];
}

/** One skip connection: its channels and its level (0 = full resolution, l = downsampled l times). */
export interface SkipShape {
  readonly channels: number;
  readonly level: number;
}

/** The skip connections the down path produces, in order: conv_in, then each block's states. */
export function skipShapes(spec: EncoderSpec): SkipShape[] {
  const first = spec.down[0];
  const out: SkipShape[] = [{ channels: first?.inChannels ?? 0, level: 0 }];
  spec.down.forEach((block, level) => {
    for (let i = 0; i < block.numLayers; i++) out.push({ channels: block.outChannels, level });
    if (block.addDownsample) out.push({ channels: block.outChannels, level: level + 1 });
  });
  return out;
}

function checkUNetSupported(c: UNet2DConditionModelConfig): void {
  const check = (field: string, value: unknown, ok: boolean, hint: string): void =>
    requireSupported(ok, "UNet2DConditionModel", field, value, hint);
  check(
    "dual_cross_attention",
    c.dual_cross_attention,
    !c.dual_cross_attention,
    "dual cross-attention is not implemented",
  );
  check(
    "time_cond_proj_dim",
    c.time_cond_proj_dim,
    c.time_cond_proj_dim === null || (Number.isInteger(c.time_cond_proj_dim) && c.time_cond_proj_dim >= 4),
    "the guidance embedding needs an integer time_cond_proj_dim >= 4",
  );
  check(
    "time_embedding_type",
    c.time_embedding_type,
    c.time_embedding_type === "positional" || c.time_embedding_type === "fourier",
    'use "positional" or "fourier"',
  );
  check(
    "attention_type",
    c.attention_type,
    c.attention_type === "default",
    'only "default" attention is implemented',
  );
  check(
    "class_embeddings_concat",
    c.class_embeddings_concat,
    !c.class_embeddings_concat,
    "concatenated class embeddings are not implemented (added ones are)",
  );
  for (const [i, t] of c.up_block_types.entries()) {
    check(
      `up_block_types[${i}]`,
      t,
      t === "CrossAttnUpBlock2D" || t === "UpBlock2D",
      "use CrossAttnUpBlock2D or UpBlock2D",
    );
  }
  for (const field of ["conv_in_kernel", "conv_out_kernel"] as const) {
    check(field, c[field], c[field] % 2 === 1, "only odd kernel sizes keep the spatial size");
  }
}

function reversedTransformerLayers(
  file: string,
  c: UNet2DConditionModelConfig,
  forward: EncoderSpec["perBlock"]["transformerLayers"],
): (number | readonly number[])[] {
  const n = c.up_block_types.length;
  const given = c.reverse_transformer_layers_per_block;
  if (given === null || given === undefined) {
    if (forward.some((v) => typeof v !== "number")) {
      throw new ConfigError(
        file,
        "reverse_transformer_layers_per_block",
        "a list (required when transformer_layers_per_block has per-layer lists)",
        given,
      );
    }
    return [...forward].reverse();
  }
  const ok =
    Array.isArray(given) &&
    given.length === n &&
    given.every((v) => Array.isArray(v) && v.every((d) => Number.isInteger(d) && d >= 1));
  if (!ok)
    throw new ConfigError(
      file,
      "reverse_transformer_layers_per_block",
      `null or a list of ${n} per-layer lists`,
      given,
    );
  return (given as number[][]).map((v) => [...v]);
}

/** Resolves the whole UNet layout; `file` names the config in errors. */
export function resolveUNet(file: string, c: UNet2DConditionModelConfig): UNetSpec {
  checkUNetSupported(c);
  const fourier = c.time_embedding_type === "fourier";
  const timeEmbedDim = c.time_embedding_dim ?? (c.block_out_channels[0] ?? 0) * (fourier ? 2 : 4);
  if (fourier && timeEmbedDim % 2 !== 0) {
    throw new ConfigError(
      file,
      "time_embedding_dim",
      'an even number (time_embedding_type "fourier" projects to time_embedding_dim / 2 frequencies)',
      timeEmbedDim,
    );
  }
  const enc = resolveEncoder("UNet2DConditionModel", file, c, timeEmbedDim, true);
  const n = c.block_out_channels.length;
  if (c.up_block_types.length !== n) {
    throw new ConfigError(
      file,
      "up_block_types",
      `a list of ${n} (as many as down_block_types)`,
      c.up_block_types,
    );
  }
  const channels = [...c.block_out_channels].reverse();
  const heads = [...enc.perBlock.numHeads].reverse();
  const layers = [...enc.perBlock.layersPerBlock].reverse();
  const crossDims = [...enc.perBlock.crossAttentionDim].reverse();
  const onlyCross = [...enc.perBlock.onlyCrossAttention].reverse();
  const depths = reversedTransformerLayers(file, c, enc.perBlock.transformerLayers);
  const up: UpBlockSpec[] = [];
  let outChannels = channels[0] ?? 0;
  for (let i = 0; i < n; i++) {
    const prevOutputChannels = outChannels;
    outChannels = channels[i] ?? 0;
    const numLayers = (layers[i] ?? 1) + 1;
    up.push({
      type: c.up_block_types[i] === "CrossAttnUpBlock2D" ? "CrossAttnUpBlock2D" : "UpBlock2D",
      inChannels: channels[Math.min(i + 1, n - 1)] ?? 0,
      prevOutputChannels,
      outChannels,
      numLayers,
      transformerLayers: depthPerLayer(
        file,
        `reverse_transformer_layers_per_block[${i}]`,
        depths[i] ?? 1,
        numLayers,
      ),
      crossAttentionDim: crossDims[i] ?? 0,
      numHeads: heads[i] ?? 1,
      onlyCrossAttention: onlyCross[i] ?? false,
      addUpsample: i < n - 1,
    });
  }
  return { ...enc, up };
}
