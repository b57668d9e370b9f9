/**
 * The feeds for a UNet graph's ControlNet residual inputs (`down_block_additional_residuals.{i}`,
 * `mid_block_additional_residual`, declared by build.ts `declareResidualInputs`), one policy for
 * UNet2DConditionModel and UNetMotionModel runners:
 *
 * - a graph without residual inputs takes none (InvalidArgumentError saying how to load one that does);
 * - none given: zeros of each input's shape. Adding zeros is exactly diffusers' `None` (x + 0 == x in
 *   float arithmetic), so one session serves steps with and without ControlNet (a control guidance
 *   window, frames without control maps) at no numeric cost;
 * - all given: one down residual per skip connection and the mid residual;
 * - only one of the two: InvalidArgumentError. diffusers 0.26.3 would read down residuals without a
 *   mid residual as T2I-Adapter residuals (another injection point) and ignore a lone mid residual:
 *   a partial set is a caller's mistake, never silently completed.
 *
 * T2I-Adapter features (`down_intrablock_additional_residuals.{i}`, one per down block) follow the
 * same policy on their own (`intrablockFeeds`): none given -> zeros, all given -> fed as they are.
 */
import { InvalidArgumentError, UnsupportedError } from "../../errors.js";
import type { TensorSpec } from "../../runtime/validate-feeds.js";
import { type HostTensor, shapesEqual, tensor } from "../../tensor.js";
import { UNET_INPUT, intrablockResidualName, isResidualInput } from "./build.js";

export interface GivenResiduals {
  readonly downBlockAdditionalResiduals?: readonly HostTensor[] | undefined;
  readonly midBlockAdditionalResidual?: HostTensor | undefined;
}

/** Where zeros for absent residuals get their sizes. */
export interface ResidualGeometry {
  /** First dim of every residual (batch for the UNet, batch * frames for UNetMotionModel). */
  readonly batch: number;
  /** The latent height and width (level 0). */
  readonly height: number;
  readonly width: number;
  /** The UNet config's downsample_padding (Downsample2D's conv padding). */
  readonly downsamplePadding: number;
}

export interface ResidualFeedOptions {
  /** The model class, for errors ("UNetMotionModel"). */
  readonly model: string;
  /** Sizes for zeros (called only when zeros are fed). */
  readonly geometry: () => ResidualGeometry;
}

/** The residual input specs of a session (empty when it has none). */
export function residualSpecs(inputs: readonly TensorSpec[]): TensorSpec[] {
  return inputs.filter((s) => isResidualInput(s.name));
}

/** Feeds for `specs` (a session's residual inputs) from what a call gave; see the module comment. */
export function residualFeeds(
  specs: readonly TensorSpec[],
  given: GivenResiduals,
  options: ResidualFeedOptions,
): Record<string, HostTensor> {
  const down = given.downBlockAdditionalResiduals;
  const mid = given.midBlockAdditionalResidual;
  if (specs.length === 0) {
    if (down === undefined && mid === undefined) return {};
    throw new InvalidArgumentError(
      down === undefined ? "midBlockAdditionalResidual" : "downBlockAdditionalResiduals",
      `no ControlNet residuals (this ${options.model} was loaded without them)`,
      "residuals",
      { hint: `load the ${options.model} with { residuals: true }` },
    );
  }
  const downSpecs = specs.filter((s) => s.name !== UNET_INPUT.midBlockAdditionalResidual);
  const midSpec = specs.find((s) => s.name === UNET_INPUT.midBlockAdditionalResidual);
  if (down !== undefined && down.length !== downSpecs.length) {
    throw new InvalidArgumentError(
      "downBlockAdditionalResiduals",
      `${downSpecs.length} tensors (one per skip connection)`,
      `${down.length} tensors`,
    );
  }
  if ((down === undefined) !== (mid === undefined)) {
    throw new InvalidArgumentError(
      down === undefined ? "downBlockAdditionalResiduals" : "midBlockAdditionalResidual",
      `${downSpecs.length} down residuals and a mid residual, or neither (this ${options.model} was loaded with residuals)`,
      undefined,
      { hint: "pass both outputs of the ControlNet, or neither for a step without ControlNet" },
    );
  }
  const feeds: Record<string, HostTensor> = {};
  if (down !== undefined && mid !== undefined) {
    downSpecs.forEach((spec, i) => {
      const t = down[i];
      if (t !== undefined) feeds[spec.name] = t;
    });
    if (midSpec !== undefined) feeds[midSpec.name] = mid;
    return feeds;
  }
  const geometry = options.geometry();
  for (const spec of specs) feeds[spec.name] = zerosFor(spec, geometry);
  return feeds;
}

/** Feeds for a session's T2I-Adapter inputs (none when it has none); see the module comment. */
export function intrablockFeeds(
  inputs: readonly TensorSpec[],
  given: readonly HostTensor[] | undefined,
  options: ResidualFeedOptions,
): Record<string, HostTensor> {
  const specs = inputs.filter((s) => /^down_intrablock_additional_residuals\.\d+$/.test(s.name));
  if (specs.length === 0) {
    if (given === undefined) return {};
    throw new InvalidArgumentError(
      "downIntrablockAdditionalResiduals",
      `no T2I-Adapter residuals (this ${options.model} was loaded without them)`,
      `${given.length} tensors`,
      { hint: `load the ${options.model} with { intrablockResiduals: true }` },
    );
  }
  // diffusers 0.26.3 pops one feature per down block while any are left (fewer features: the last
  // blocks get none, i.e. zeros here); a feature left over is added after the mid block only when
  // its shape is the mid block's (the last block's feature shape), which this UNet cannot take.
  const extra = given?.slice(specs.length) ?? [];
  const last = given?.[specs.length - 1];
  if (last !== undefined && extra.some((t) => shapesEqual(t.shape, last.shape)))
    throw new UnsupportedError(
      "a T2I-Adapter feature beyond the down blocks shaped like the mid block (diffusers adds it after the mid block)",
    );
  const feeds: Record<string, HostTensor> = {};
  const geometry = given === undefined || given.length < specs.length ? options.geometry() : undefined;
  specs.forEach((spec, i) => {
    const t = given?.[i] ?? (geometry ? zerosFor(spec, geometry) : undefined);
    if (t !== undefined) feeds[intrablockResidualName(i)] = t;
  });
  return feeds;
}

/**
 * Zeros in place of a residual no ControlNet produced this step: the shape the skip connection has
 * at the input's level (read off its symbolic height dim, `height_<level>`; level 0 is `height`).
 */
function zerosFor(spec: TensorSpec, g: ResidualGeometry): HostTensor {
  let [h, w] = [g.height, g.width];
  const level = Number(/^height_(\d+)$/.exec(String(spec.shape[2]))?.[1] ?? 0);
  const p = g.downsamplePadding;
  // Downsample2D: 3x3 conv, stride 2, padding p (p = 0 pads bottom/right by one).
  const down = (n: number): number =>
    p === 0 ? Math.floor((n - 2) / 2) + 1 : Math.floor((n + 2 * p - 3) / 2) + 1;
  for (let l = 0; l < level; l++) [h, w] = [down(h), down(w)];
  const channels = Number(spec.shape[1]);
  if (!Number.isInteger(channels))
    throw new InvalidArgumentError(spec.name, "a static channel count", spec.shape[1]);
  return tensor(spec.dtype === "float16" ? "float16" : "float32", [g.batch, channels, h, w]);
}
