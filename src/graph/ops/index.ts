/**
 * The op set: typed wrappers named after ONNX operators. Use as `import * as op from ".../ops/index.js"`
 * and call `op.Conv(g, x, w, b, { strides: [2, 2] })`.
 */
export * from "./elementwise.js";
export * from "./matmul.js";
export * from "./conv.js";
export * from "./norm.js";
export * from "./movement.js";
export * from "./slicing.js";
export * from "./reduce.js";
export * from "./attention.js";
export type { Operand } from "./common.js";
