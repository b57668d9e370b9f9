import { describe, expect, it } from "vitest";
import { parsePythonJson } from "./python-json.js";

describe("parsePythonJson", () => {
  it("reads NaN, Infinity and -Infinity outside strings", () => {
    expect(
      parsePythonJson('{"a": -Infinity, "b": Infinity, "c": NaN, "d": "-Infinity", "e": [1, -2.5]}'),
    ).toEqual({ a: -Infinity, b: Infinity, c: NaN, d: "-Infinity", e: [1, -2.5] });
  });

  it("keeps escaped quotes inside strings", () => {
    expect(parsePythonJson('{"a": "say \\"NaN\\""}')).toEqual({ a: 'say "NaN"' });
  });

  it("throws JSON.parse's SyntaxError for other malformed text", () => {
    expect(() => parsePythonJson('{"a": }')).toThrow(SyntaxError);
  });
});

describe("parsePythonJson on what json.dump writes", () => {
  it("reads tokens next to punctuation and negative numbers, and rejects look-alikes", () => {
    expect(parsePythonJson('[-Infinity,-1,NaN,{"k":Infinity}]')).toEqual([
      -Infinity,
      -1,
      NaN,
      { k: Infinity },
    ]);
    expect(() => parsePythonJson("[-Inf]")).toThrow(SyntaxError);
    expect(() => parsePythonJson("[NaNa]")).toThrow(SyntaxError);
  });
});
