/**
 * OpenCV compiled to WebAssembly (`@opencvjs/node`, OpenCV 4.13): one lazily loaded module, and the
 * helpers every control-map function uses to move data between our {@link Image} / float arrays and
 * `cv.Mat`s. Mats live in the wasm heap and are not garbage collected: every Mat created here is
 * created inside {@link withMats}, which deletes it when the callback returns or throws.
 *
 * Measured against cv2 4.6 (x86, SSE/AVX) on the opencv golden fixtures: cvtColor, Canny, remap and
 * addWeighted are bit-exact; Farneback flow differs by at most ~2e-5 px (scalar wasm build).
 */
import { loadOpenCV, type OpenCV } from "@opencvjs/node";
import { InvalidArgumentError, OpenCvError } from "../errors.js";
import { image, type Channels, type Image } from "../image.js";

export type Cv = typeof OpenCV;
export type Mat = OpenCV.Mat;

let loading: Promise<Cv> | undefined;

/** Loads OpenCV.js once (about 0.2 s) and returns the same module on every later call. */
export function loadCv(): Promise<Cv> {
  loading ??= loadOpenCV().catch((cause: unknown) => {
    loading = undefined;
    throw new OpenCvError("load", `the WebAssembly module could not be instantiated (${describe(cause)})`, {
      cause,
      hint: "reinstall @opencvjs/node (npm ci) and check that Node >= 20 runs WebAssembly",
    });
  });
  return loading;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Turns whatever OpenCV.js threw into an {@link OpenCvError}. cv::Exception arrives as a pointer
 * (a number) that `cv.exceptionFromPtr` decodes; wasm traps (out of memory) arrive as Errors.
 */
export function toOpenCvError(cv: Cv, op: string, thrown: unknown): OpenCvError {
  if (thrown instanceof OpenCvError) return thrown;
  let detail = describe(thrown);
  if (typeof thrown === "number") {
    try {
      const exception: unknown = cv.exceptionFromPtr(thrown);
      const msg: unknown =
        typeof exception === "object" && exception !== null && "msg" in exception ? exception.msg : undefined;
      detail = typeof msg === "string" ? msg.trim() : `cv::Exception at ${thrown}`;
    } catch {
      detail = `cv::Exception at ${thrown}`;
    }
  }
  return new OpenCvError(op, detail, { cause: thrown });
}

interface Deletable {
  delete(): void;
}

/** Registers a Mat (or MatVector) for deletion when the enclosing {@link withMats} scope ends. */
export type Track = <M extends Deletable>(mat: M) => M;

/**
 * Runs `fn` with a `track` function; every tracked object is deleted afterwards, also on error.
 * cv exceptions are rethrown as {@link OpenCvError} naming `op`. Results must be copied out of the
 * wasm heap (see {@link matToImage}, {@link matToFloats}) before the scope ends.
 */
export function withMats<T>(cv: Cv, op: string, fn: (track: Track) => T): T {
  const owned: Deletable[] = [];
  const track: Track = (mat) => {
    owned.push(mat);
    return mat;
  };
  try {
    return fn(track);
  } catch (thrown) {
    if (thrown instanceof InvalidArgumentError) throw thrown;
    throw toOpenCvError(cv, op, thrown);
  } finally {
    for (const mat of owned.reverse()) mat.delete();
  }
}

function uint8Type(cv: Cv, channels: Channels): number {
  const types: Record<Channels, number> = { 1: cv.CV_8UC1, 3: cv.CV_8UC3, 4: cv.CV_8UC4 };
  return types[channels];
}

function float32Type(cv: Cv, channels: number): number {
  const types: readonly number[] = [cv.CV_32FC1, cv.CV_32FC2, cv.CV_32FC3, cv.CV_32FC4];
  const type = types[channels - 1];
  if (type === undefined) throw new InvalidArgumentError("channels", "1, 2, 3 or 4", channels);
  return type;
}

/** Copies an {@link Image} into a new CV_8UC{1,3,4} Mat (tracked). */
export function imageToMat(cv: Cv, track: Track, img: Image): Mat {
  const mat = track(new cv.Mat(img.height, img.width, uint8Type(cv, img.channels)));
  mat.data.set(img.data);
  return mat;
}

/** Copies an 8-bit Mat (1, 3 or 4 channels) out of the wasm heap into an {@link Image}. */
export function matToImage(mat: Mat): Image {
  const channels = mat.channels();
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new InvalidArgumentError("Mat channels", "1, 3 or 4", channels);
  }
  return image(mat.cols, mat.rows, channels, mat.data.slice(0, mat.rows * mat.cols * channels));
}

/** Copies interleaved float32 data (`[height, width, channels]`) into a new CV_32FC{n} Mat (tracked). */
export function floatsToMat(
  cv: Cv,
  track: Track,
  data: Float32Array,
  width: number,
  height: number,
  channels: number,
): Mat {
  if (data.length !== width * height * channels) {
    throw new InvalidArgumentError(
      "data",
      `${width * height * channels} floats for ${width}x${height}x${channels}`,
      `${data.length} floats`,
    );
  }
  const mat = track(new cv.Mat(height, width, float32Type(cv, channels)));
  mat.data32F.set(data);
  return mat;
}

/** Copies a CV_32F Mat out of the wasm heap (interleaved `[rows, cols, channels]`). */
export function matToFloats(mat: Mat): Float32Array {
  return mat.data32F.slice(0, mat.rows * mat.cols * mat.channels());
}
