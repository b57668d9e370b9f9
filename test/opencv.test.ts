/**
 * The `opencv` conformance kind and the metric functions on the car-turn golden fixture (cv2 4.6
 * reference run, copied from shared/golden/opencv/car-turn; see fixtures/golden/PROVENANCE.md).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { FIXTURE_KINDS } from "../src/conformance/registry.js";
import { opencvKind } from "../src/conformance/kinds/opencv.js";
import { parseVariant } from "../src/conformance/kinds/opencv-warp.js";
import { readFlows } from "../src/conformance/kinds/opencv-io.js";
import type { ConformanceRow } from "../src/conformance/types.js";
import { readImageFile } from "../src/control/png.js";
import { ConfigError } from "../src/errors.js";
import type { Image } from "../src/image.js";
import { clipWarpError } from "../src/metrics/warp-error.js";

const dir = fileURLToPath(new URL("./fixtures/golden/opencv/car-turn", import.meta.url));

type Json = Record<string, unknown>;
let caseJson: Json;
let frames: Image[];

beforeAll(async () => {
  caseJson = JSON.parse(await readFile(join(dir, "case.json"), "utf8")) as Json;
  frames = [];
  for (let i = 0; i < 8; i++)
    frames.push(await readImageFile(join(dir, "frames", `frame_${String(i).padStart(3, "0")}.png`)));
});

const byTensor = (rows: readonly ConformanceRow[], tensor: string): ConformanceRow | undefined =>
  rows.find((r) => r.tensor === tensor);

function edited(edit: (json: Json) => void): Json {
  const copy = structuredClone(caseJson);
  edit(copy);
  return copy;
}

describe("conformance kind opencv on car-turn", () => {
  it("is registered", () => {
    expect(FIXTURE_KINDS.map((k) => k.kind)).toContain("opencv");
  });

  it("passes every row: exact uint8 stages, flow within 1e-3, warp errors within 1e-9", async () => {
    const rows = await opencvKind.run({ dir, caseJson });
    const failing = rows.filter((r) => !r.pass).map((r) => `${r.tensor}: ${r.maxAbsError} (${r.note ?? ""})`);
    expect(failing).toEqual([]);
    for (const tensor of [
      "png_pixels",
      "gray",
      "canny_100_200",
      "canny_50_150",
      "flow_fw",
      "flow_bw",
      "warp_constant",
      "warp_replicate",
      "consistency",
      "warp_error",
      "warp_error[own flow]",
      "interp_100_200",
    ]) {
      expect(byTensor(rows, tensor), tensor).toBeDefined();
    }
    for (const tensor of [
      "gray",
      "canny_100_200",
      "canny_50_150",
      "warp_constant",
      "consistency",
      "interp_100_200",
    ]) {
      expect(byTensor(rows, tensor)?.maxAbsError, tensor).toBe(0);
    }
    expect(byTensor(rows, "flow_fw")!.maxAbsError).toBeLessThan(1e-4);
    expect(byTensor(rows, "warp_error.primary_mask_exact_float64_bilinear")?.pass).toBe(true);
    expect(rows.every((r) => r.fixture === "opencv/car-turn")).toBe(true);
  });

  it("reads the parameters from case.json: other Canny thresholds and Farneback windows fail", async () => {
    const rows = await opencvKind.run({
      dir,
      caseJson: edited((json) => {
        const canny = json.canny as Json[];
        canny[0]!.threshold1 = 90;
        ((json.farneback as Json).params as Json).winsize = 21;
      }),
    });
    expect(byTensor(rows, "canny_100_200")?.pass).toBe(false);
    expect(byTensor(rows, "canny_100_200")?.maxAbsError).toBe(255);
    expect(byTensor(rows, "canny_50_150")?.pass).toBe(true);
    expect(byTensor(rows, "flow_fw")?.pass).toBe(false);
    expect(byTensor(rows, "warp_constant")?.pass).toBe(true);
  });

  it("refuses a case.json without Farneback parameters or with an unknown consistency test", async () => {
    const missing = await opencvKind
      .run({ dir, caseJson: edited((json) => delete (json.farneback as Json).params) })
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ConfigError);
    expect((missing as ConfigError).code).toBe("E_CONFIG");
    expect((missing as ConfigError).message).toContain('field "farneback.params" should be an object');
    const test = await opencvKind
      .run({ dir, caseJson: edited((json) => ((json.consistency as Json).test = "|w| < 1")) })
      .catch((e: unknown) => e);
    expect(test).toBeInstanceOf(ConfigError);
    expect((test as ConfigError).message).toContain('field "consistency.test"');
  });

  it("understands the fixture's warp_error variant names", () => {
    expect(parseVariant("consistency_sq_only_border_replicate")).toEqual({
      mask: { norm: "squared", inBounds: false },
      border: "replicate",
      warp: "remap",
    });
    expect(parseVariant("unmasked_border_constant")).toEqual({
      mask: null,
      border: "constant",
      warp: "remap",
    });
    expect(parseVariant("something_else")).toBeUndefined();
  });
});

describe("clipWarpError on car-turn", () => {
  it("reproduces case.json's warp errors and mask sizes from the reference flows", async () => {
    const forward = await readFlows(join(dir, "flow.safetensors"), "flow_fw");
    const backward = await readFlows(join(dir, "flow.safetensors"), "flow_bw");
    const result = await clipWarpError(frames, { flows: { forward, backward } });
    const pairs = (caseJson.warp_error as { pairs: { warp_error: number; mask_pixels: number }[] }).pairs;
    result.pairs.forEach((p, i) => {
      expect(Math.abs(p.error - pairs[i]!.warp_error)).toBeLessThan(1e-9);
      expect(p.pixels).toBe(pairs[i]!.mask_pixels);
    });
    const mean = pairs.reduce((s, p) => s + p.warp_error, 0) / pairs.length;
    expect(Math.abs(result.mean - mean)).toBeLessThan(1e-9);
  });

  it("gets within 1e-4 of them computing the flows itself (OpenCV.js Farneback)", async () => {
    const started = Date.now();
    const result = await clipWarpError(frames, {
      farneback: { pyrScale: 0.5, levels: 3, winsize: 15, iterations: 3, polyN: 5, polySigma: 1.2, flags: 0 },
    });
    const pairs = (caseJson.warp_error as { pairs: { warp_error: number }[] }).pairs;
    result.pairs.forEach((p, i) => expect(Math.abs(p.error - pairs[i]!.warp_error)).toBeLessThan(1e-4));
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});
