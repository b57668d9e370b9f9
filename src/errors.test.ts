import { describe, expect, it } from "vitest";
import {
  BackendError,
  CancelledError,
  ConfigError,
  ConformanceError,
  CorruptFileError,
  FileNotFoundError,
  GraphError,
  InvalidArgumentError,
  MissingWeightsError,
  SessionInputError,
  SteadyframeError,
  UnsafePickleError,
  UnsupportedError,
  VideoError,
  throwIfAborted,
} from "./errors.js";

describe("error classes", () => {
  const cases: [SteadyframeError, string, string][] = [
    [
      new InvalidArgumentError("width", "a multiple of 8", 500),
      "E_INVALID_ARGUMENT",
      "Expected a multiple of 8 for width but received 500 of type number",
    ],
    [
      new ConfigError("unet/config.json", "layers_per_block", "an integer", "two"),
      "E_CONFIG",
      'field "layers_per_block" should be an integer but is "two"',
    ],
    [
      new CorruptFileError("a.safetensors", "header too short", 0),
      "E_CORRUPT_FILE",
      "a.safetensors: header too short (at byte 0)",
    ],
    [
      new FileNotFoundError("x/vocab.json", "tokenizer vocabulary"),
      "E_FILE_NOT_FOUND",
      "tokenizer vocabulary not found: x/vocab.json",
    ],
    [
      new MissingWeightsError(
        "unet",
        ["a.weight"],
        ["b.weight"],
        [{ key: "c.weight", expected: [2, 3], actual: [3, 2] }],
      ),
      "E_WEIGHTS_MISMATCH",
      "1 missing: a.weight | 1 unexpected: b.weight | 1 with the wrong shape: c.weight is [3,2], expected [2,3]",
    ],
    [
      new SessionInputError("unet", ["missing input sample"]),
      "E_SESSION_INPUT",
      "unet: bad inputs: missing input sample",
    ],
    [new BackendError([{ provider: "webgpu", error: "no adapter" }]), "E_BACKEND", "webgpu: no adapter"],
    [
      new GraphError("Conv", "input channels 6 must match weight channels 3 x group 1"),
      "E_GRAPH",
      "Conv: input channels 6",
    ],
    [new UnsupportedError("fixture kind foo"), "E_UNSUPPORTED", "not supported: fixture kind foo"],
    [
      new UnsafePickleError("m.ckpt", "global posix.system is not allowed"),
      "E_UNSAFE_PICKLE",
      "nothing in the file was executed",
    ],
    [new VideoError("in.mp4", "no video stream"), "E_VIDEO", "in.mp4: no video stream"],
    [new CancelledError("denoising"), "E_CANCELLED", "denoising was cancelled"],
    [new ConformanceError(2, 10), "E_CONFORMANCE", "2 of 10 conformance checks failed"],
  ];
  it.each(cases)("%s has its code and message", (error, code, fragment) => {
    expect(error).toBeInstanceOf(SteadyframeError);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe(code);
    expect(error.message).toContain(fragment);
    expect(error.name).toBe(error.constructor.name);
  });

  it("MissingWeightsError lists at most 20 keys and counts the rest", () => {
    const keys = Array.from({ length: 25 }, (_, i) => `k${i}`);
    const error = new MissingWeightsError("vae", keys, [], []);
    expect(error.message).toContain("25 missing");
    expect(error.message).toContain("... and 5 more");
    expect(error.message).not.toContain("k24");
  });

  it("keeps the cause", () => {
    const cause = new Error("boom");
    expect(new VideoError("a", "b", { cause }).cause).toBe(cause);
  });

  it("throwIfAborted throws CancelledError only once aborted", () => {
    const controller = new AbortController();
    expect(() => throwIfAborted(controller.signal, "decode")).not.toThrow();
    controller.abort();
    expect(() => throwIfAborted(controller.signal, "decode")).toThrow(CancelledError);
  });
});
