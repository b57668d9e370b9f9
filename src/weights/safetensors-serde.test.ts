import { describe, expect, it } from "vitest";
import { CorruptFileError } from "../errors.js";
import { parseSafetensors } from "./safetensors.js";

/** A file with a raw header text and `data` bytes. */
function file(header: string, data: number[] = []): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const FOUR = [1, 2, 3, 4];

describe("safetensors header numbers and strings as the reference (serde_json) reads them", () => {
  it("loads plain integer shapes and offsets", () => {
    const got = parseSafetensors(file('{"a":{"dtype":"U8","shape":[2,2],"data_offsets":[0,4]}}', FOUR));
    expect(Array.from(got.tensors.get("a")?.data as Uint8Array)).toEqual(FOUR);
  });

  it.each([
    ['{"a":{"dtype":"U8","shape":[2.0,2],"data_offsets":[0,4]}}', "fractional shape"],
    ['{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4.0]}}', "fractional offset"],
    ['{"a":{"dtype":"U8","shape":[4e0],"data_offsets":[0,4]}}', "exponent shape"],
    ['{"a":{"dtype":"U8","shape":[4],"data_offsets":[-0,4]}}', "-0 offset (serde_json: a float)"],
    ['{"__metadata__":{"k":1.5},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}', "float metadata"],
    ['{"a\\ud800":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}', "lone high surrogate"],
    ['{"a\\udc00":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}', "lone low surrogate"],
    ['\ufeff{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}', "byte-order mark"],
  ])("refuses %s (%s)", (header) => {
    expect(() => parseSafetensors(file(header, FOUR))).toThrow(CorruptFileError);
  });

  it("keeps a surrogate pair escape and numbers inside strings", () => {
    const got = parseSafetensors(
      file(
        '{"__metadata__":{"v":"1.5e3 -0"},"a\\ud83d\\ude00":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}',
        FOUR,
      ),
    );
    expect([...got.tensors.keys()]).toEqual(["a\u{1f600}"]);
    expect(got.metadata).toEqual({ v: "1.5e3 -0" });
  });

  it("ignores unknown entry fields, even non-integer ones (serde ignores unknown fields)", () => {
    const got = parseSafetensors(
      file('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4],"scale":0.5}}', FOUR),
    );
    expect(got.tensors.get("a")?.shape).toEqual([4]);
  });

  it("reads __metadata__: null as no metadata and keeps a __proto__ metadata key as data", () => {
    expect(parseSafetensors(file('{"__metadata__":null}')).metadata).toEqual({});
    const got = parseSafetensors(file('{"__metadata__":{"__proto__":"x","a":"b"}}'));
    expect(Object.keys(got.metadata).sort()).toEqual(["__proto__", "a"]);
    expect(got.metadata["__proto__"]).toBe("x");
  });
});
