import { describe, expect, it } from "vitest";
import { UnsupportedError } from "../errors.js";
import { mapStore } from "../nn/weight-store.js";
import { type HostTensor, tensor } from "../tensor.js";
import type { LdmLayout } from "./key-maps/ldm.js";
import { flatEmaKey, splitSingleFile } from "./single-file.js";

const layout: LdmLayout = { layersPerBlock: 2, upBlockHasAttention: [false, true], vaeLevels: 2 };
const one = (v: number): HostTensor => tensor("float32", [1], Float32Array.of(v));

/** conv_in + 120 dummy EMA keys (diffusers needs more than 100 to treat a file as EMA). */
function store(withEma: boolean): ReturnType<typeof mapStore> {
  const entries: [string, HostTensor][] = [
    ["model.diffusion_model.input_blocks.0.0.weight", one(1)],
    ["model.diffusion_model.input_blocks.0.0.bias", one(2)],
  ];
  if (withEma) {
    entries.push(["model_ema.diffusion_modelinput_blocks00weight", one(10)]);
    entries.push(["model_ema.diffusion_modelinput_blocks00bias", one(20)]);
    for (let i = 0; i < 120; i++) entries.push([`model_ema.extra${i}`, one(0)]);
  }
  return mapStore(new Map(entries), "test.safetensors");
}

async function convIn(split: ReturnType<typeof splitSingleFile>): Promise<number[]> {
  const unet = split.components.get("unet");
  const w = await unet?.source("conv_in.weight").load();
  const b = await unet?.source("conv_in.bias").load();
  return [...(w?.data as Float32Array), ...(b?.data as Float32Array)];
}

describe("single-file extract_ema", () => {
  it("flattens keys as LDM's EMA module does", () => {
    expect(flatEmaKey("model.diffusion_model.input_blocks.0.0.weight")).toBe(
      "model_ema.diffusion_modelinput_blocks00weight",
    );
  });

  it("uses the non-EMA weights by default and the EMA copies with extractEma", async () => {
    expect(await convIn(splitSingleFile(store(true), layout))).toEqual([1, 2]);
    expect(await convIn(splitSingleFile(store(true), layout, { extractEma: true }))).toEqual([10, 20]);
  });

  it("keeps the non-EMA weights when the file has no EMA copies (as diffusers does)", async () => {
    expect(await convIn(splitSingleFile(store(false), layout, { extractEma: true }))).toEqual([1, 2]);
  });

  it("refuses extractEma when an EMA file lacks a weight's EMA copy", () => {
    const s = store(true);
    const entries = new Map([...s.keys()].map((k) => [k, one(0)] as const));
    entries.delete("model_ema.diffusion_modelinput_blocks00bias");
    expect(() => splitSingleFile(mapStore(entries, "x"), layout, { extractEma: true })).toThrow(
      UnsupportedError,
    );
  });
});
