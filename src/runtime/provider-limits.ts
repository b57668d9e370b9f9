/**
 * Graph patterns an execution provider is known to get wrong, found by running the conformance
 * fixtures on that provider (docs/gpu.md). A graph that contains one is not given to that provider:
 * the session falls back to the next provider in the list with this reason (or, when none is left,
 * fails with it), instead of crashing the process or returning wrong numbers.
 *
 * ONNX Runtime 1.30, WebGPU provider (measured on an NVIDIA H200 through Vulkan, 2026-12-04):
 * - a Conv whose kernel equals its stride (a patch embedding, e.g. CLIP's vision tower) kills the
 *   process with a segmentation fault, for a single-node model too;
 * - a Conv reading a graph input of more than 4 channels (Uni-ControlNet's 21-channel local
 *   conditions) returns wrong values from that first Conv on (microsoft/onnxruntime#29651; the
 *   4-channel UNet input is not affected: the UNet agrees with the CPU to 2e-5).
 */
import type { GraphBuilder } from "../graph/builder.js";
import type { ExecutionProvider } from "./session.js";

function ints(node: GraphBuilder["nodes"][number], name: string): readonly number[] | undefined {
  const a = node.attributes[name];
  return a?.type === "ints" ? a.value : undefined;
}

/** Why `provider` must not run graph `g` (null when nothing known stands in the way). */
export function providerLimit(g: GraphBuilder, provider: ExecutionProvider): string | null {
  if (provider !== "webgpu") return null;
  const inputs = new Map(g.inputs.map((v) => [v.name, v]));
  for (const node of g.nodes) {
    if (node.opType !== "Conv" || node.domain !== "") continue;
    const kernel = ints(node, "kernel_shape");
    const strides = ints(node, "strides");
    if (
      kernel !== undefined &&
      strides !== undefined &&
      kernel.length === strides.length &&
      kernel.every((k, i) => k > 1 && k === strides[i])
    ) {
      return `ONNX Runtime's WebGPU provider crashes on a Conv whose kernel equals its stride (node ${node.name}, kernel ${kernel.join("x")})`;
    }
    const x = inputs.get(node.inputs[0] ?? "");
    const channels = x?.shape[1];
    if (x !== undefined && (typeof channels !== "number" || channels > 4)) {
      return `ONNX Runtime's WebGPU provider miscomputes a Conv reading a graph input of more than 4 channels (node ${node.name} reads ${x.name}; microsoft/onnxruntime#29651)`;
    }
  }
  return null;
}
