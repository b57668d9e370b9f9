/**
 * Luma conversion, matching `cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)` bit-exactly (OpenCV's
 * fixed-point BT.601 weights 0.299 R + 0.587 G + 0.114 B, rounded).
 */
import type { Image } from "../image.js";
import { imageToMat, loadCv, matToImage, withMats, type Cv } from "./opencv.js";
import { checkImage } from "./validate.js";

/**
 * Converts an RGB (or RGBA) image to one-channel gray; a gray image is returned unchanged.
 *
 * OpenCV: `cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)` (`COLOR_RGBA2GRAY` for 4 channels). Input channel
 * order is RGB, not OpenCV's usual BGR.
 */
export async function toGray(img: Image): Promise<Image> {
  return toGraySync(await loadCv(), img);
}

/** {@link toGray} with an already loaded OpenCV module (for per-frame loops). */
export function toGraySync(cv: Cv, img: Image): Image {
  checkImage("image", img);
  if (img.channels === 1) return img;
  return withMats(cv, "cvtColor", (track) => {
    const src = imageToMat(cv, track, img);
    const dst = track(new cv.Mat());
    cv.cvtColor(src, dst, img.channels === 4 ? cv.COLOR_RGBA2GRAY : cv.COLOR_RGB2GRAY);
    return matToImage(dst);
  });
}
