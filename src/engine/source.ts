/**
 * The source video as the engine reads it: frames decoded on demand at the output size (ffmpeg,
 * OpenCV-compatible colours), only a few kept in memory, and the Farneback flows between consecutive
 * frames computed when first asked for. Requests come in increasing order; an earlier frame that is no
 * longer held restarts the decoder (key frames first, then the rest), so memory does not grow with the
 * video's length.
 */
import { InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import { farnebackFlowSync, type FlowField } from "../control/flow.js";
import { toGraySync } from "../control/gray.js";
import { consistencyMaskSync } from "../control/occlusion.js";
import { loadCv } from "../control/opencv.js";
import { probeVideo } from "../video/probe.js";
import { readFrames, type Frame } from "../video/read.js";

const KEEP = 4;

export interface SourceVideoOptions {
  readonly width: number;
  readonly height: number;
  /** Frames to use from the start (default: all). */
  readonly maxFrames?: number;
  readonly signal?: AbortSignal;
}

export interface SourcePairFlow {
  /** flow(frame i-1, frame i): where each pixel of i-1 goes. */
  readonly forward: FlowField;
  /** flow(frame i, frame i-1): warps frame i-1 onto frame i (out(p) = prev(p + backward(p))). */
  readonly backward: FlowField;
  /** 255 where the pair is consistent (forward-backward check on frame i's grid), 0 where occluded. */
  readonly consistent: Image;
}

export class SourceVideo {
  private readonly held = new Map<number, Image>();
  private iterator: AsyncGenerator<Frame, void, undefined> | undefined;
  private next = 0;
  private readonly flows = new Map<number, SourcePairFlow>();

  constructor(
    readonly path: string,
    /** Frames available (after maxFrames). */
    readonly frames: number,
    private readonly options: SourceVideoOptions,
  ) {}

  /** Counts the frames (one decode pass when the container does not say) and opens the source. */
  static async open(path: string, options: SourceVideoOptions): Promise<SourceVideo> {
    const known = (await probeVideo(path)).frameCount;
    if (known !== undefined && known > 0)
      return new SourceVideo(path, Math.min(known, options.maxFrames ?? known), options);
    let count = 0;
    for await (const _ of readFrames(path, readOptions(options))) {
      void _;
      count++;
      if (options.maxFrames !== undefined && count >= options.maxFrames) break;
    }
    if (count === 0) throw new InvalidArgumentError("source video", "a video with frames", path);
    return new SourceVideo(path, count, options);
  }

  /** Source frame `i`, RGB at the output size. */
  async frame(i: number): Promise<Image> {
    if (!Number.isInteger(i) || i < 0 || i >= this.frames) {
      throw new InvalidArgumentError("source frame", `an index in [0, ${this.frames - 1}]`, i, {
        hint: `${this.path} has ${this.frames} frame(s) at the chosen settings`,
      });
    }
    const held = this.held.get(i);
    if (held) return held;
    if (this.iterator === undefined || i < this.next) await this.restart();
    for (;;) {
      const r = await this.iterator?.next();
      if (r === undefined || r.done === true) {
        throw new InvalidArgumentError("source frame", `an index below ${this.next}`, i, {
          hint: `${this.path} ended early`,
        });
      }
      const index = this.next++;
      this.held.set(index, r.value);
      for (const k of this.held.keys()) if (k < index - KEEP + 1) this.held.delete(k);
      if (index === i) return r.value;
    }
  }

  /** Flows and consistency of the pair (i-1, i), i >= 1. */
  async flow(i: number): Promise<SourcePairFlow> {
    const cached = this.flows.get(i);
    if (cached) return cached;
    if (!Number.isInteger(i) || i < 1)
      throw new InvalidArgumentError("flow index", "a frame index >= 1 (flow from i-1 to i)", i);
    const prev = await this.frame(i - 1);
    const cur = await this.frame(i);
    const cv = await loadCv();
    const a = toGraySync(cv, prev);
    const b = toGraySync(cv, cur);
    const forward = farnebackFlowSync(cv, a, b);
    const backward = farnebackFlowSync(cv, b, a);
    // Consistency on frame i's grid: its backward flow checked against the forward one.
    const consistent = consistencyMaskSync(cv, backward, forward);
    const pair = { forward, backward, consistent };
    this.flows.set(i, pair);
    for (const k of this.flows.keys()) if (k < i - 2) this.flows.delete(k);
    return pair;
  }

  async close(): Promise<void> {
    await this.iterator?.return(undefined);
    this.iterator = undefined;
    this.held.clear();
  }

  private async restart(): Promise<void> {
    await this.iterator?.return(undefined);
    this.iterator = readFrames(this.path, { ...readOptions(this.options), maxFrames: this.frames });
    this.next = 0;
  }
}

function readOptions(o: SourceVideoOptions) {
  return {
    resize: { width: o.width, height: o.height, kernel: "area" as const },
    colorMatrix: "opencv" as const,
    ...(o.maxFrames === undefined ? {} : { maxFrames: o.maxFrames }),
    ...(o.signal === undefined ? {} : { signal: o.signal }),
  };
}
