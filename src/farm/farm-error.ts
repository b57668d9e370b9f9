/**
 * The render farm's own error: Redis cannot be reached, a segment job failed after all its attempts,
 * or two workers wrote different pixels for the same frame. Like every Steadyframe error it says what
 * went wrong, where, and what to do (src/errors.ts); the CLI prints it as `error [E_FARM]: ...`.
 */
import { SteadyframeError, type ErrorOptions } from "../errors.js";

export class FarmError extends SteadyframeError {
  readonly code = "E_FARM";
  constructor(
    readonly detail: string,
    options: ErrorOptions = {},
  ) {
    super(`render farm: ${detail}` + (options.hint ? `; ${options.hint}` : ""), options);
  }
}
