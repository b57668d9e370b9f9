/**
 * The seven local conditions of Uni-ControlNet (`[canny, mlsd, hed, sketch, openpose, midas, seg]`, in
 * its channel order), each computed from an RGB frame as the release's annotators do, through one
 * entry point: {@link computeCondition}, or an {@link AnnotatorSet} that keeps the networks loaded
 * across frames. Every map comes back as a 3-channel uint8 image at the frame's size (one-channel
 * maps replicated, `HWC3`), ready to be stacked as `uint8 / 255`.
 *
 * Natively (graph modules over the annotator .pth / .safetensors files): HED, M-LSD, sketch (HED +
 * the simplification GAN), OpenPose body. Through ONNX: depth (MiDaS DPT-Hybrid / Depth-Anything
 * exports, src/control/depth.ts) and seg (an UperNet/UniFormer ADE20k export, ./seg.ts). Canny is
 * OpenCV (`cv2.Canny(rgb, 100, 200)`).
 */
import { InvalidArgumentError } from "../../errors.js";
import type { Image } from "../../image.js";
import { type HostTensor, tensor } from "../../tensor.js";
import { cannySync, type CannyOptions } from "../canny.js";
import { DepthEstimator, normalizeDepthMaps, type DepthPreset } from "../depth.js";
import { loadCv } from "../opencv.js";
import { resizeImageSync } from "../resize.js";
import { checkImage } from "../validate.js";
import { grayToRgb, toRgb } from "./common.js";
import { HedDetector, type HedVariant } from "./hed.js";
import { MlsdDetector, type MlsdDecodeOptions } from "./mlsd.js";
import { OpenPoseDetector } from "./openpose.js";
import { Segmenter } from "./seg.js";
import { SketchSimplifier } from "./sketch.js";

export { HedDetector, fuseHedSides, detectHedVariant, type HedVariant } from "./hed.js";
export { MlsdDetector, decodeMlsdLines, drawLines, type LineSegment } from "./mlsd.js";
export { SketchSimplifier } from "./sketch.js";
export {
  OpenPoseDetector,
  findPeaks,
  connectLimbs,
  assemblePeople,
  drawBodyPose,
  gaussianFilter,
  type Peak,
  type BodyPose,
} from "./openpose.js";
export { Segmenter, paintLabels, labelsFromLogits, ADE20K_PALETTE } from "./seg.js";
export { openAnnotatorWeights } from "./net.js";

/** The local condition names, in Uni-ControlNet's channel order (3 channels each). */
export const CONDITION_NAMES = ["canny", "mlsd", "hed", "sketch", "openpose", "depth", "seg"] as const;
export type ConditionName = (typeof CONDITION_NAMES)[number];

/** Which conditions run natively from .pth/.safetensors, and which need an ONNX export. */
export const CONDITION_BACKENDS: Readonly<Record<ConditionName, "opencv" | "native" | "onnx">> = {
  canny: "opencv",
  mlsd: "native",
  hed: "native",
  sketch: "native",
  openpose: "native",
  depth: "onnx",
  seg: "onnx",
};

/** Weight files, per network. */
export interface ConditionWeights {
  /** `ControlNetHED.pth` (Apache-2 HED) or `network-bsds500.pth` (Uni-ControlNet's HED); .safetensors too. */
  readonly hed?: string;
  /** `mlsd_large_512_fp32.pth`. */
  readonly mlsd?: string;
  /** `model_gan.pth` (sketch simplification); sketch also needs `hed`. */
  readonly sketch?: string;
  /** `body_pose_model.pth`. */
  readonly openpose?: string;
  /** A depth ONNX model (MiDaS DPT-Hybrid or Depth-Anything export). */
  readonly depth?: string;
  /** A segmentation ONNX model (ADE20k logits). */
  readonly seg?: string;
}

export type WeightName = keyof ConditionWeights;

export interface ConditionOptions {
  readonly weights?: ConditionWeights;
  /**
   * How the caller names each weight option, for "missing file" messages (e.g. `{ hed: "--hed" }`);
   * default `weights.<name>`.
   */
  readonly optionNames?: Partial<Record<WeightName, string>>;
  /** Canny thresholds (default 100 / 200, the demo's). */
  readonly canny?: CannyOptions;
  /** M-LSD thresholds (default value 0.1 / distance 0.1, the demo's). */
  readonly mlsd?: MlsdDecodeOptions;
  /** HED release conventions (default: from the file's keys). */
  readonly hedVariant?: HedVariant;
  /**
   * Depth model conventions (default "dpt" at the image's own size, mean = std = 0.5: the release feeds
   * `x / 127.5 - 1` at full resolution); the map is min-max normalised per frame as the release does.
   */
  readonly depthPreset?: DepthPreset;
  /** onnxruntime execution providers for the native networks (default ["cpu"]). */
  readonly executionProviders?: readonly string[];
}

function optionName(options: ConditionOptions, name: WeightName): string {
  return options.optionNames?.[name] ?? `weights.${name}`;
}

function requireWeights(options: ConditionOptions, name: WeightName, condition: ConditionName): string {
  const path = options.weights?.[name];
  if (path === undefined || path === "") {
    throw new InvalidArgumentError(
      optionName(options, name),
      `a weight file for the "${condition}" condition`,
      undefined,
      { hint: `pass ${WEIGHT_HINTS[name]} with ${optionName(options, name)}` },
    );
  }
  return path;
}

const WEIGHT_HINTS: Readonly<Record<WeightName, string>> = {
  hed: "ControlNetHED.pth or network-bsds500.pth",
  mlsd: "mlsd_large_512_fp32.pth",
  sketch: "model_gan.pth (the sketch simplification GAN)",
  openpose: "body_pose_model.pth",
  depth: "a depth ONNX model (MiDaS DPT-Hybrid or Depth-Anything export)",
  seg: "an ADE20k segmentation ONNX model",
};

/** Checks a condition name; the error names the valid ones. */
export function checkConditionName(name: string): ConditionName {
  if (!(CONDITION_NAMES as readonly string[]).includes(name)) {
    throw new InvalidArgumentError("condition", `one of ${CONDITION_NAMES.join(", ")}`, name, {
      hint: `the local conditions are ${CONDITION_NAMES.join(", ")}`,
    });
  }
  return name as ConditionName;
}

/** Loaded annotator networks, reused across frames; {@link release} frees them. */
export class AnnotatorSet {
  private readonly loaded = new Map<string, Promise<unknown>>();

  constructor(readonly options: ConditionOptions = {}) {}

  private get<T>(key: string, make: () => Promise<T>): Promise<T> {
    let p = this.loaded.get(key) as Promise<T> | undefined;
    if (p === undefined) {
      p = make();
      this.loaded.set(key, p);
      p.catch(() => this.loaded.delete(key));
    }
    return p;
  }

  /** Session settings shared by the native networks. */
  private net(): { executionProviders?: readonly string[] } {
    const providers = this.options.executionProviders;
    return providers ? { executionProviders: providers } : {};
  }

  hed(condition: ConditionName = "hed"): Promise<HedDetector> {
    const path = requireWeights(this.options, "hed", condition);
    return this.get(`hed:${path}`, () =>
      HedDetector.create(path, {
        ...this.net(),
        option: optionName(this.options, "hed"),
        ...(this.options.hedVariant ? { variant: this.options.hedVariant } : {}),
      }),
    );
  }

  mlsd(): Promise<MlsdDetector> {
    const path = requireWeights(this.options, "mlsd", "mlsd");
    return this.get(`mlsd:${path}`, () =>
      MlsdDetector.create(path, {
        ...this.net(),
        ...this.options.mlsd,
        option: optionName(this.options, "mlsd"),
      }),
    );
  }

  sketch(): Promise<SketchSimplifier> {
    const path = requireWeights(this.options, "sketch", "sketch");
    return this.get(`sketch:${path}`, () =>
      SketchSimplifier.create(path, { ...this.net(), option: optionName(this.options, "sketch") }),
    );
  }

  openpose(): Promise<OpenPoseDetector> {
    const path = requireWeights(this.options, "openpose", "openpose");
    return this.get(`openpose:${path}`, () =>
      OpenPoseDetector.create(path, { ...this.net(), option: optionName(this.options, "openpose") }),
    );
  }

  depth(): Promise<DepthEstimator> {
    const path = requireWeights(this.options, "depth", "depth");
    return this.get(`depth:${path}`, () =>
      DepthEstimator.create(path, {
        preset: this.options.depthPreset ?? "dpt",
        ...(this.options.depthPreset === undefined ? { resizeMode: "native" as const } : {}),
        flag: optionName(this.options, "depth"),
      }),
    );
  }

  seg(): Promise<Segmenter> {
    const path = requireWeights(this.options, "seg", "seg");
    return this.get(`seg:${path}`, () => Segmenter.create(path, { option: optionName(this.options, "seg") }));
  }

  /** One condition map of an RGB frame: 3-channel uint8 at the frame's size. */
  async compute(name: string, frame: Image): Promise<Image> {
    const condition = checkConditionName(name);
    checkImage("frame", frame);
    const rgb = toRgb(frame, "frame");
    switch (condition) {
      case "canny":
        return grayToRgb(cannySync(await loadCv(), rgb, this.options.canny ?? {}));
      case "mlsd":
        return grayToRgb(await (await this.mlsd()).detect(rgb));
      case "hed":
        return grayToRgb(await (await this.hed()).detect(rgb));
      case "sketch": {
        const simplifier = await this.sketch();
        return grayToRgb(await simplifier.detect(rgb, await this.hed("sketch")));
      }
      case "openpose":
        return (await this.openpose()).detect(rgb);
      case "depth": {
        const map = await (await this.depth()).estimate(rgb);
        const [img] = normalizeDepthMaps([map], "frame");
        if (!img) throw new InvalidArgumentError("depth", "one depth map", 0);
        return grayToRgb(img);
      }
      case "seg":
        return (await this.seg()).detect(rgb);
    }
  }

  /** Releases every loaded network. */
  async release(): Promise<void> {
    const all = [...this.loaded.values()];
    this.loaded.clear();
    for (const p of all) {
      const net = (await p.catch(() => undefined)) as { release?: () => Promise<void> } | undefined;
      await net?.release?.();
    }
  }
}

export interface ComputeConditionOptions extends ConditionOptions {
  /** (optional) loaded networks to reuse (e.g. across the frames of a clip); else loaded and released here. */
  readonly annotators?: AnnotatorSet;
}

/**
 * One local condition map of an RGB frame (3-channel uint8, frame size). Unknown names throw an
 * InvalidArgumentError naming the valid ones; a network condition without its weight file throws one
 * naming the option to pass (`optionNames` or `weights.<name>`).
 */
export async function computeCondition(
  name: ConditionName | string,
  frame: Image,
  options: ComputeConditionOptions = {},
): Promise<Image> {
  checkConditionName(name);
  if (options.annotators) return options.annotators.compute(name, frame);
  const set = new AnnotatorSet(options);
  try {
    return await set.compute(name, frame);
  } finally {
    await set.release();
  }
}

/**
 * A frame or a supplied condition image brought to the condition size as the release's demo does
 * for every input: `cv2.resize(img, (W, H))` (INTER_LINEAR) then `HWC3`.
 */
export async function prepareConditionImage(img: Image, width: number, height: number): Promise<Image> {
  checkImage("condition image", img);
  const rgb = toRgb(img);
  if (rgb.width === width && rgb.height === height) return rgb;
  return resizeImageSync(await loadCv(), rgb, { width, height, interpolation: "linear" });
}

/**
 * One condition map at `width` x `height` from a source image of any size: the demo's
 * `detector(HWC3(cv2.resize(img, (W, H))))`.
 */
export async function computeConditionAt(
  name: ConditionName | string,
  source: Image,
  width: number,
  height: number,
  options: ComputeConditionOptions = {},
): Promise<Image> {
  checkConditionName(name);
  return computeCondition(name, await prepareConditionImage(source, width, height), options);
}

/**
 * The local adapter's input `[1, 21, H, W]` float32: the maps in {@link CONDITION_NAMES} order, 3
 * channels each, `uint8 / 255` (float32), zeros for absent maps. Every map must be 3-channel (or gray,
 * replicated) at `width` x `height`.
 */
export function stackLocalConditions(
  maps: Partial<Record<ConditionName, Image>>,
  width: number,
  height: number,
): HostTensor<"float32"> {
  const plane = width * height;
  const out = new Float32Array(CONDITION_NAMES.length * 3 * plane);
  for (const key of Object.keys(maps)) checkConditionName(key);
  CONDITION_NAMES.forEach((name, k) => {
    const map = maps[name];
    if (map === undefined) return;
    checkImage(name, map, [1, 3]);
    if (map.width !== width || map.height !== height) {
      throw new InvalidArgumentError(`${name} map size`, `${width}x${height}`, `${map.width}x${map.height}`, {
        hint: "compute the map at the condition size or pass it through prepareConditionImage",
      });
    }
    const rgb = grayToRgb(map);
    for (let c = 0; c < 3; c++)
      for (let i = 0; i < plane; i++) out[(3 * k + c) * plane + i] = (rgb.data[3 * i + c] ?? 0) / 255;
  });
  return tensor("float32", [1, CONDITION_NAMES.length * 3, height, width], out);
}
