import { describe, expect, it } from "vitest";
import * as steadyframe from "./index.js";

describe("public API", () => {
  it("loads without side effects and exposes the main entry points", () => {
    for (const name of [
      "StableDiffusionPipeline",
      "UNet2DConditionModel",
      "ControlNetModel",
      "AutoencoderKL",
      "CLIPTextModel",
      "CLIPTokenizer",
      "TorchGenerator",
      "schedulerFromConfig",
      "readFrames",
      "writeVideo",
      "canny",
      "farnebackFlow",
      "clipWarpError",
      "runConformance",
      "GraphBuilder",
      "createSession",
    ] as const) {
      expect(typeof steadyframe[name], name).toBe("function");
    }
    expect(new steadyframe.TorchGenerator(0).randn([2]).shape).toEqual([2]);
  });
});
