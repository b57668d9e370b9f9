/**
 * Batch split/concat of host tensors along dim 0, so a runner can run a batch in bounded-memory
 * chunks (e.g. decode a video's frames one at a time) and join the results.
 */
import { InvalidArgumentError } from "../errors.js";
import { type DataTypeMap, type DType, type HostTensor, numel, shapeToString, tensor } from "../tensor.js";

type Typed = DataTypeMap[DType];

function sliceData(data: Typed, start: number, end: number): Typed {
  return data.slice(start, end);
}

/** Splits a tensor along dim 0 into chunks of at most `size` items (views are copied). */
export function splitBatch(t: HostTensor, size: number): HostTensor[] {
  if (!Number.isInteger(size) || size < 1)
    throw new InvalidArgumentError("batchSize", "a positive integer", size);
  const batch = t.shape[0];
  if (batch === undefined)
    throw new InvalidArgumentError("tensor", "a tensor with a batch dim", shapeToString(t.shape));
  if (batch <= size) return [t];
  const item = numel(t.shape.slice(1));
  const chunks: HostTensor[] = [];
  for (let b = 0; b < batch; b += size) {
    const n = Math.min(size, batch - b);
    chunks.push(tensor(t.dtype, [n, ...t.shape.slice(1)], sliceData(t.data, b * item, (b + n) * item)));
  }
  return chunks;
}

/** Concatenates tensors of equal dtype and trailing shape along dim 0. */
export function concatBatch(parts: readonly HostTensor[]): HostTensor {
  const first = parts[0];
  if (first === undefined) throw new InvalidArgumentError("parts", "at least one tensor", []);
  if (parts.length === 1) return first;
  const rest = first.shape.slice(1);
  let batch = 0;
  for (const p of parts) {
    if (p.dtype !== first.dtype || shapeToString(p.shape.slice(1)) !== shapeToString(rest)) {
      throw new InvalidArgumentError(
        "parts",
        `tensors of ${first.dtype}[n, ${rest.join(", ")}]`,
        `${p.dtype}${shapeToString(p.shape)}`,
      );
    }
    batch += p.shape[0] ?? 0;
  }
  const out = tensor(first.dtype, [batch, ...rest]);
  let offset = 0;
  for (const p of parts) {
    (out.data as { set(src: ArrayLike<number | bigint>, offset: number): void }).set(
      p.data as ArrayLike<number | bigint>,
      offset,
    );
    offset += p.data.length;
  }
  return out;
}
