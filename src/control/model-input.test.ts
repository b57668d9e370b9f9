import { describe, expect, it } from "vitest";
import { expectError } from "../../test/helpers/run-graph.js";
import { InvalidArgumentError } from "../errors.js";
import { image } from "../image.js";
import { DEPTH_PRESETS, DepthEstimator } from "./depth.js";
import {
  constrainToMultipleOf,
  IMAGENET_MEAN,
  IMAGENET_STD,
  imageToNchw,
  modelInputSize,
  pickPreset,
  withInputOverrides,
} from "./model-input.js";
import { loadCv } from "./opencv.js";
import { SOFT_EDGE_PRESETS, SoftEdgeDetector } from "./soft-edge.js";

describe("modelInputSize (MiDaS Resize.get_size)", () => {
  it("rounds to multiples with np.round and respects bounds", () => {
    expect(constrainToMultipleOf(690.67, 14)).toBe(686);
    expect(constrainToMultipleOf(21, 14)).toBe(28); // 1.5 -> 2 (half to even)
    expect(constrainToMultipleOf(35, 14)).toBe(28); // 2.5 -> 2
    expect(constrainToMultipleOf(521, 14, 521)).toBe(532); // round gives 518 < min: ceil
    expect(constrainToMultipleOf(400, 32, 0, 384)).toBe(384);
  });

  it("computes the Depth-Anything, DPT and MiDaS v2.1 sizes of a 640x480 frame", () => {
    const cases: [number, number, Parameters<typeof modelInputSize>[2], [number, number]][] = [
      [640, 480, { size: 518, resizeMode: "lower-bound", multipleOf: 14 }, [686, 518]],
      [640, 480, { size: 384, resizeMode: "minimal", multipleOf: 32 }, [512, 384]],
      [640, 480, { size: 384, resizeMode: "upper-bound", multipleOf: 32 }, [384, 288]],
      [640, 480, { size: 384, resizeMode: "stretch", multipleOf: 32 }, [384, 384]],
      [510, 300, { size: 0, resizeMode: "native", multipleOf: 8 }, [512, 304]],
    ];
    for (const [w, h, options, [width, height]] of cases) {
      expect(modelInputSize(w, h, options), options.resizeMode).toEqual({ width, height });
    }
  });

  it("rejects an unknown mode", () => {
    // @ts-expect-error not a resize mode
    expect(() => modelInputSize(8, 8, { size: 8, resizeMode: "cover", multipleOf: 8 })).toThrow(
      InvalidArgumentError,
    );
  });
});

describe("imageToNchw", () => {
  it("lays out planes R, G, B with (v/255*scale - mean)/std", async () => {
    const cv = await loadCv();
    const img = image(2, 1, 3, Uint8Array.from([255, 0, 51, 0, 255, 102]));
    const out = imageToNchw(
      cv,
      img,
      { width: 2, height: 1 },
      { scale: 1, mean: IMAGENET_MEAN, std: IMAGENET_STD, interpolation: "cubic" },
    );
    const expected = [
      (1 - 0.485) / 0.229,
      (0 - 0.485) / 0.229,
      (0 - 0.456) / 0.224,
      (1 - 0.456) / 0.224,
      (0.2 - 0.406) / 0.225,
      (0.4 - 0.406) / 0.225,
    ];
    out.forEach((v, i) => expect(v).toBeCloseTo(expected[i] ?? NaN, 5));
    const gray = imageToNchw(
      cv,
      image(1, 1, 1, Uint8Array.from([255])),
      { width: 2, height: 2 },
      { scale: 255, mean: [0, 0, 0], std: [1, 1, 1], interpolation: "linear" },
    );
    expect(Array.from(gray)).toEqual(new Array(12).fill(255));
  });
});

describe("presets", () => {
  it("withInputOverrides replaces only the fields given", () => {
    expect(withInputOverrides(DEPTH_PRESETS.dpt, { size: 256, mean: IMAGENET_MEAN })).toEqual({
      ...DEPTH_PRESETS.dpt,
      size: 256,
      mean: IMAGENET_MEAN,
    });
  });

  it("pickPreset returns the named preset and lists the known names for an unknown one", async () => {
    expect(pickPreset(SOFT_EDGE_PRESETS, "pidinet")).toBe(SOFT_EDGE_PRESETS.pidinet);
    await expectError(
      // @ts-expect-error not a depth preset
      () => DepthEstimator.create("unused.onnx", { preset: "zoe" }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      'Expected "depth-anything", "dpt" or "midas" for preset',
    );
    await expectError(
      // @ts-expect-error not a soft edge preset
      () => SoftEdgeDetector.create("unused.onnx", { preset: "canny" }),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      'Expected "hed" or "pidinet" for preset',
    );
  });
});
