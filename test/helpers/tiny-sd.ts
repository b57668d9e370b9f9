/**
 * The tiny Stable Diffusion components of test/fixtures/golden/tiny-sd (diffusers / transformers
 * folders) as the model unit tests open them, and a fresh graph to bind weights into.
 */
import { join } from "node:path";
import { GraphBuilder } from "../../src/graph/builder.js";
import type { GraphBuildOptions } from "../../src/nn/module.js";
import { type WeightStore, safetensorsStore } from "../../src/nn/weight-store.js";
import { WeightScope } from "../../src/nn/weights.js";
import { openSafetensors } from "../../src/weights/safetensors.js";
import { GOLDEN } from "./golden-fixture.js";

export type TinySdComponent = "unet" | "controlnet" | "vae" | "text_encoder";

/** The folder of a tiny-sd component. */
export function tinySdDir(component: TinySdComponent): string {
  return join(GOLDEN, "tiny-sd", component);
}

/** A lazy store over a tiny-sd component's weights file. */
export async function tinySdStore(component: TinySdComponent): Promise<WeightStore> {
  const file = component === "text_encoder" ? "model.safetensors" : "diffusion_pytorch_model.safetensors";
  return safetensorsStore(await openSafetensors(join(tinySdDir(component), file)));
}

/** A fresh graph and a root weight scope over `store`. */
export function bindGraph(
  store: WeightStore,
  options: GraphBuildOptions = {},
): { g: GraphBuilder; w: WeightScope } {
  const g = new GraphBuilder();
  return { g, w: WeightScope.bind(g, store, options) };
}
