/**
 * The UNet down path blocks, as diffusers 0.26.3 `models/unets/unet_2d_blocks.py`:
 * CrossAttnDownBlock2D (resnets.i + attentions.i) and DownBlock2D (resnets.i), each optionally
 * ending in downsamplers.0. `forward` returns the block output and every state it adds to the skip
 * connections (one per layer, plus the downsampled one). A T2I-Adapter feature (diffusers
 * `down_intrablock_additional_residuals`) is added where 0.26.3 adds it: in a CrossAttnDownBlock2D
 * after the last resnet+attention pair, before the downsampler; in a DownBlock2D to the block output
 * in place, so the last skip state (the same tensor in diffusers) carries it too.
 */
import type { Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { Module, moduleList } from "../../nn/module.js";
import type { WeightScope } from "../../nn/weights.js";
import type { DownBlockSpec, SharedBlockSettings } from "./block-config.js";
import { blockAttentions, blockResnetOptions } from "./block-layers.js";
import { type AfterLayerHook, type BlockLayerHook, blockHook } from "./layer-hook.js";
import { ResnetBlock2D } from "./resnet.js";
import { Downsample2D } from "./sampling.js";
import type { Transformer2DModel } from "./transformer-2d.js";

export interface DownBlockOutput {
  readonly hidden: Value;
  /** States for the skip connections, in order. */
  readonly states: readonly Value[];
}

export interface DownBlock {
  /**
   * `afterLayer` (optional) runs on each layer's output before it becomes a skip connection;
   * `intrablock` (optional) is the block's T2I-Adapter feature (see the module comment).
   */
  forward(
    x: Value,
    temb: Value,
    encoderHiddenStates: Value,
    afterLayer?: BlockLayerHook,
    intrablock?: Value,
  ): DownBlockOutput;
}

export function makeResnets(
  w: WeightScope,
  spec: DownBlockSpec,
  shared: SharedBlockSettings,
): ResnetBlock2D[] {
  return moduleList(
    w.at("resnets"),
    spec.numLayers,
    (s, i) =>
      new ResnetBlock2D(
        s,
        blockResnetOptions(shared, i === 0 ? spec.inChannels : spec.outChannels, spec.outChannels),
      ),
  );
}

function makeDownsamplers(w: WeightScope, spec: DownBlockSpec): Downsample2D[] {
  if (!spec.addDownsample) return [];
  return moduleList(
    w.at("downsamplers"),
    1,
    (s) => new Downsample2D(s, { channels: spec.outChannels, padding: spec.downsamplePadding }),
  );
}

/**
 * A down block's forward: each resnet, then `layer` (its transformer, if any) and the hook, adds a
 * skip state; the downsampler adds the last one.
 */
function runDownLayers(
  block: { readonly resnets: readonly ResnetBlock2D[]; readonly downsamplers: readonly Downsample2D[] },
  x: Value,
  temb: Value,
  layer: (h: Value, i: number) => Value,
  afterLayer?: BlockLayerHook,
  intrablock?: { readonly feature: Value; readonly at: "last-layer" | "output" },
): DownBlockOutput {
  const states: Value[] = [];
  let h = x;
  const last = block.resnets.length - 1;
  block.resnets.forEach((resnet, i) => {
    h = layer(resnet.forward(h, temb), i);
    if (afterLayer) h = afterLayer(h, i);
    if (intrablock?.at === "last-layer" && i === last) h = op.Add(h.graph, h, intrablock.feature);
    states.push(h);
  });
  for (const down of block.downsamplers) {
    h = down.forward(h);
    states.push(h);
  }
  if (intrablock?.at === "output") {
    // diffusers `sample += residual` on the block output: the last skip state is that same tensor.
    h = op.Add(h.graph, h, intrablock.feature);
    states[states.length - 1] = h;
  }
  return { hidden: h, states };
}

export class DownBlock2D extends Module implements DownBlock {
  readonly resnets: readonly ResnetBlock2D[];
  readonly downsamplers: readonly Downsample2D[];

  constructor(w: WeightScope, spec: DownBlockSpec, shared: SharedBlockSettings) {
    super(w);
    this.resnets = makeResnets(w, spec, shared);
    this.downsamplers = makeDownsamplers(w, spec);
  }

  forward(
    x: Value,
    temb: Value,
    _encoderHiddenStates?: Value,
    afterLayer?: BlockLayerHook,
    intrablock?: Value,
  ): DownBlockOutput {
    const residual = intrablock ? { feature: intrablock, at: "output" as const } : undefined;
    return runDownLayers(this, x, temb, (h) => h, afterLayer, residual);
  }
}

export class CrossAttnDownBlock2D extends Module implements DownBlock {
  readonly resnets: readonly ResnetBlock2D[];
  readonly attentions: readonly Transformer2DModel[];
  readonly downsamplers: readonly Downsample2D[];

  constructor(w: WeightScope, spec: DownBlockSpec, shared: SharedBlockSettings) {
    super(w);
    this.resnets = makeResnets(w, spec, shared);
    this.attentions = blockAttentions(w, spec.numLayers, spec.outChannels, spec, shared);
    this.downsamplers = makeDownsamplers(w, spec);
  }

  forward(
    x: Value,
    temb: Value,
    encoderHiddenStates: Value,
    afterLayer?: BlockLayerHook,
    intrablock?: Value,
  ): DownBlockOutput {
    const attend = (h: Value, i: number): Value => this.attentions[i]?.forward(h, encoderHiddenStates) ?? h;
    const residual = intrablock ? { feature: intrablock, at: "last-layer" as const } : undefined;
    return runDownLayers(this, x, temb, attend, afterLayer, residual);
  }
}

/** The block class named by down_block_types. */
export function makeDownBlock(w: WeightScope, spec: DownBlockSpec, shared: SharedBlockSettings): DownBlock {
  return spec.type === "CrossAttnDownBlock2D"
    ? new CrossAttnDownBlock2D(w, spec, shared)
    : new DownBlock2D(w, spec, shared);
}

/**
 * Runs the down path from the conv_in output `x`: returns the last hidden state and every skip
 * connection (x first). `tap` receives each block's output as "down_blocks.i"; `afterLayer`
 * (optional) runs after each layer (see layer-hook.ts); `intrablock` (optional) holds one T2I-Adapter
 * feature per block.
 */
export function runDownBlocks(
  blocks: readonly DownBlock[],
  x: Value,
  temb: Value,
  encoderHiddenStates: Value,
  tap: (name: string, value: Value) => void = () => undefined,
  afterLayer?: AfterLayerHook,
  intrablock?: readonly Value[],
): { hidden: Value; skips: Value[] } {
  const skips: Value[] = [x];
  let h = x;
  blocks.forEach((block, i) => {
    const hook = blockHook(afterLayer, "down_blocks", i);
    const out = block.forward(h, temb, encoderHiddenStates, hook, intrablock?.[i]);
    h = out.hidden;
    skips.push(...out.states);
    tap(`down_blocks.${i}`, h);
  });
  return { hidden: h, skips };
}
