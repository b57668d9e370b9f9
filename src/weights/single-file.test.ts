import { describe, expect, it } from "vitest";
import { UnsupportedError } from "../errors.js";
import { mapStore, safetensorsStore } from "../nn/weight-store.js";
import { tensor } from "../tensor.js";
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

  it("refuses unknown file types and OpenCLIP text encoders with the fix", async () => {
    await expect(openCheckpointStore("model.gguf")).rejects.toThrow(UnsupportedError);
    const sd2 = mapStore({ "cond_stage_model.model.token_embedding.weight": tensor("float32", [1]) });
    expect(() => splitSingleFile(sd2, layout)).toThrow("OpenCLIP");
  });
});
