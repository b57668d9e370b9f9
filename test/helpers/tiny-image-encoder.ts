/**
 * A random tiny CLIPVisionModelWithProjection folder for IP-Adapter tests: hidden 48 (the tiny plus
 * adapter's embedding width), projection 40 (the tiny plain adapter's), 32x32 images in 16x16 patches.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type HostTensor, tensor } from "../../src/tensor.js";
import { writeSafetensors } from "../../src/weights/safetensors.js";

export async function writeTinyEncoder(dir: string): Promise<void> {
  const H = 48;
  const I = 96;
  const P = 40;
  const patch = 16;
  const T = (32 / patch) ** 2 + 1;
  let seed = 12345;
  const rand = (shape: number[], scale = 0.2): HostTensor<"float32"> => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      data[i] = (seed / 2 ** 31 - 0.5) * 2 * scale;
    }
    return tensor("float32", shape, data);
  };
  const t = new Map<string, HostTensor>();
  const v = "vision_model";
  t.set(`${v}.embeddings.class_embedding`, rand([H]));
  t.set(`${v}.embeddings.patch_embedding.weight`, rand([H, 3, patch, patch], 0.05));
  t.set(`${v}.embeddings.position_embedding.weight`, rand([T, H]));
  for (const ln of ["pre_layrnorm", "post_layernorm"]) {
    t.set(`${v}.${ln}.weight`, rand([H]));
    t.set(`${v}.${ln}.bias`, rand([H]));
  }
  for (let l = 0; l < 2; l++) {
    const p = `${v}.encoder.layers.${l}`;
    for (const proj of ["q_proj", "k_proj", "v_proj", "out_proj"]) {
      t.set(`${p}.self_attn.${proj}.weight`, rand([H, H]));
      t.set(`${p}.self_attn.${proj}.bias`, rand([H]));
    }
    for (const ln of ["layer_norm1", "layer_norm2"]) {
      t.set(`${p}.${ln}.weight`, rand([H]));
      t.set(`${p}.${ln}.bias`, rand([H]));
    }
    t.set(`${p}.mlp.fc1.weight`, rand([I, H]));
    t.set(`${p}.mlp.fc1.bias`, rand([I]));
    t.set(`${p}.mlp.fc2.weight`, rand([H, I]));
    t.set(`${p}.mlp.fc2.bias`, rand([H]));
  }
  t.set("visual_projection.weight", rand([P, H]));
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, "model.safetensors"), t);
  const config = {
    architectures: ["CLIPVisionModelWithProjection"],
    hidden_act: "gelu",
    hidden_size: H,
    intermediate_size: I,
    num_attention_heads: 2,
    num_hidden_layers: 2,
    image_size: 32,
    patch_size: patch,
    projection_dim: P,
  };
  await writeFile(join(dir, "config.json"), JSON.stringify(config));
}
