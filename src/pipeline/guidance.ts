/**
 * Classifier-free guidance and batch helpers. The CFG batch order is [uncond, cond] (diffusers
 * StableDiffusion pipelines): noise = u + g * (c - u), computed in float32 as torch does.
 */
import { InvalidArgumentError } from "../errors.js";
import { shapeToString, tensor, type HostTensor } from "../tensor.js";

/** Stacks tensors of equal shape [1|n, ...] along the batch axis. */
export function concatBatch(parts: readonly HostTensor<"float32">[]): HostTensor<"float32"> {
  const first = parts[0];
  if (first === undefined) throw new InvalidArgumentError("parts", "at least one tensor", parts.length);
  const inner = first.shape.slice(1);
  let batch = 0;
  for (const p of parts) {
    if (p.shape.length !== first.shape.length || p.shape.slice(1).some((d, i) => d !== inner[i])) {
      throw new InvalidArgumentError("tensor", `shape [*, ${inner.join(", ")}]`, shapeToString(p.shape));
    }
    batch += p.shape[0] ?? 0;
  }
  const out = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p.data, offset);
    offset += p.data.length;
  }
  return tensor("float32", [batch, ...inner], out);
}

/** Splits a batch into `n` equal chunks (torch.chunk along dim 0). */
export function chunkBatch(t: HostTensor<"float32">, n: number): HostTensor<"float32">[] {
  const batch = t.shape[0] ?? 0;
  if (batch % n !== 0) throw new InvalidArgumentError("batch", `a multiple of ${n}`, batch);
  const size = t.data.length / n;
  return Array.from({ length: n }, (_, i) =>
    tensor("float32", [batch / n, ...t.shape.slice(1)], t.data.slice(i * size, (i + 1) * size)),
  );
}

/** noise = uncond + scale * (cond - uncond), elementwise in float32. */
export function classifierFreeGuidance(
  uncond: HostTensor<"float32">,
  cond: HostTensor<"float32">,
  guidanceScale: number,
): HostTensor<"float32"> {
  const out = new Float32Array(uncond.data.length);
  const g = Math.fround(guidanceScale);
  for (let i = 0; i < out.length; i++) {
    const u = uncond.data[i] ?? 0;
    const c = cond.data[i] ?? 0;
    out[i] = Math.fround(u + Math.fround(g * Math.fround(c - u)));
  }
  return tensor("float32", uncond.shape, out);
}

/** Multiplies every element by a scalar in float32 (e.g. latents * init_noise_sigma). */
export function scale(t: HostTensor<"float32">, factor: number): HostTensor<"float32"> {
  const f = Math.fround(factor);
  return tensor(
    "float32",
    t.shape,
    t.data.map((x) => Math.fround(x * f)),
  );
}
