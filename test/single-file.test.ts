/**
 * The `single_file` conformance kind on the tiny-sd-single-file golden fixture (copied from
 * shared/golden): the LDM model.safetensors and the cldm controlnet.pth, split by the key map and
 * given the architecture of ../tiny-sd, must reproduce ../unet, ../vae, ../clip_text_encoder and
 * ../controlnet. Plus: a store with a key removed / an unmappable key fails with rows naming them, and a
 * .ckpt (zip pickle with a `state_dict` wrapper) built here is read and split.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { singleFileKind, runSingleFileCase } from "../src/conformance/kinds/single-file.js";
import { type WeightStore } from "../src/nn/weight-store.js";
import { tensorSource } from "../src/graph/weight-source.js";
import { tensor, toFloat32 } from "../src/tensor.js";
import { openCheckpointStore, splitSingleFile } from "../src/weights/single-file.js";
import { readSafetensors } from "../src/weights/safetensors.js";
import { dictPickle, le, op, tensorV2, torchZip } from "./helpers/torch-archive.js";
import { GOLDEN, readCaseJson } from "./helpers/golden-fixture.js";

const dir = join(GOLDEN, "tiny-sd-single-file");
let caseJson: Record<string, unknown>;

beforeAll(async () => {
  caseJson = await readCaseJson(dir);
});

async function outputNames(fixture: string): Promise<string[]> {
  return [...(await readSafetensors(join(GOLDEN, fixture, "outputs.safetensors"))).keys()].sort();
}

describe("single_file golden fixture (LDM safetensors + cldm .pth vs the diffusers folder)", () => {
  it("reproduces ../unet, ../vae, ../clip_text_encoder and ../controlnet: every row passes", async () => {
    const rows = await singleFileKind.run({ dir, caseJson });
    const byLabel = new Map<string, string[]>();
    for (const row of rows) {
      console.log(`${row.fixture} ${row.tensor}: ${row.maxAbsError.toExponential(2)} (tol ${row.tolerance})`);
      expect(row.pass, `${row.fixture} ${row.tensor} ${row.note ?? ""}`).toBe(true);
      byLabel.set(row.fixture, [...(byLabel.get(row.fixture) ?? []), row.tensor]);
    }
    expect([...byLabel.keys()].sort()).toEqual([
      "single_file:controlnet.pth + model.safetensors -> controlnet",
      "single_file:model.safetensors -> clip_text_encoder",
      "single_file:model.safetensors -> unet",
      "single_file:model.safetensors -> vae",
    ]);
    // One row per output tensor of each reproduced fixture, compared with that fixture's tolerance.
    expect(byLabel.get("single_file:model.safetensors -> unet")?.sort()).toEqual(await outputNames("unet"));
    expect(byLabel.get("single_file:model.safetensors -> vae")?.sort()).toEqual(await outputNames("vae"));
    expect(byLabel.get("single_file:model.safetensors -> clip_text_encoder")?.sort()).toEqual(
      await outputNames("clip_text_encoder"),
    );
    expect(byLabel.get("single_file:controlnet.pth + model.safetensors -> controlnet")?.sort()).toEqual(
      await outputNames("controlnet"),
    );
    const tolerances = new Set(
      rows.filter((r) => r.fixture.endsWith("-> controlnet")).map((r) => r.tolerance),
    );
    expect([...tolerances]).toEqual([1e-4]);
  });

  it("a removed key and an unmappable key give failing rows naming them", async () => {
    const removed = "model.diffusion_model.out.2.bias";
    const stray = "model.diffusion_model.output_blocks.99.7.weight";
    const openStore = async (path: string): Promise<WeightStore> => {
      const store = await openCheckpointStore(path);
      if (!path.endsWith("model.safetensors")) return store;
      const extra = tensor("float32", [1]);
      return {
        name: `${store.name} (altered)`,
        keys: () => [...[...store.keys()].filter((k) => k !== removed), stray],
        info: (key) => (key === stray ? extra : key === removed ? undefined : store.info(key)),
        source: (key) => (key === stray ? tensorSource(extra) : store.source(key)),
      };
    };
    const onlyUNet = { ...caseJson, must_reproduce: { "../unet": { suggested_max_abs_err: 5e-5 } } };
    const rows = await runSingleFileCase({ dir, caseJson: onlyUNet }, { openStore });
    const label = "single_file:model.safetensors -> unet";
    const keyMap = rows.find((r) => r.fixture === label && r.tensor === "key map");
    expect(keyMap?.pass).toBe(false);
    expect(keyMap?.note).toContain(stray);
    const run = rows.filter((r) => r.fixture === label && r.tensor !== "key map");
    expect(run.length).toBeGreaterThan(0);
    expect(run.every((r) => !r.pass)).toBe(true);
    // The UNet binds every weight first and names the diffusers key the store lacks.
    expect(run[0]?.note).toMatch(/1 missing: conv_out\.bias/);
  });
});

describe("single-file .ckpt (zip pickle with a state_dict wrapper, built here)", () => {
  it("openCheckpointStore reads it through the safe unpickler and splitSingleFile maps every component", async () => {
    const tmp = await mkdtemp(join(tmpdir(), "sf-ckpt-"));
    try {
      const f32 = (...xs: number[]): Uint8Array => le(Float32Array.from(xs));
      const stateDict = [
        op.EMPTY_DICT,
        op.MARK,
        ...op.str("model.diffusion_model.input_blocks.1.0.in_layers.0.weight"),
        ...tensorV2({ key: "0", numel: 2, size: [2] }),
        ...op.str("model.diffusion_model.output_blocks.2.1.conv.bias"),
        ...tensorV2({ key: "1", numel: 2, size: [2] }),
        ...op.str("first_stage_model.encoder.mid.attn_1.q.weight"),
        ...tensorV2({ key: "2", numel: 4, size: [2, 2, 1, 1] }),
        ...op.str("first_stage_model.decoder.up.0.upsample.conv.bias"),
        ...tensorV2({ key: "1", numel: 2, size: [2] }),
        ...op.str("cond_stage_model.transformer.text_model.final_layer_norm.weight"),
        ...tensorV2({ key: "0", numel: 2, size: [2] }),
        ...op.str("cond_stage_model.transformer.text_model.embeddings.position_ids"),
        ...tensorV2({ key: "3", numel: 2, size: [1, 2], storageType: "torch.LongStorage" }),
        ...op.str("model_ema.decay"),
        ...tensorV2({ key: "1", numel: 2, offset: 1, size: [] }),
        op.SETITEMS,
      ];
      const bytes = torchZip(
        dictPickle({ state_dict: stateDict, global_step: op.int(7) }),
        { "0": f32(1, 2), "1": f32(3, 4), "2": f32(5, 6, 7, 8), "3": le(BigInt64Array.of(0n, 1n)) },
        { folder: "model" },
      );
      const path = join(tmp, "model.ckpt");
      await writeFile(path, bytes);
      const split = splitSingleFile(await openCheckpointStore(path), {
        layersPerBlock: 2,
        upBlockHasAttention: [false, true],
        vaeLevels: 2,
      });
      expect(split.unmapped).toEqual([]);
      expect([...split.ignored].sort()).toEqual([
        "cond_stage_model.transformer.text_model.embeddings.position_ids",
        "model_ema.decay",
      ]);
      const read = async (component: "unet" | "vae" | "text_encoder", key: string) => {
        const store = split.components.get(component);
        const t = await store?.source(key).load();
        return t === undefined ? undefined : { shape: t.shape, data: [...toFloat32(t).data] };
      };
      expect([...(split.components.get("unet")?.keys() ?? [])].sort()).toEqual([
        "down_blocks.0.resnets.0.norm1.weight",
        "up_blocks.0.upsamplers.0.conv.bias",
      ]);
      expect(await read("unet", "down_blocks.0.resnets.0.norm1.weight")).toEqual({
        shape: [2],
        data: [1, 2],
      });
      expect(await read("unet", "up_blocks.0.upsamplers.0.conv.bias")).toEqual({ shape: [2], data: [3, 4] });
      // VAE mid attention: the [C,C,1,1] conv weight becomes the Linear [C,C]; decoder levels reversed.
      expect(split.components.get("vae")?.info("encoder.mid_block.attentions.0.to_q.weight")?.shape).toEqual([
        2, 2,
      ]);
      expect(await read("vae", "encoder.mid_block.attentions.0.to_q.weight")).toEqual({
        shape: [2, 2],
        data: [5, 6, 7, 8],
      });
      expect(await read("vae", "decoder.up_blocks.1.upsamplers.0.conv.bias")).toEqual({
        shape: [2],
        data: [3, 4],
      });
      expect(await read("text_encoder", "text_model.final_layer_norm.weight")).toEqual({
        shape: [2],
        data: [1, 2],
      });
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
