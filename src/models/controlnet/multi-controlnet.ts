/**
 * Several ControlNets acting together, as diffusers 0.26.3 `pipelines/controlnet/multicontrolnet.py`
 * (MultiControlNetModel: residuals of every net, each with its own image and scale, summed) and the
 * guidance window of `pipeline_controlnet.py` (`controlnet_keep`).
 */
import { InvalidArgumentError } from "../../errors.js";
import type { ControlNet, ControlNetOutputs } from "../model-interfaces.js";
import { type HostTensor, shapeToString, tensor } from "../../tensor.js";

/**
 * diffusers controlnet_keep for step `stepIndex` of `numSteps`: 1 while the step lies inside
 * [start, end] of the schedule (fractions), else 0. Multiply the conditioning scale by it.
 */
export function controlnetKeep(stepIndex: number, numSteps: number, start: number, end: number): number {
  if (!Number.isInteger(numSteps) || numSteps < 1)
    throw new InvalidArgumentError("numSteps", "a positive integer", numSteps);
  if (!(start >= 0 && start <= end && end <= 1))
    throw new InvalidArgumentError("start/end", "0 <= start <= end <= 1", [start, end]);
  return stepIndex / numSteps < start || (stepIndex + 1) / numSteps > end ? 0 : 1;
}

export interface MultiControlNetInputs {
  readonly sample: HostTensor<"float32">;
  /** One timestep per batch item. */
  readonly timestep: HostTensor<"float32">;
  readonly encoderHiddenStates: HostTensor<"float32">;
  /** One control image per net, each in [0, 1]. */
  readonly controlnetCond: readonly HostTensor<"float32">[];
  /** One conditioning scale per net (already multiplied by controlnetKeep). */
  readonly conditioningScale: readonly number[];
}

function addInto(sum: HostTensor<"float32">, x: HostTensor<"float32">, what: string): HostTensor<"float32"> {
  if (shapeToString(sum.shape) !== shapeToString(x.shape)) {
    throw new InvalidArgumentError(
      what,
      `shape ${shapeToString(sum.shape)} (as the first ControlNet's)`,
      shapeToString(x.shape),
      {
        hint: "all ControlNets must fit the same UNet",
      },
    );
  }
  const out = new Float32Array(sum.data.length);
  for (let i = 0; i < out.length; i++) out[i] = (sum.data[i] ?? 0) + (x.data[i] ?? 0);
  return tensor("float32", sum.shape, out);
}

/** Sums the scaled residuals of several ControlNets (diffusers MultiControlNetModel). */
export class MultiControlNetModel {
  /** Any ControlNet of the pipeline interface (e.g. ControlNetModelRunner). */
  constructor(readonly nets: readonly ControlNet[]) {
    if (nets.length === 0) throw new InvalidArgumentError("nets", "at least one ControlNet", nets.length);
  }

  /**
   * Runs every net whose scale is not 0 (a net with scale 0 adds exact zeros, so it is skipped unless
   * every scale is 0, when the first runs to give zero residuals of the right shapes).
   */
  async forward(inputs: MultiControlNetInputs): Promise<ControlNetOutputs> {
    const n = this.nets.length;
    if (inputs.controlnetCond.length !== n || inputs.conditioningScale.length !== n) {
      throw new InvalidArgumentError(
        "controlnetCond / conditioningScale",
        `${n} entries each (one per ControlNet)`,
        [inputs.controlnetCond.length, inputs.conditioningScale.length],
      );
    }
    const active = this.nets.map((_, i) => i).filter((i) => inputs.conditioningScale[i] !== 0);
    let sum: ControlNetOutputs | undefined;
    for (const i of active.length > 0 ? active : [0]) {
      const net = this.nets[i];
      const cond = inputs.controlnetCond[i];
      if (!net || !cond) continue;
      const out = await net.forward({
        sample: inputs.sample,
        timestep: inputs.timestep,
        encoderHiddenStates: inputs.encoderHiddenStates,
        controlnetCond: cond,
        conditioningScale: inputs.conditioningScale[i] ?? 0,
      });
      sum =
        sum === undefined
          ? out
          : {
              downBlockResSamples: sum.downBlockResSamples.map((r, j) =>
                addInto(r, out.downBlockResSamples[j] ?? r, `controlnets[${i}] down_block_res_samples.${j}`),
              ),
              midBlockResSample: addInto(
                sum.midBlockResSample,
                out.midBlockResSample,
                `controlnets[${i}] mid_block_res_sample`,
              ),
            };
    }
    if (sum === undefined) throw new InvalidArgumentError("nets", "at least one ControlNet", 0);
    return sum;
  }
}
