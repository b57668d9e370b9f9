/**
 * Settings of the opencv conformance kind that the public fixtures keep at one value: every one is
 * either read from case.json and passed to OpenCV, or refused with an UnsupportedError.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { parseBorderValue, parseOpencvCase } from "../src/conformance/kinds/opencv-case.js";
import { Reader } from "../src/conformance/kinds/opencv-json.js";
import { opencvKind } from "../src/conformance/kinds/opencv.js";
import { consistencyMaskSync } from "../src/control/occlusion.js";
import { loadCv } from "../src/control/opencv.js";
import { borderScalar, warpImage } from "../src/control/warp.js";
import { blendEdgeMaps } from "../src/control/interpolate.js";
import { UnsupportedError } from "../src/errors.js";
import { image } from "../src/image.js";

const dir = fileURLToPath(new URL("./fixtures/golden/opencv/car-turn", import.meta.url));
type Json = Record<string, unknown>;
let caseJson: Json;

beforeAll(async () => {
  caseJson = JSON.parse(await readFile(join(dir, "case.json"), "utf8")) as Json;
});

function edited(edit: (json: Json) => void): Json {
  const copy = structuredClone(caseJson);
  edit(copy);
  return copy;
}
const parse = (json: Json) => parseOpencvCase(json, "case.json");
const sub = (json: Json, key: string): Json => json[key] as Json;

describe("opencv case.json settings", () => {
  it("parses borderValue like cv2's Python binding: a bare number fills only channel 0", () => {
    const r = new Reader("case.json");
    expect(parseBorderValue(r, "f", "BORDER_CONSTANT, borderValue=0")).toEqual([0, 0, 0, 0]);
    expect(parseBorderValue(r, "f", "BORDER_CONSTANT")).toEqual([0, 0, 0, 0]);
    expect(parseBorderValue(r, "f", "BORDER_CONSTANT, borderValue=255")).toEqual([255, 0, 0, 0]);
    expect(parseBorderValue(r, "f", "BORDER_CONSTANT, borderValue=(255, 128, 7)")).toEqual([255, 128, 7, 0]);
    expect(parseBorderValue(r, "f", "borderValue=[1.5, 2]")).toEqual([1.5, 2, 0, 0]);
    const c = parse(
      edited((j) => (sub(j, "warp").dirs = { warp_constant: "BORDER_CONSTANT, borderValue=(9, 8, 7)" })),
    );
    expect(c.warp.dirs[0]?.value).toEqual([9, 8, 7, 0]);
  });

  it("fills the border per channel with a list borderValue", async () => {
    const src = image(4, 4, 3, new Uint8Array(48).fill(100));
    const flow = { width: 4, height: 4, data: new Float32Array(32).fill(10) };
    const out = await warpImage(src, flow, { borderValue: [255, 0, 0] });
    expect([...out.data.slice(0, 3)]).toEqual([255, 0, 0]);
    expect(borderScalar(5)).toEqual([5, 5, 5, 5]);
    expect(borderScalar([5])).toEqual([5, 0, 0, 0]);
  });

  it("maps remap INTER_AREA to linear (as cv2.remap does) and reads other interpolations", () => {
    const call = (inter: string) =>
      parse(edited((j) => (sub(j, "warp").call = `cv2.remap(f, mx, my, cv2.${inter}, borderMode=B)`))).warp
        .interpolation;
    expect(call("INTER_AREA")).toBe("linear");
    expect(call("INTER_CUBIC")).toBe("cubic");
    expect(() => call("INTER_LINEAR_EXACT")).toThrow(UnsupportedError);
  });

  it("reads the consistency sampling, the mask's in-bounds term and refuses a non-strict test", () => {
    const base = parse(caseJson).consistency;
    expect(base.sampling).toEqual({ interpolation: "linear", borderMode: "replicate" });
    expect(base.inBounds).toBe(true);
    const c = parse(
      edited((j) => {
        const k = sub(j, "consistency");
        k.sampling =
          "w_hat = cv2.remap(flow_bw[i], map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)";
        k.mask = "consistency only; mask_*.png is 255 where the pixel counts";
      }),
    ).consistency;
    expect(c.sampling).toEqual({ interpolation: "nearest", borderMode: "reflect" });
    expect(c.inBounds).toBe(false);
    const le = edited(
      (j) => (sub(j, "consistency").test = "|w + w_hat|^2 <= 0.01 * (|w|^2 + |w_hat|^2) + 0.5"),
    );
    expect(() => parse(le)).toThrow(UnsupportedError);
  });

  it("samples the backward flow with the given interpolation", async () => {
    const cv = await loadCv();
    const w = 8;
    const forward = { width: w, height: 1, data: new Float32Array(2 * w) };
    const backward = { width: w, height: 1, data: new Float32Array(2 * w) };
    for (let x = 0; x < w; x++) {
      forward.data[2 * x] = 0.25;
      backward.data[2 * x] = x % 2 === 0 ? -0.25 : 4;
    }
    const opts = { inBounds: false } as const;
    const linear = consistencyMaskSync(cv, forward, backward, opts);
    const nearest = consistencyMaskSync(cv, forward, backward, {
      ...opts,
      sampling: { interpolation: "nearest" },
    });
    expect(linear.data[0]).toBe(0);
    expect(nearest.data[0]).toBe(255);
  });

  it("reads addWeighted's gamma of the interpolation call and refuses other calls", () => {
    const call = (text: string) =>
      parse(edited((j) => ((j.interp as Json[])[0]!.call = text))).interp[0]?.gamma;
    expect(parse(caseJson).interp[0]?.gamma).toBe(0);
    expect(call("cv2.addWeighted(edge_i, 1.0 - t, edge_{i+1}, t, 10)")).toBe(10);
    expect(() => call("cv2.addWeighted(edge_i, t, edge_{i+1}, 1.0 - t, 0)")).toThrow(UnsupportedError);
    const a = image(1, 1, 1, new Uint8Array([0]));
    expect(blendEdgeMaps(a, a, 0.5, 10).data[0]).toBe(10);
  });

  it("reads the warp error distance and refuses a gray conversion other than RGB2GRAY", () => {
    expect(parse(caseJson).warpDistance).toBe("l1");
    const l2 = edited(
      (j) =>
        (sub(j, "warp_error").definition =
          "mean over mask pixels and the 3 channels of (frame_i/255 - warp_constant_i/255)^2"),
    );
    expect(parse(l2).warpDistance).toBe("l2");
    const bgr = edited((j) => (sub(j, "gray").call = "cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY)"));
    expect(() => parse(bgr)).toThrow(UnsupportedError);
  });

  it("fails the warp rows when the border value changes (the setting is used)", async () => {
    const rows = await opencvKind.run({
      dir,
      caseJson: edited(
        (j) => (sub(j, "warp").dirs = { warp_constant: "BORDER_CONSTANT, borderValue=(255, 255, 255)" }),
      ),
    });
    expect(rows.find((r) => r.tensor === "warp_constant")?.pass).toBe(false);
    expect(rows.find((r) => r.tensor === "warp_error")?.pass).toBe(true);
  });
});
