/**
 * Canny edge maps, matching `cv2.Canny` bit-exactly (checked on the opencv golden fixtures).
 */
import { InvalidArgumentError } from "../errors.js";
import type { Image } from "../image.js";
import { imageToMat, loadCv, matToImage, withMats, type Cv } from "./opencv.js";
import { checkImage, checkNumber } from "./validate.js";

export interface CannyOptions {
  /** (optional, default 100) lower hysteresis threshold (`threshold1`). */
  readonly threshold1?: number;
  /** (optional, default 200) upper hysteresis threshold (`threshold2`). */
  readonly threshold2?: number;
  /** (optional, default 3) Sobel aperture: 3, 5 or 7 (`apertureSize`). */
  readonly apertureSize?: 3 | 5 | 7;
  /** (optional, default false) use the exact L2 gradient norm instead of |dx| + |dy| (`L2gradient`). */
  readonly l2Gradient?: boolean;
}

/**
 * Edge map (0 or 255, one channel) of an 8-bit image.
 *
 * OpenCV: `cv2.Canny(img, threshold1, threshold2, apertureSize=apertureSize, L2gradient=l2Gradient)`.
 * A gray image gives the fixture convention (`Canny(gray, ...)`). An RGB image is passed to Canny
 * as is, like the ControlNet canny preprocessors do (`cv2.Canny(rgb_array, low, high)`): the
 * gradient is then the largest over the three channels, which is not the same as Canny of the gray
 * image. RGBA drops its alpha first.
 */
export async function canny(img: Image, options: CannyOptions = {}): Promise<Image> {
  return cannySync(await loadCv(), img, options);
}

/** {@link canny} with an already loaded OpenCV module. */
export function cannySync(cv: Cv, img: Image, options: CannyOptions = {}): Image {
  checkImage("image", img);
  const threshold1 = options.threshold1 ?? 100;
  const threshold2 = options.threshold2 ?? 200;
  const apertureSize = options.apertureSize ?? 3;
  checkNumber("threshold1", threshold1, 0, Number.MAX_VALUE);
  checkNumber("threshold2", threshold2, 0, Number.MAX_VALUE);
  if (apertureSize !== 3 && apertureSize !== 5 && apertureSize !== 7) {
    throw new InvalidArgumentError("apertureSize", "3, 5 or 7", apertureSize);
  }
  return withMats(cv, "Canny", (track) => {
    let src = imageToMat(cv, track, img);
    if (img.channels === 4) {
      const rgb = track(new cv.Mat());
      cv.cvtColor(src, rgb, cv.COLOR_RGBA2RGB);
      src = rgb;
    }
    const edges = track(new cv.Mat());
    cv.Canny(src, edges, threshold1, threshold2, apertureSize, options.l2Gradient ?? false);
    return matToImage(edges);
  });
}
