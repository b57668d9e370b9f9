/**
 * Graph outputs for gradients a host reads as flat data (a training loop feeding an optimiser):
 * when a gradient's last node is a Reshape (the weight gradient of a convolution is computed as a
 * matrix and reshaped to the kernel's layout), the Reshape's input — the same elements in the same
 * order — becomes the output instead, so ONNX Runtime returns the producing kernel's buffer rather
 * than copying it into a fresh output (tens of MB per layer of a full-size UNet, every step).
 */
import type { GraphBuilder, Value } from "../builder.js";

/** Adds `grads[i]` as output `${prefix}${i}`, skipping a trailing Reshape (see the file comment). */
export function outputFlatGradients(g: GraphBuilder, grads: readonly Value[], prefix = "grad."): void {
  const reshapes = new Map<string, string>();
  for (const node of g.nodes) {
    const [out] = node.outputs;
    const [input] = node.inputs;
    if (node.opType === "Reshape" && node.domain === "" && out && input) reshapes.set(out, input);
  }
  const count = (v: Value): number | undefined =>
    v.shape.every((d) => typeof d === "number")
      ? v.shape.reduce<number>((a, d) => a * Number(d), 1)
      : undefined;
  grads.forEach((grad, i) => {
    const source = reshapes.get(grad.name);
    const input = source === undefined ? undefined : g.value(source);
    const flat =
      input && input.dtype === grad.dtype && count(input) !== undefined && count(input) === count(grad)
        ? input
        : grad;
    g.output(flat, `${prefix}${i}`);
  });
}
