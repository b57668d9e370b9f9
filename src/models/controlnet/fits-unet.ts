/**
 * Whether a ControlNet's residuals fit a UNet: same latent channels, the same down path (block
 * widths, block count, layers per block, downsample padding: so the same number and shapes of skip
 * connections) and the same text embedding width.
 */
import { ConfigError } from "../../errors.js";
import type { UNet2DConditionModelConfig } from "../unet/config.js";
import type { ControlNetModelConfig } from "./config.js";

export interface FitsUNetOptions {
  /** (optional, default "controlnet/config.json") names the ControlNet config in the error. */
  readonly controlnetFile?: string;
  /** (optional, default "unet/config.json") names the UNet config in the error. */
  readonly unetFile?: string;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Every way `controlnet` does not fit `unet` ([] when it fits): [field, controlnet value, unet value]. */
export function controlNetMismatches(
  controlnet: ControlNetModelConfig,
  unet: UNet2DConditionModelConfig,
): [string, unknown, unknown][] {
  const n = unet.block_out_channels.length;
  const perBlock = (v: number | readonly number[]): readonly number[] =>
    typeof v === "number" ? Array<number>(n).fill(v) : v;
  const unetCross =
    typeof unet.cross_attention_dim === "number" ? unet.cross_attention_dim : unet.cross_attention_dim[0];
  const checks: [string, unknown, unknown][] = [
    ["in_channels", controlnet.in_channels, unet.in_channels],
    ["block_out_channels", controlnet.block_out_channels, unet.block_out_channels],
    ["down_block_types (count)", controlnet.down_block_types.length, unet.down_block_types.length],
    ["layers_per_block", perBlock(controlnet.layers_per_block), perBlock(unet.layers_per_block)],
    ["downsample_padding", controlnet.downsample_padding, unet.downsample_padding],
    ["cross_attention_dim", controlnet.cross_attention_dim, unetCross],
  ];
  return checks.filter(([, a, b]) => !same(a, b));
}

/**
 * Returns true when the ControlNet fits the UNet; otherwise throws a ConfigError naming the first
 * mismatching field and listing every mismatch.
 */
export function fitsUNet(
  controlnet: ControlNetModelConfig,
  unet: UNet2DConditionModelConfig,
  options: FitsUNetOptions = {},
): true {
  const problems = controlNetMismatches(controlnet, unet);
  const first = problems[0];
  if (first === undefined) return true;
  const unetFile = options.unetFile ?? "unet/config.json";
  const list = problems
    .map(([f, a, b]) => `${f}: ${JSON.stringify(a)} vs ${JSON.stringify(b)} in ${unetFile}`)
    .join("; ");
  throw new ConfigError(
    options.controlnetFile ?? "controlnet/config.json",
    first[0],
    `${JSON.stringify(first[2])} as in ${unetFile}`,
    first[1],
    {
      hint: `this ControlNet does not fit the UNet (${list}); use a ControlNet trained for this base model (e.g. SD 1.x vs SD 2.x)`,
    },
  );
}
