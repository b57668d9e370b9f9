/**
 * Progress reporting for long work (decoding, denoising, conformance). Library functions take an
 * optional `onProgress` callback and an optional `AbortSignal`; the CLI turns events into a bar.
 */

export type ProgressEvent =
  | { readonly status: "start"; readonly task: string; readonly total?: number }
  | { readonly status: "progress"; readonly task: string; readonly done: number; readonly total?: number }
  | { readonly status: "done"; readonly task: string };

export type ProgressCallback = (event: ProgressEvent) => void;

/** Options every long-running API call accepts. */
export interface LongTaskOptions {
  readonly onProgress?: ProgressCallback;
  readonly signal?: AbortSignal;
}
