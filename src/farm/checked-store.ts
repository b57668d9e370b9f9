/**
 * The work folder as a farm worker writes to it: at-least-once delivery means two workers may render
 * the same frame (a job whose worker stalled is retried elsewhere while the first still runs). Every
 * file of a frame is written atomically (src/util/atomic-write.ts: temporary name, rename), so a
 * reader never sees half a frame; and a frame that is already there is not written again but
 * *compared*: the same pixels are the expected case (renders are deterministic), different pixels
 * mean the workers do not compute alike (another device, build or model file) and stop the job with
 * a FarmError instead of mixing two renders into one video.
 */
import type { Image } from "../image.js";
import type { FrameRecipe, FrameStore, StepKeyValues } from "../engine/frame-store.js";
import type { WorkFolder } from "../engine/work-folder.js";
import { FarmError } from "./farm-error.js";

function sameImage(a: Image, b: Image): boolean {
  if (a.width !== b.width || a.height !== b.height || a.channels !== b.channels) return false;
  return (
    Buffer.compare(
      Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength),
      Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength),
    ) === 0
  );
}

export class CheckedFrameStore implements FrameStore {
  /** Frames this store found already written by another worker (and identical). */
  readonly duplicates: number[] = [];

  constructor(private readonly work: WorkFolder) {}

  has(i: number): Promise<boolean> {
    return this.work.has(i);
  }

  image(i: number): Promise<Image> {
    return this.work.image(i);
  }

  recipe(i: number): Promise<FrameRecipe> {
    return this.work.recipe(i);
  }

  async put(i: number, image: Image, recipe: FrameRecipe): Promise<void> {
    if (await this.work.has(i)) {
      const existing = await this.work.image(i);
      if (!sameImage(existing, image)) {
        throw new FarmError(
          `frame ${i} of ${this.work.dir} was already written by another worker with different pixels`,
          {
            hint: "every worker must run the same Steadyframe build on the same --device with the same model files; stop the odd worker, delete the work folder and render again",
          },
        );
      }
      this.duplicates.push(i);
      return;
    }
    await this.work.put(i, image, recipe);
  }

  /** Keys/values are written by whichever worker renders the frame (the same numbers: renders are deterministic). */
  putKeyValues(i: number, step: number, entries: StepKeyValues): Promise<void> {
    return this.work.putKeyValues(i, step, entries);
  }

  hasKeyValues(i: number, steps: number): Promise<boolean> {
    return this.work.hasKeyValues(i, steps);
  }

  keyValues(i: number, step: number): Promise<StepKeyValues> {
    return this.work.keyValues(i, step);
  }

  dropKeyValues(i: number): Promise<void> {
    return this.work.dropKeyValues(i);
  }
}
