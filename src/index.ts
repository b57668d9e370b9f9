/**
 * Steadyframe's public API. Import from "steadyframe"; deep imports are not part of the API.
 */
export * from "./errors.js";
export * from "./tensor.js";
export type { Image, Channels } from "./image.js";
export { image } from "./image.js";
export type { ProgressEvent, ProgressCallback, LongTaskOptions } from "./progress.js";
export {
  SafetensorsFile,
  openSafetensors,
  readSafetensors,
  parseSafetensors,
  serializeSafetensors,
  writeSafetensors,
  type SafetensorsEntry,
} from "./weights/safetensors.js";
export {
  runConformance,
  runFixture,
  type ConformanceOptions,
  type FixtureResult,
} from "./conformance/run.js";
export type { ConformanceRow, FixtureKind, FixtureContext } from "./conformance/types.js";
