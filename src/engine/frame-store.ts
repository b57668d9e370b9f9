/**
 * Where finished frames go while a render runs, and what a resumed render reads back.
 *
 * A finished frame is its image plus its *recipe*: the initial noise and control images it was made
 * from (so it can be denoised again as an anchor for cross-frame attention) and the methods' state
 * after it (so a resumed render continues bit-identically). `MemoryFrameStore` keeps them in memory
 * (tests, conformance, short library calls); `WorkFolder` (./work-folder.ts) keeps them on disk.
 */
import type { Image } from "../image.js";
import type { HostTensor } from "../tensor.js";

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
}

export class MemoryFrameStore implements FrameStore {
  readonly images = new Map<number, Image>();
  readonly recipes = new Map<number, FrameRecipe>();

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
}
