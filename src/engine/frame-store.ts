/**
 * Where finished frames go while a render runs, and what a resumed render reads back.
 *
 * A finished frame is its image plus its *recipe*: the initial noise and control images it was made
 * from (so it can be denoised again as an anchor for cross-frame attention) and the methods' state
 * after it (so a resumed render continues bit-identically). `MemoryFrameStore` keeps them in memory
 * (tests, conformance, short library calls); `WorkFolder` (./work-folder.ts) keeps them on disk.
 */
import type { Image } from "../image.js";
import type { AnchorEntry } from "../models/anchor-attention.js";
import type { HostTensor } from "../tensor.js";

/** One frame's self-attention keys/values of one denoising step: model ("unet", "controlnet.0") -> entry. */
export type StepKeyValues = ReadonlyMap<string, AnchorEntry>;

export interface FrameRecipe {
  /** Initial noise [1, C, h, w] (unit variance). */
  readonly noise: HostTensor<"float32">;
  /** One control image per ControlNet. */
  readonly controls: readonly Image[];
  /** Method state after this frame, keyed `<method id>/<name>`. */
  readonly state: Readonly<Record<string, HostTensor<"float32">>>;
  /** Seconds this frame's batch took, divided by its fresh frames. */
  readonly seconds: number;
}

export interface FrameStore {
  /** True when frame `i` is finished (image and recipe stored). */
  has(i: number): Promise<boolean>;
  image(i: number): Promise<Image>;
  recipe(i: number): Promise<FrameRecipe>;
  /** Stores a finished frame; the image is written last, so a frame with an image is complete. */
  put(i: number, image: Image, recipe: FrameRecipe): Promise<void>;

  /**
   * The self-attention keys/values frame `i` had at each step of its own generation, kept for the
   * later frames that attend to it (methods with `storedAnchors`, e.g. sparse-causal attention's
   * previous frame). Written step by step while the frame is denoised, so before its image.
   */
  putKeyValues(i: number, step: number, entries: StepKeyValues): Promise<void>;
  /** True when frame `i`'s keys/values are there for each of `steps` steps. */
  hasKeyValues(i: number, steps: number): Promise<boolean>;
  keyValues(i: number, step: number): Promise<StepKeyValues>;
  /** Forgets frame `i`'s keys/values (no later frame needs them). */
  dropKeyValues(i: number): Promise<void>;
}

export class MemoryFrameStore implements FrameStore {
  readonly images = new Map<number, Image>();
  readonly recipes = new Map<number, FrameRecipe>();
  /** frame -> step -> keys/values. */
  readonly attention = new Map<number, Map<number, StepKeyValues>>();

  has(i: number): Promise<boolean> {
    return Promise.resolve(this.images.has(i));
  }

  image(i: number): Promise<Image> {
    const img = this.images.get(i);
    return img ? Promise.resolve(img) : Promise.reject(new Error(`frame ${i} is not finished`));
  }

  recipe(i: number): Promise<FrameRecipe> {
    const r = this.recipes.get(i);
    return r ? Promise.resolve(r) : Promise.reject(new Error(`frame ${i} is not finished`));
  }

  put(i: number, image: Image, recipe: FrameRecipe): Promise<void> {
    this.recipes.set(i, recipe);
    this.images.set(i, image);
    return Promise.resolve();
  }

  putKeyValues(i: number, step: number, entries: StepKeyValues): Promise<void> {
    let steps = this.attention.get(i);
    if (steps === undefined) this.attention.set(i, (steps = new Map()));
    steps.set(step, entries);
    return Promise.resolve();
  }

  hasKeyValues(i: number, steps: number): Promise<boolean> {
    const have = this.attention.get(i);
    return Promise.resolve(
      have !== undefined && Array.from({ length: steps }, (_, s) => s).every((s) => have.has(s)),
    );
  }

  keyValues(i: number, step: number): Promise<StepKeyValues> {
    const kv = this.attention.get(i)?.get(step);
    return kv
      ? Promise.resolve(kv)
      : Promise.reject(new Error(`frame ${i} has no stored keys/values for step ${step}`));
  }

  dropKeyValues(i: number): Promise<void> {
    this.attention.delete(i);
    return Promise.resolve();
  }
}
