/**
 * Optimisers (plain TypeScript over Float32Arrays), gradient clipping and lr schedules.
 */
export { Adam, AdamW, type AdamOptions } from "./adam.js";
export { clipGradNorm, globalGradNorm } from "./clip.js";
export type { NamedArrays, Optimizer, OptimizerState, SparseRows } from "./optimizer.js";
export { isSparseRows, sumRows } from "./optimizer.js";
export {
  GET_SCHEDULER_NAMES,
  type GetSchedulerName,
  SCHEDULE_NAMES,
  type ScheduleName,
  type ScheduleOptions,
  learningRateSchedule,
} from "./schedules.js";
export { SGD, type SGDOptions } from "./sgd.js";
export {
  type GetSchedulerCall,
  type PyValue,
  TORCH_OPTIMIZER_ARGS,
  getSchedulerLr,
  parseGetSchedulerCall,
  torchOptimizer,
} from "./torch-args.js";
