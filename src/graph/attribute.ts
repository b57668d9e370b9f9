/**
 * Node attributes. An ONNX attribute's type is explicit (1 as INT differs from 1 as FLOAT), so each
 * is built with a typed constructor: `attr.int(1)`, `attr.floats([0.5])`.
 */
import type { HostTensor } from "../tensor.js";

export type Attribute =
  | { readonly type: "int"; readonly value: number }
  | { readonly type: "float"; readonly value: number }
  | { readonly type: "string"; readonly value: string }
  | { readonly type: "ints"; readonly value: readonly number[] }
  | { readonly type: "floats"; readonly value: readonly number[] }
  | { readonly type: "strings"; readonly value: readonly string[] }
  | { readonly type: "tensor"; readonly value: HostTensor };

/** Typed attribute constructors. */
export const attr = {
  int: (value: number): Attribute => ({ type: "int", value }),
  float: (value: number): Attribute => ({ type: "float", value }),
  string: (value: string): Attribute => ({ type: "string", value }),
  ints: (value: readonly number[]): Attribute => ({ type: "ints", value }),
  floats: (value: readonly number[]): Attribute => ({ type: "floats", value }),
  strings: (value: readonly string[]): Attribute => ({ type: "strings", value }),
  tensor: (value: HostTensor): Attribute => ({ type: "tensor", value }),
};
