/**
 * Optimisers (plain TypeScript over Float32Arrays), gradient clipping and lr schedules.
 */
export { Adam, AdamW, type AdamOptions } from "./adam.js";
export { clipGradNorm, globalGradNorm } from "./clip.js";
export type { NamedArrays, Optimizer, OptimizerState, SparseRows } from "./optimizer.js";
export { isSparseRows, sumRows } from "./optimizer.js";
export {
  SCHEDULE_NAMES,
  type ScheduleName,
  type ScheduleOptions,
  learningRateSchedule,
} from "./schedules.js";
export { SGD, type SGDOptions } from "./sgd.js";
