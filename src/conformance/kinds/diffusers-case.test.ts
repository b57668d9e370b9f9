import { describe, expect, it } from "vitest";
import { expectError } from "../../../test/helpers/run-graph.js";
import { ConfigError, InvalidArgumentError, UnsupportedError } from "../../errors.js";
import { type HostTensor, tensor, toFloat32 } from "../../tensor.js";
import { fixtureScales } from "./controlnet.js";
import { crossFrameBatchSize } from "./cross-frame-attn.js";
import { parseCall, readModelCase, resolveArg, weightsDir } from "./diffusers-case.js";
import { unetCallInputs } from "./unet.js";

const inputs = new Map<string, HostTensor>([
  ["sample", tensor("float32", [2], Float32Array.of(1, -2))],
  ["encoder_hidden_states", tensor("float32", [1], Float32Array.of(3))],
  ["timestep", tensor("int64", [], BigInt64Array.of(7n))],
]);

describe("model fixture call strings", () => {
  it("parses positional and keyword arguments, nested calls and comments", () => {
    expect(parseCall("unet(sample, f(1, 2), encoder_hidden_states=ehs).sample  # unet(x)", ["unet"])).toEqual(
      {
        fn: "unet",
        args: ["sample", "f(1, 2)"],
        kwargs: { encoder_hidden_states: "ehs" },
      },
    );
    expect(parseCall("controlnet(sample)", ["unet"])).toBeNull();
  });

  it("resolves literals, names, aliases, keywords and scaled tensors", () => {
    expect(resolveArg("500", inputs)).toBe(500);
    expect(resolveArg("946.42108", inputs)).toBe(946.42108);
    expect(resolveArg("t", inputs)).toBe(inputs.get("timestep"));
    expect(resolveArg("ehs", inputs)).toBe(inputs.get("encoder_hidden_states"));
    expect(resolveArg("hidden", inputs, "encoder_hidden_states")).toBe(inputs.get("encoder_hidden_states"));
    const scaled = resolveArg("sample * 0.5", inputs);
    expect(typeof scaled === "number" ? scaled : Array.from(toFloat32(scaled).data)).toEqual([0.5, -1]);
    const call = unetCallInputs("unet(2 * sample, t, encoder_hidden_states=ehs)", inputs);
    expect(Array.from(toFloat32(call.sample).data)).toEqual([2, -4]);
  });

  it("names what it cannot resolve or run", async () => {
    await expectError(
      () => resolveArg("latents", inputs),
      InvalidArgumentError,
      "E_INVALID_ARGUMENT",
      'for call argument but received "latents"',
    );
    await expectError(
      () => unetCallInputs("vae(sample)", inputs),
      UnsupportedError,
      "E_UNSUPPORTED",
      'call "vae(sample)"',
    );
    await expectError(
      () => unetCallInputs("unet(sample, 1, ehs, class_labels=y)", inputs),
      UnsupportedError,
      "E_UNSUPPORTED",
      "unet call argument class_labels",
    );
    await expectError(
      () => crossFrameBatchSize("CrossFrameAttnProcessor()"),
      UnsupportedError,
      "E_UNSUPPORTED",
      "cross-frame call without a batch_size",
    );
    await expectError(
      () => fixtureScales("case.json", { scales: ["1"] }, []),
      ConfigError,
      "E_CONFIG",
      'field "scales" should be a list of numbers',
    );
    expect(fixtureScales("case.json", {}, ["scale0p25.mid_block_res_sample", "scale2.x"])).toEqual([0.25, 2]);
    expect(weightsDir({ dir: "/f/unet", caseJson: { weights: "../tiny-sd/unet" } })).toBe("/f/tiny-sd/unet");
    expect(weightsDir({ dir: "/f/cn", caseJson: { weights: { controlnet: "../c" } } }, "controlnet")).toBe(
      "/f/c",
    );
    await expectError(
      () => weightsDir({ dir: "/f", caseJson: { weights: {} } }, "unet"),
      ConfigError,
      "E_CONFIG",
      'field "weights.unet" should be a relative folder path',
    );
    await expectError(
      () => readModelCase({ dir: "/nonexistent", caseJson: { tolerance: {} } }, "unet"),
      ConfigError,
      "E_CONFIG",
      "tolerance.suggested_max_abs_err",
    );
    await expectError(
      () =>
        readModelCase(
          { dir: "/nonexistent", caseJson: { tolerance: { suggested_max_abs_err: 1e-4 }, calls: [] } },
          "unet",
        ),
      ConfigError,
      "E_CONFIG",
      'field "calls" should be an object of output name -> call',
    );
  });
});
