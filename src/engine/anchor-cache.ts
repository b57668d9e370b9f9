/**
 * The engine's anchor cache: the self-attention keys/values of frames that later batches attend to
 * (frame 0 for `first` and `first+previous`, the key frames for `keyframes`), recorded per step and
 * per model while those frames are generated, and fed to later batches instead of denoising the
 * anchors again. The attention method names the frames whose recorded keys/values equal what a
 * re-denoised anchor would give (`VideoMethod.anchorCache`); the engine records only those.
 *
 * Memory is bounded by the budget: when a recording would pass it, recording stops for the render,
 * unfinished recordings are dropped, and the frames not cached are denoised again as anchors (the
 * result is the same; only the speed differs). Nothing is written to disk here: a resumed render
 * records again in its first batch. Methods with `storedAnchors` also keep the frames they need later
 * here while there is room (the store holds them in any case), and the engine forgets them when no
 * later batch reads them.
 */
import { type AnchorEntry, entryBytes } from "../models/anchor-attention.js";

export interface AnchorCacheStats {
  /** Frames whose keys/values are cached for every step. */
  readonly frames: readonly number[];
  readonly bytes: number;
  readonly budgetBytes: number;
  /** Why recording stopped, when it did. */
  readonly stopped?: string;
}

export class AnchorCache {
  /** frame -> step -> model -> entry. */
  private readonly entries = new Map<number, Map<string, AnchorEntry>[]>();
  private bytes = 0;
  private stopped: string | undefined;

  constructor(
    readonly budgetBytes: number,
    /** Models that record per step ("unet", "controlnet.0", ...): a step is complete with all of them. */
    readonly models: readonly string[],
    /** Steps of a full schedule: a frame is cached when every step is. */
    readonly steps: number,
  ) {}

  /** True when `frame`'s keys/values are there for every step and model. */
  has(frame: number): boolean {
    const steps = this.entries.get(frame);
    if (steps === undefined || steps.length < this.steps) return false;
    for (let i = 0; i < this.steps; i++) {
      const byModel = steps[i];
      if (byModel === undefined || this.models.some((m) => !byModel.has(m))) return false;
    }
    return true;
  }

  /** True while recordings are taken (the budget has not been passed). */
  get recording(): boolean {
    return this.stopped === undefined;
  }

  /** The entry of a cached frame (see has). */
  entry(frame: number, step: number, model: string): AnchorEntry {
    const e = this.entries.get(frame)?.[step]?.get(model);
    if (e === undefined)
      throw new Error(`internal: anchor frame ${frame} step ${step} ${model} is not cached`);
    return e;
  }

  /** Stores a recording; past the budget, stops recording and drops the frames not complete. */
  put(frame: number, step: number, model: string, entry: AnchorEntry): void {
    if (this.stopped !== undefined) return;
    const size = entryBytes(entry);
    if (this.bytes + size > this.budgetBytes) {
      this.stopped = `the anchor keys/values would pass the budget of ${Math.round(this.budgetBytes / 2 ** 20)} MiB`;
      for (const f of [...this.entries.keys()]) if (!this.has(f)) this.forget(f);
      return;
    }
    let steps = this.entries.get(frame);
    if (steps === undefined) this.entries.set(frame, (steps = []));
    let byModel = steps[step];
    if (byModel === undefined) steps[step] = byModel = new Map();
    const old = byModel.get(model);
    if (old !== undefined) this.bytes -= entryBytes(old);
    byModel.set(model, entry);
    this.bytes += size;
  }

  /** Frees a frame's keys/values (no later batch reads them, or the frame is incomplete). */
  forget(frame: number): void {
    for (const byModel of this.entries.get(frame) ?? [])
      for (const e of byModel?.values() ?? []) this.bytes -= entryBytes(e);
    this.entries.delete(frame);
  }

  stats(): AnchorCacheStats {
    return {
      frames: [...this.entries.keys()].filter((f) => this.has(f)).sort((a, b) => a - b),
      bytes: this.bytes,
      budgetBytes: this.budgetBytes,
      ...(this.stopped !== undefined ? { stopped: this.stopped } : {}),
    };
  }
}
