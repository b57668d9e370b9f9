/**
 * A tiny Uni-ControlNet whose context width matches the tiny-sd text encoder (32), made from the golden
 * uni.ckpt's key set (same names and shapes, except the 16-wide context / global dims, which become 32;
 * deterministic random values). For tests that run it with tiny-sd's text encoder and VAE.
 */
import { type HostTensor, tensor } from "../../src/tensor.js";

export function widenContext(state: Map<string, HostTensor>): Map<string, HostTensor> {
  let seed = 7;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31 - 0.5;
  };
  const out = new Map<string, HostTensor>();
  for (const [key, t] of state) {
    let shape = [...t.shape];
    if (key.startsWith("global_adapter.")) shape = shape.map((d) => d * 2);
    else if (/attn2\.to_[kv]\.weight$/.test(key)) shape = [shape[0] ?? 0, 32];
    if (t.dtype !== "float16") {
      out.set(key, t);
      continue;
    }
    const n = shape.reduce((a, b) => a * b, 1);
    const isNorm = shape.length === 1 && key.endsWith("weight") && /norm/.test(key);
    const data = Float32Array.from({ length: n }, () => (isNorm ? 1 : 0) + 0.2 * rand());
    out.set(key, tensor("float32", shape, data));
  }
  return out;
}
