/**
 * The contract between the conformance runner and each fixture kind. A fixture is a folder with a
 * `case.json`; its kind is the first path segment of the `fixture` field ("schedulers/ddim" ->
 * "schedulers"). A kind reads everything it needs through the paths in case.json (relative to the
 * folder) and returns one row per compared tensor; it never hard-codes fixture names or shapes.
 */

export interface ConformanceRow {
  /** The fixture folder's `fixture` field, plus a sub-case where one fixture holds many ("rng/case3"). */
  readonly fixture: string;
  /** The compared output's name as case.json / outputs.safetensors names it. */
  readonly tensor: string;
  /** Largest absolute error against the reference (0 for exact matches; NaN if not comparable). */
  readonly maxAbsError: number;
  /** Allowed max abs error from case.json (0 for exact comparisons). */
  readonly tolerance: number;
  readonly pass: boolean;
  /** Short extra information for the table (e.g. "exact ids", "refused: E_CORRUPT_FILE"). */
  readonly note?: string;
}

export interface FixtureContext {
  /** Absolute path of the fixture folder (the one holding case.json). */
  readonly dir: string;
  /** Parsed case.json (untrusted JSON: validate what you read). */
  readonly caseJson: Readonly<Record<string, unknown>>;
  /** Progress / cancellation for long fixtures. */
  readonly signal?: AbortSignal;
}

export interface FixtureKind {
  /** The kind name: first segment of case.json's `fixture` field. */
  readonly kind: string;
  /** One-line description for `steadyframe conformance --list`. */
  readonly description: string;
  run(ctx: FixtureContext): Promise<readonly ConformanceRow[]>;
}
