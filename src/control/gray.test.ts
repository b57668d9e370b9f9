import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { image } from "../image.js";
import { toGray } from "./gray.js";

describe("toGray", () => {
  it("uses BT.601 weights on RGB order (cv2 COLOR_RGB2GRAY)", async () => {
    const rgb = image(4, 1, 3, Uint8Array.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]));
    const gray = await toGray(rgb);
    expect(gray.channels).toBe(1);
    // 0.299*255 = 76.2, 0.587*255 = 149.7, 0.114*255 = 29.1, 0.299*10+0.587*20+0.114*30 = 18.15
    expect(Array.from(gray.data)).toEqual([76, 150, 29, 18]);
  });

  it("drops alpha and passes gray through", async () => {
    const rgba = image(1, 1, 4, Uint8Array.from([255, 0, 0, 7]));
    expect(Array.from((await toGray(rgba)).data)).toEqual([76]);
    const gray = image(2, 1, 1, Uint8Array.from([3, 4]));
    expect(await toGray(gray)).toBe(gray);
  });

  it("rejects an image whose data does not fit its size", async () => {
    const bad = { width: 2, height: 2, channels: 3 as const, data: new Uint8Array(5) };
    const error = await toGray(bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).code).toBe("E_INVALID_ARGUMENT");
    expect((error as InvalidArgumentError).message).toContain("Expected 12 bytes for 2x2x3 for image.data");
  });
});
