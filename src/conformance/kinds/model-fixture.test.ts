import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { expectError } from "../../../test/helpers/run-graph.js";
import { ConfigError, InvalidArgumentError, UnsupportedError } from "../../errors.js";
import { mapStore } from "../../nn/weight-store.js";
import { type HostTensor, tensor, toFloat32 } from "../../tensor.js";
import { writeSafetensors } from "../../weights/safetensors.js";
import { fixtureScales } from "./controlnet.js";
import { crossFrameBatchSize } from "./cross-frame-attn.js";
import { parseCall, resolveArg } from "./call-string.js";
import {
  type ModelCase,
  callNumber,
  callRows,
  callSeed,
  fixtureComponent,
  fixtureTimestep,
  readCalls,
  readModelCase,
  readTolerance,
  wantsIntermediates,
  weightsPath,
} from "./model-fixture.js";
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
      () => unetCallInputs("unet(sample, 1, ehs, added_cond_kwargs=y)", inputs),
      UnsupportedError,
      "E_UNSUPPORTED",
      "unet call argument added_cond_kwargs",
    );
    await expectError(
      () => crossFrameBatchSize("CrossFrameAttnProcessor(video_length=2)"),
      UnsupportedError,
      "E_UNSUPPORTED",
      "cross-frame call with arguments other than batch_size",
    );
    await expectError(
      () => fixtureScales("case.json", { scales: ["1"] }, []),
      ConfigError,
      "E_CONFIG",
      'field "scales" should be a list of numbers',
    );
    expect(fixtureScales("case.json", {}, ["scale0p25.mid_block_res_sample", "scale2.x"])).toEqual([0.25, 2]);
    expect(weightsPath({ dir: "/f/unet", caseJson: { weights: "../tiny-sd/unet" } }, "unet")).toBe(
      "/f/tiny-sd/unet",
    );
    expect(weightsPath({ dir: "/f/cn", caseJson: { weights: { controlnet: "../c" } } }, "controlnet")).toBe(
      "/f/c",
    );
    await expectError(
      () => weightsPath({ dir: "/f", caseJson: { weights: {} } }, "unet"),
      ConfigError,
      "E_CONFIG",
      'field "weights.unet" should be a path relative to the fixture',
    );
    // A plain string names the main model only: a second model needs weights.<role>.
    await expectError(
      () => weightsPath({ dir: "/f", caseJson: { weights: "../c" } }, "unet", false),
      ConfigError,
      "E_CONFIG",
      'field "weights" should be a path relative to the fixture',
    );
    expect(readTolerance({ dir: "/f", caseJson: { tolerance: { max_abs_err: 0.5 } } })).toBe(0.5);
    expect(readTolerance({ dir: "/f", caseJson: {} }, 1e-4)).toBe(1e-4);
    await expectError(
      () => readModelCase({ dir: "/nonexistent", caseJson: { tolerance: {} } }, "unet"),
      ConfigError,
      "E_CONFIG",
      "tolerance.suggested_max_abs_err",
    );
    await expectError(
      () =>
        readCalls({
          dir: "/nonexistent",
          caseJson: { tolerance: { suggested_max_abs_err: 1e-4 }, calls: [] },
        }),
      ConfigError,
      "E_CONFIG",
      'field "calls" should be an object of output name -> call',
    );
  });

  it("resolves a model's weights and config: supplied, case.json config of the same class, else an error", async () => {
    const tmp = await mkdtemp(join(tmpdir(), "sf-model-fixture-"));
    try {
      await writeSafetensors(join(tmp, "w.safetensors"), { "a.weight": tensor("float32", [1]) });
      const request = { role: "text_encoder", className: "CLIPTextModel", library: "transformers" } as const;
      const clip = { architectures: ["CLIPTextModel"], hidden_size: 4 };
      const found = await fixtureComponent(
        { dir: tmp, caseJson: { weights: "w.safetensors", config: clip } },
        {},
        request,
      );
      expect(found.config).toBe(clip);
      expect([...found.store.keys()]).toEqual(["a.weight"]);
      expect(found.weightsId).toContain("w.safetensors");
      const store = mapStore({ b: tensor("float32", [1]) });
      const supplied = await fixtureComponent(
        { dir: tmp, caseJson: {} },
        { components: { text_encoder: { config: { hidden_size: 8 }, store } } },
        request,
      );
      expect(supplied.store).toBe(store);
      expect(supplied.weightsId).toBeNull();
      await expectError(
        () =>
          fixtureComponent(
            { dir: tmp, caseJson: { weights: "w.safetensors", config: { _class_name: "AutoencoderKL" } } },
            {},
            request,
          ),
        ConfigError,
        "E_CONFIG",
        'field "config" should be a CLIPTextModel config object',
      );
      await expectError(
        () => readModelCase({ dir: tmp, caseJson: { tolerance: 0, inputs_file: { file: 3 } } }, "vae"),
        ConfigError,
        "E_CONFIG",
        'field "inputs_file.file" should be a file name',
      );
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});

describe("pipeline call settings", () => {
  it("callNumber: a number, a one-element list, the fallback for null; anything else is a ConfigError", () => {
    const call = { a: 0.5, b: [0.25], c: null, d: [1, 2], e: "x" };
    expect(callNumber(call, "case.json", "a")).toBe(0.5);
    expect(callNumber(call, "case.json", "b")).toBe(0.25);
    expect(callNumber(call, "case.json", "c", 1)).toBe(1);
    expect(() => callNumber(call, "case.json", "d")).toThrow(ConfigError);
    expect(() => callNumber(call, "case.json", "e", 1)).toThrow(ConfigError);
  });

  it("callSeed: generator_seed, seed, or torch.Generator().manual_seed(N) outside a comment", () => {
    expect(callSeed({ generator_seed: 7 })).toBe(7);
    expect(callSeed({ generator: "torch.Generator().manual_seed(42)  # CPU" })).toBe(42);
    expect(callSeed({ generator: "None  # not torch.Generator().manual_seed(3)" })).toBeUndefined();
    expect(callSeed({ generator: null })).toBeUndefined();
  });
});

describe("model fixture harness", () => {
  const one = tensor("float32", [1], Float32Array.of(1));
  const mc: ModelCase = {
    file: "/f/case.json",
    fixture: "unet",
    tolerance: 0.1,
    inputs,
    outputs: new Map([
      ["a", one],
      ["b", one],
      ["intermediate.x", one],
    ]),
  };

  it("callRows: rows per call, a failing row for a missing output, a thrown error or an uncompared output", async () => {
    const rows = await callRows(
      mc,
      { a: "ok", b: "throws", c: "no output" },
      async (output, call, expected) => {
        if (call === "throws") throw new UnsupportedError("this call");
        return [
          {
            fixture: mc.fixture,
            tensor: output,
            maxAbsError: 0,
            tolerance: mc.tolerance,
            pass: expected === one,
          },
        ];
      },
    );
    expect(rows.map((r) => [r.tensor, r.pass, r.note])).toEqual([
      ["a", true, undefined],
      ["b", false, "error: not supported: this call"],
      ["c", false, 'no tensor "c" in the outputs file'],
      ["intermediate.x", false, "no call in case.json produced this output"],
    ]);
  });

  it("reads the timestep from the inputs file, else case.json; sees intermediate outputs", () => {
    expect(fixtureTimestep({ dir: "/f", caseJson: { inputs: { timestep: 3 } } }, mc)).toBe(
      inputs.get("timestep"),
    );
    const noTensor = { ...mc, inputs: new Map<string, HostTensor>() };
    expect(fixtureTimestep({ dir: "/f", caseJson: { inputs: { timestep: 3 } } }, noTensor)).toBe(3);
    expect(fixtureTimestep({ dir: "/f", caseJson: { inputs: { timestep: "3" } } }, noTensor)).toBeUndefined();
    expect(wantsIntermediates(mc)).toBe(true);
    expect(wantsIntermediates({ ...mc, outputs: new Map([["a", one]]) })).toBe(false);
  });
});
