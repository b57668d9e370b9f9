/**
 * Typed errors of the training loop: a loss (or gradient) that stopped being finite, and a
 * checkpoint that does not belong to the run asked to resume from it.
 */
import { type ErrorOptions, SteadyframeError } from "../../errors.js";

/** The loss or the gradient norm became NaN or infinite; nothing of that step was saved. */
export class TrainingDivergedError extends SteadyframeError {
  readonly code = "E_TRAINING_DIVERGED";
  constructor(
    /** The 1-based step whose loss (or gradient norm) was not finite. */
    readonly step: number,
    readonly what: "loss" | "gradient norm",
    readonly value: number,
    /** The last checkpoint written before that step (kept as it was), if any. */
    readonly lastCheckpoint: string | undefined,
    options: ErrorOptions = {},
  ) {
    super(
      `training stopped at step ${step}: the ${what} is ${value}; ` +
        (lastCheckpoint === undefined
          ? "no checkpoint had been written yet"
          : `the last good checkpoint is ${lastCheckpoint} (untouched)`) +
        "; " +
        (options.hint ??
          "lower --lr, keep gradient clipping on, or check the data; resume from the last good checkpoint with --resume"),
      options,
    );
  }
}

/** A checkpoint that was written by a run of another architecture or training configuration. */
export class CheckpointMismatchError extends SteadyframeError {
  readonly code = "E_CHECKPOINT_MISMATCH";
  constructor(
    /** The checkpoint file whose record differs. */
    readonly file: string,
    /** One line per field that differs: `field: checkpoint X, this run Y`. */
    readonly differences: readonly string[],
    options: ErrorOptions = {},
  ) {
    super(
      `${file}: this checkpoint belongs to another training run (${differences.join("; ")}); ` +
        (options.hint ??
          "resume with the model and options the checkpoint was made with, or start a fresh run in a new --out folder"),
      options,
    );
  }
}
