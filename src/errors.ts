/**
 * Every error Steadyframe throws on purpose is a `SteadyframeError` subclass with a stable `code`.
 * Messages say what went wrong, where, and what to do; `hint` repeats the fix so the CLI can
 * print it on its own line. Structured fields carry the numbers for programs.
 */

export interface ErrorOptions {
  readonly hint?: string;
  readonly cause?: unknown;
}

export abstract class SteadyframeError extends Error {
  abstract readonly code: string;
  readonly hint: string | undefined;

  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options.hint;
  }
}

function describeValue(value: unknown): string {
  if (typeof value === "string")
    return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (Array.isArray(value))
    return `[${value.slice(0, 8).map(describeValue).join(", ")}${value.length > 8 ? ", ..." : ""}]`;
  if (typeof value === "bigint") return `${value}n`;
  if (value === null) return "null";
  if (typeof value === "object") return "an object";
  return String(value);
}

/** A function argument, CLI flag or option with the wrong value (sharp's wording). */
export class InvalidArgumentError extends SteadyframeError {
  readonly code = "E_INVALID_ARGUMENT";
  constructor(
    readonly argument: string,
    readonly expected: string,
    readonly received: unknown,
    options: ErrorOptions = {},
  ) {
    super(
      `Expected ${expected} for ${argument} but received ${describeValue(received)}` +
        // A CLI flag's value is always typed text: its type would only be noise.
        (received === undefined || received === null || argument.startsWith("-")
          ? ""
          : ` of type ${typeof received}`) +
        (options.hint ? `; ${options.hint}` : ""),
      options,
    );
  }
}

/** A config.json / case.json / scheduler config field that is missing or has the wrong type. */
export class ConfigError extends SteadyframeError {
  readonly code = "E_CONFIG";
  constructor(
    readonly file: string,
    readonly field: string,
    readonly expected: string,
    readonly received: unknown,
    options: ErrorOptions = {},
  ) {
    super(
      `${file}: field "${field}" should be ${expected} but is ${describeValue(received)}` +
        (options.hint ? `; ${options.hint}` : ""),
      options,
    );
  }
}

/** A file whose bytes cannot be what they claim: truncated, out-of-bounds offsets, bad JSON. */
export class CorruptFileError extends SteadyframeError {
  readonly code = "E_CORRUPT_FILE";
  constructor(
    readonly path: string,
    readonly reason: string,
    readonly offset?: number,
    options: ErrorOptions = {},
  ) {
    super(
      `${path}: ${reason}${offset === undefined ? "" : ` (at byte ${offset})`}; ` +
        (options.hint ?? "the file is damaged or not of the expected format: download or export it again"),
      options,
    );
  }
}

/** A path that does not exist or cannot be read. */
export class FileNotFoundError extends SteadyframeError {
  readonly code = "E_FILE_NOT_FOUND";
  constructor(
    readonly path: string,
    readonly what: string,
    options: ErrorOptions = {},
  ) {
    super(`${what} not found: ${path}` + (options.hint ? `; ${options.hint}` : ""), options);
  }
}

/** Weights that do not fit a module: every missing, unexpected and mis-shaped key together. */
export class MissingWeightsError extends SteadyframeError {
  readonly code = "E_WEIGHTS_MISMATCH";
  constructor(
    readonly source: string,
    readonly missing: readonly string[],
    readonly unexpected: readonly string[],
    readonly misshaped: readonly { key: string; expected: readonly number[]; actual: readonly number[] }[],
    options: ErrorOptions = {},
  ) {
    const list = (keys: readonly string[]): string =>
      keys.slice(0, 20).join(", ") + (keys.length > 20 ? ` ... and ${keys.length - 20} more` : "");
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`${missing.length} missing: ${list(missing)}`);
    if (unexpected.length > 0) parts.push(`${unexpected.length} unexpected: ${list(unexpected)}`);
    if (misshaped.length > 0)
      parts.push(
        `${misshaped.length} with the wrong shape: ` +
          misshaped
            .slice(0, 20)
            .map((m) => `${m.key} is [${m.actual.join(",")}], expected [${m.expected.join(",")}]`)
            .join("; "),
      );
    super(
      `${source}: the weights do not fit the model (${parts.join(" | ")}); ` +
        (options.hint ?? "check that the config.json belongs to this checkpoint"),
      options,
    );
  }
}

/**
 * LoRA files that do not fit the model: every key that has no known LoRA format, names no module of
 * the model, or whose shapes do not fit the module's weight, from every file, together (nothing is
 * dropped silently and nothing is loaded). `problems` holds them all; the message lists them all.
 */
export class LoraMismatchError extends SteadyframeError {
  readonly code = "E_LORA_MISMATCH";
  constructor(
    readonly problems: readonly { readonly file: string; readonly key: string; readonly reason: string }[],
    options: ErrorOptions = {},
  ) {
    const files = [...new Set(problems.map((p) => p.file))];
    const byFile = files.map((file) => {
      const mine = problems.filter((p) => p.file === file);
      return `${file}: ${mine.length} key(s): ${mine.map((p) => `${p.key} (${p.reason})`).join("; ")}`;
    });
    super(
      `${problems.length} LoRA key(s) could not be applied: ${byFile.join(" | ")}; ` +
        (options.hint ??
          "every key of a LoRA file must fit the model: use a LoRA trained for this base model (SD 1.x, 2.x and SDXL LoRAs do not mix)"),
      options,
    );
  }
}

/** A feed for an inference session that misses inputs or has wrong dtypes/shapes. */
export class SessionInputError extends SteadyframeError {
  readonly code = "E_SESSION_INPUT";
  constructor(
    readonly model: string,
    readonly problems: readonly string[],
    options: ErrorOptions = {},
  ) {
    super(
      `${model}: bad inputs: ${problems.join("; ")}` + (options.hint ? `; ${options.hint}` : ""),
      options,
    );
  }
}

/** No execution provider could run the model; lists every provider tried and why it failed. */
export class BackendError extends SteadyframeError {
  readonly code = "E_BACKEND";
  constructor(
    readonly attempts: readonly { provider: string; error: string }[],
    options: ErrorOptions = {},
  ) {
    super(
      `no execution provider could create the session: ` +
        attempts.map((a) => `${a.provider}: ${a.error}`).join("; ") +
        (options.hint ? `; ${options.hint}` : ""),
      options,
    );
  }
}

/** A graph that cannot be built: incompatible shapes or dtypes at one op. */
export class GraphError extends SteadyframeError {
  readonly code = "E_GRAPH";
  constructor(
    readonly op: string,
    readonly detail: string,
    options: ErrorOptions = {},
  ) {
    super(`${op}: ${detail}` + (options.hint ? `; ${options.hint}` : ""), options);
  }
}

/** A feature, fixture kind, dtype or layout Steadyframe does not (yet) support. */
export class UnsupportedError extends SteadyframeError {
  readonly code = "E_UNSUPPORTED";
  constructor(
    readonly what: string,
    options: ErrorOptions = {},
  ) {
    super(`not supported: ${what}` + (options.hint ? `; ${options.hint}` : ""), options);
  }
}

/** A PyTorch pickle that asks for anything beyond rebuilding tensors. Nothing was executed. */
export class UnsafePickleError extends SteadyframeError {
  readonly code = "E_UNSAFE_PICKLE";
  constructor(
    readonly path: string,
    readonly detail: string,
    options: ErrorOptions = {},
  ) {
    super(
      `${path}: refused to load: ${detail}; nothing in the file was executed. ` +
        (options.hint ??
          "Convert the checkpoint to .safetensors with a tool you trust, or get it from a trusted source"),
      options,
    );
  }
}

/** ffmpeg is missing, or a video cannot be decoded/encoded. */
export class VideoError extends SteadyframeError {
  readonly code = "E_VIDEO";
  constructor(
    readonly path: string,
    readonly detail: string,
    options: ErrorOptions = {},
  ) {
    super(`${path}: ${detail}` + (options.hint ? `; ${options.hint}` : ""), options);
  }
}

/** Work stopped because its AbortSignal fired. */
export class CancelledError extends SteadyframeError {
  readonly code = "E_CANCELLED";
  constructor(
    readonly what: string,
    options: ErrorOptions = {},
  ) {
    super(`${what} was cancelled`, options);
  }
}

/** One or more conformance fixtures failed or could not be run. */
export class ConformanceError extends SteadyframeError {
  readonly code = "E_CONFORMANCE";
  constructor(
    readonly failed: number,
    readonly total: number,
    options: ErrorOptions = {},
  ) {
    super(`${failed} of ${total} conformance checks failed`, options);
  }
}

/** Thrown when AbortSignal has fired; call at loop heads of long work. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new CancelledError(what, { cause: signal.reason });
}

/** OpenCV.js (WebAssembly) failed to load or threw a cv::Exception inside one call. */
export class OpenCvError extends SteadyframeError {
  readonly code = "E_OPENCV";
  constructor(
    readonly op: string,
    readonly detail: string,
    options: ErrorOptions = {},
  ) {
    super(
      `OpenCV ${op} failed: ${detail}; ` +
        (options.hint ?? "check the image sizes and types passed to it (this is a bug if they were valid)"),
      options,
    );
  }
}
