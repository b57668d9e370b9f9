/**
 * Every fixture kind the conformance runner knows. Add a kind by importing it and listing it here.
 */
import type { FixtureKind } from "./types.js";
// kinds: one import per line, sorted
import { pickleSafetyKind } from "./kinds/pickle-safety.js";
import { safetensorsSafetyKind } from "./kinds/safetensors-safety.js";
// (end of kind imports)

export const FIXTURE_KINDS: readonly FixtureKind[] = [
  // kinds: one entry per line, sorted
  pickleSafetyKind,
  safetensorsSafetyKind,
  // (end of kind entries)
];
