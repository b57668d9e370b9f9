/**
 * What `UNetMotionModel.from_unet2d(unet, motion_adapter)` builds (diffusers 0.26.3
 * models/unets/unet_motion_model.py), as a UNet2DConditionModel config plus checks that the adapter
 * fits the UNet.
 *
 * UNetMotionModel has no config field for some UNet2DConditionModel settings and builds them with
 * fixed values whatever the UNet says: Timesteps(ch0, flip_sin_to_cos=True, freq_shift=0), 3x3
 * conv_in/conv_out, one transformer per attention, no only_cross_attention / upcast_attention /
 * center_input_sample / time-embedding activations, always a mid block. `unetMotionConfig` applies
 * those values (a UNet whose weights do not fit them then fails to bind, as from_unet2d fails to load
 * it); every other field keeps the UNet's value and the UNet builder's checks.
 */
import { ConfigError, UnsupportedError } from "../../errors.js";
import type { UNet2DConditionModelConfig } from "../unet/config.js";
import type { MotionAdapterConfig } from "./config.js";

/** The UNet2DConditionModel config of the UNetMotionModel built from `unet`. */
export function unetMotionConfig(
  unet: UNet2DConditionModelConfig,
  file = "unet/config.json",
): UNet2DConditionModelConfig {
  if (unet.act_fn !== "silu" && unet.act_fn !== "swish") {
    throw new UnsupportedError(
      `UNetMotionModel with the UNet config field act_fn = "${unet.act_fn}" (${file})`,
      {
        hint: "UNetMotionModel applies SiLU after conv_norm_out whatever act_fn is; only silu/swish UNets are implemented",
      },
    );
  }
  if (Array.isArray(unet.layers_per_block)) {
    throw new UnsupportedError(`UNetMotionModel with a per-block layers_per_block list (${file})`, {
      hint: "UNetMotionModel takes one layers_per_block for all blocks",
    });
  }
  return {
    ...unet,
    center_input_sample: false,
    flip_sin_to_cos: true,
    freq_shift: 0,
    conv_in_kernel: 3,
    conv_out_kernel: 3,
    transformer_layers_per_block: 1,
    reverse_transformer_layers_per_block: null,
    only_cross_attention: false,
    upcast_attention: false,
    mid_block_type: "UNetMidBlock2DCrossAttn",
    time_embedding_dim: null,
    time_embedding_act_fn: null,
    timestep_post_act: null,
  };
}

/**
 * Throws unless the adapter's modules fit the UNet one-to-one (as load_motion_modules needs):
 * same block_out_channels, motion_layers_per_block = layers_per_block, one mid-block module.
 */
export function checkAdapterFitsUNet(
  adapterFile: string,
  adapter: MotionAdapterConfig,
  unet: UNet2DConditionModelConfig,
): void {
  if (adapter.conv_in_channels !== null) {
    throw new UnsupportedError(
      `MotionAdapter config field conv_in_channels = ${adapter.conv_in_channels} (${adapterFile})`,
      {
        hint: "PIA motion adapters (an extra conv_in) are not implemented; use an AnimateDiff adapter (conv_in_channels null)",
      },
    );
  }
  const unetChannels = unet.block_out_channels;
  const same =
    adapter.block_out_channels.length === unetChannels.length &&
    adapter.block_out_channels.every((c, i) => c === unetChannels[i]);
  if (!same) {
    throw new ConfigError(
      adapterFile,
      "block_out_channels",
      `[${unetChannels.join(", ")}] (the UNet's block_out_channels)`,
      adapter.block_out_channels,
      {
        hint: "this motion adapter was made for another UNet (AnimateDiff SD-1.5 adapters need an SD-1.5 UNet)",
      },
    );
  }
  const layers = typeof unet.layers_per_block === "number" ? unet.layers_per_block : -1;
  if (adapter.motion_layers_per_block !== layers) {
    throw new ConfigError(
      adapterFile,
      "motion_layers_per_block",
      `${layers} (the UNet's layers_per_block: one motion module per layer)`,
      adapter.motion_layers_per_block,
    );
  }
  if (adapter.use_motion_mid_block && adapter.motion_mid_block_layers_per_block !== 1) {
    throw new ConfigError(
      adapterFile,
      "motion_mid_block_layers_per_block",
      "1 (UNetMotionModel's mid block has one motion module)",
      adapter.motion_mid_block_layers_per_block,
    );
  }
  const heads = adapter.motion_num_attention_heads;
  if (!(heads >= 1) || adapter.block_out_channels.some((c) => c < heads)) {
    throw new ConfigError(
      adapterFile,
      "motion_num_attention_heads",
      "a positive number no larger than any block's channels",
      heads,
    );
  }
  if (!(adapter.motion_max_seq_length >= 1)) {
    throw new ConfigError(
      adapterFile,
      "motion_max_seq_length",
      "a positive integer",
      adapter.motion_max_seq_length,
    );
  }
}
