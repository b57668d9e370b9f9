import { describe, expect, it } from "vitest";
import { UnsupportedError } from "../errors.js";
import { mapStore, safetensorsStore } from "../nn/weight-store.js";
import { type HostTensor, tensor } from "../tensor.js";
import { openSafetensors } from "./safetensors.js";
import { openCheckpointStore, splitSingleFile } from "./single-file.js";
import type { LdmLayout } from "./key-maps/ldm.js";

const GOLDEN = "test/fixtures/golden";
const layout: LdmLayout = { layersPerBlock: 2, upBlockHasAttention: [false, true], vaeLevels: 2 };

async function expectSameTensors(
  stores: ReturnType<typeof splitSingleFile>,
  component: "unet" | "vae" | "text_encoder" | "controlnet",
  folderFile: string,
): Promise<void> {
  const store = stores.components.get(component);
  expect(store, component).toBeDefined();
  if (store === undefined) return;
  const reference = safetensorsStore(await openSafetensors(folderFile));
  expect([...store.keys()].sort()).toEqual([...reference.keys()].sort());
  for (const key of reference.keys()) {
    expect(store.info(key)?.shape, key).toEqual(reference.info(key)?.shape);
    const [a, b] = await Promise.all([store.source(key).load(), reference.source(key).load()]);
    expect(a.shape, key).toEqual(b.shape);
    expect(
      Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(
        Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength),
      ),
      key,
    ).toBe(true);
  }
}

describe("single-file checkpoints", () => {
  it("splits the tiny LDM safetensors into the diffusers folder's exact tensors", async () => {
    const stores = splitSingleFile(
      await openCheckpointStore(`${GOLDEN}/tiny-sd-single-file/model.safetensors`),
      layout,
    );
    expect(stores.unmapped).toEqual([]);
    await expectSameTensors(stores, "unet", `${GOLDEN}/tiny-sd/unet/diffusion_pytorch_model.safetensors`);
    await expectSameTensors(stores, "vae", `${GOLDEN}/tiny-sd/vae/diffusion_pytorch_model.safetensors`);
    await expectSameTensors(stores, "text_encoder", `${GOLDEN}/tiny-sd/text_encoder/model.safetensors`);
  });

  it("reads the tiny ControlNet .pth through the safe unpickler", async () => {
    const stores = splitSingleFile(
      await openCheckpointStore(`${GOLDEN}/tiny-sd-single-file/controlnet.pth`),
      layout,
    );
    expect(stores.unmapped).toEqual([]);
    await expectSameTensors(
      stores,
      "controlnet",
      `${GOLDEN}/tiny-sd/controlnet/diffusion_pytorch_model.safetensors`,
    );
  });

  it("refuses unknown file types with the fix", async () => {
    await expect(openCheckpointStore("model.gguf")).rejects.toThrow(UnsupportedError);
  });

  it("maps an SD 2.x OpenCLIP text model onto the diffusers text encoder (in_proj split, penultimate layer)", async () => {
    // Built by construction from the tiny diffusers text encoder, renamed and stacked as open_clip
    // stores it (diffusers 0.26.3 convert_open_clip_checkpoint is the reference for the names).
    const file = `${GOLDEN}/tiny-sd/text_encoder/model.safetensors`;
    const hf = safetensorsStore(await openSafetensors(file));
    const load = async (key: string) => (await hf.source(`text_model.${key}`).load()).data as Float32Array;
    const open: Record<string, HostTensor> = {};
    const put = (key: string, shape: number[], data: Float32Array) => {
      open[`cond_stage_model.model.${key}`] = { dtype: "float32", shape, data };
    };
    const shapeOf = (key: string) => [...(hf.info(`text_model.${key}`)?.shape ?? [])];
    for (const [from, to] of [
      ["embeddings.token_embedding.weight", "token_embedding.weight"],
      ["embeddings.position_embedding.weight", "positional_embedding"],
      ["final_layer_norm.weight", "ln_final.weight"],
      ["final_layer_norm.bias", "ln_final.bias"],
    ] as const) {
      put(to, shapeOf(from), await load(from));
    }
    const layers = 2;
    // resblock 2 is the OpenCLIP last layer SD 2.x skips: a copy of layer 1
    for (const [i, src] of [
      [0, 0],
      [1, 1],
      [2, 1],
    ] as const) {
      const p = `encoder.layers.${src}.`;
      for (const [from, to] of [
        ["layer_norm1", "ln_1"],
        ["layer_norm2", "ln_2"],
        ["mlp.fc1", "mlp.c_fc"],
        ["mlp.fc2", "mlp.c_proj"],
        ["self_attn.out_proj", "attn.out_proj"],
      ] as const) {
        for (const kind of ["weight", "bias"]) {
          put(
            `transformer.resblocks.${i}.${to}.${kind}`,
            shapeOf(`${p}${from}.${kind}`),
            await load(`${p}${from}.${kind}`),
          );
        }
      }
      for (const kind of ["weight", "bias"]) {
        const parts = await Promise.all(["q", "k", "v"].map((n) => load(`${p}self_attn.${n}_proj.${kind}`)));
        const stacked = new Float32Array(parts.reduce((n, a) => n + a.length, 0));
        parts.forEach((a, j) => stacked.set(a, j * a.length));
        const shape = shapeOf(`${p}self_attn.q_proj.${kind}`);
        put(
          `transformer.resblocks.${i}.attn.in_proj_${kind}`,
          [3 * (shape[0] ?? 0), ...shape.slice(1)],
          stacked,
        );
      }
    }
    put("text_projection", [32, 32], new Float32Array(32 * 32));
    put("logit_scale", [], new Float32Array([1]));

    const stores = splitSingleFile(mapStore(open, "sd2.safetensors"), { ...layout, textLayers: layers });
    expect(stores.unmapped).toEqual([]);
    expect(stores.ignored.filter((k) => k.includes("resblocks.2.")).length).toBe(12);
    await expectSameTensors(stores, "text_encoder", file);

    // Without the layer count every resblock is mapped (binding then reports layers.2 as unexpected).
    const all = splitSingleFile(mapStore(open, "sd2.safetensors"), layout);
    expect([...(all.components.get("text_encoder")?.keys() ?? [])]).toContain(
      "text_model.encoder.layers.2.self_attn.v_proj.bias",
    );
    // An unknown OpenCLIP key is reported, never dropped.
    const odd = splitSingleFile(
      mapStore({
        ...open,
        "cond_stage_model.model.transformer.resblocks.0.attn.odd": tensor("float32", [1]),
      }),
      { ...layout, textLayers: layers },
    );
    expect(odd.unmapped).toEqual(["cond_stage_model.model.transformer.resblocks.0.attn.odd"]);
  });
});
