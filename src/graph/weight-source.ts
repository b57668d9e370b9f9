/**
 * Where an initializer's bytes come from. A source knows its dtype and shape up front and loads the
 * data only when the model is written, one tensor at a time, so a multi-GB checkpoint never sits in
 * memory whole. Casting between float dtypes happens at write time (fp16 checkpoint -> fp32 graph).
 */
import { UnsupportedError, InvalidArgumentError } from "../errors.js";
import {
  type DType,
  type HostTensor,
  type Shape,
  numel,
  shapeToString,
  toFloat32,
  toFloat16,
  numberToBfloat16Bits,
} from "../tensor.js";

export interface WeightSource {
  readonly dtype: DType;
  readonly shape: Shape;
  /** Reads the tensor; called once, when the model is serialized. */
  load(): Promise<HostTensor>;
}

/** A source over a tensor already in memory. */
export function tensorSource(t: HostTensor): WeightSource {
  return { dtype: t.dtype, shape: t.shape, load: () => Promise.resolve(t) };
}

/** A lazy source: `load` runs only when the weight is written. */
export function lazySource(dtype: DType, shape: Shape, load: () => Promise<HostTensor>): WeightSource {
  return { dtype, shape, load };
}

/** The same data seen with another shape of equal element count (e.g. conv 1x1 [o,i,1,1] as linear [o,i]). */
export function reshapedSource(source: WeightSource, shape: Shape): WeightSource {
  if (numel(shape) !== numel(source.shape)) {
    throw new InvalidArgumentError(
      "shape",
      `a shape with ${numel(source.shape)} elements (source is ${shapeToString(source.shape)})`,
      shapeToString(shape),
    );
  }
  return {
    dtype: source.dtype,
    shape: [...shape],
    load: async () => {
      const t = await source.load();
      return { dtype: t.dtype, shape: [...shape], data: t.data };
    },
  };
}

/** Part `part` of `of` equal slices of `source` along dim 0 (e.g. q of a stacked q/k/v projection). */
export function rowPartSource(source: WeightSource, part: number, of: number): WeightSource {
  const rows = source.shape[0];
  if (rows === undefined || !Number.isInteger(part) || part < 0 || part >= of || rows % of !== 0) {
    throw new InvalidArgumentError(
      "rows",
      `part 0..${of - 1} of a tensor whose first dim divides by ${of}`,
      `part ${part} of ${shapeToString(source.shape)}`,
    );
  }
  const shape = [rows / of, ...source.shape.slice(1)];
  const size = numel(shape);
  return {
    dtype: source.dtype,
    shape,
    load: async () => {
      const t = await source.load();
      return { dtype: t.dtype, shape, data: t.data.slice(part * size, (part + 1) * size) } as HostTensor;
    },
  };
}

const FLOATS: readonly DType[] = ["float32", "float16", "bfloat16", "float64"];

/** True when `castTensor` can convert `from` to `to`. */
export function canCast(from: DType, to: DType): boolean {
  return from === to || (FLOATS.includes(from) && FLOATS.includes(to));
}

function castError(from: DType, to: DType): UnsupportedError {
  return new UnsupportedError(`casting a weight from ${from} to ${to}`, {
    hint: "only float32/float16/bfloat16/float64 weights can be cast; request the stored dtype",
  });
}

/** Converts between float dtypes (round to nearest even when narrowing). Same dtype returns the input. */
export function castTensor(t: HostTensor, to: DType): HostTensor {
  if (t.dtype === to) return t;
  if (!canCast(t.dtype, to)) throw castError(t.dtype, to);
  const f32 = toFloat32(t);
  switch (to) {
    case "float32":
      return f32;
    case "float16":
      return toFloat16(f32);
    case "float64":
      return { dtype: "float64", shape: t.shape, data: Float64Array.from(f32.data) };
    default: {
      const out = new Uint16Array(f32.data.length);
      for (let i = 0; i < out.length; i++) out[i] = numberToBfloat16Bits(f32.data[i] ?? 0);
      return { dtype: "bfloat16", shape: t.shape, data: out };
    }
  }
}

/** A source that yields `source` cast to `dtype` (no-op when equal). */
export function castSource(source: WeightSource, dtype: DType): WeightSource {
  if (source.dtype === dtype) return source;
  if (!canCast(source.dtype, dtype)) throw castError(source.dtype, dtype);
  return { dtype, shape: source.shape, load: async () => castTensor(await source.load(), dtype) };
}
