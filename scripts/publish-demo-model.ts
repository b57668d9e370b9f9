/**
 * Publishes the demo recipe's result (`steadyframe train --recipe demo --out DIR`) as
 * models/steadyframe-demo/: the diffusers folder of the recipe's last stage with every weight file
 * stored as float16 (the loaders widen them to float32; this halves the folder to fit the
 * repository's 25 MB budget), configs, tokenizer and scheduler copied as they are.
 *
 *   node --import tsx scripts/publish-demo-model.ts DIR/unet-controlnet [models/steadyframe-demo]
 */
import { cp, readdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type HostTensor, toFloat16, toFloat32 } from "../src/tensor.js";
import { withAtomicDir } from "../src/util/atomic-write.js";
import { readSafetensors, serializeSafetensors } from "../src/weights/safetensors.js";

const [from, to = "models/steadyframe-demo"] = process.argv.slice(2);
if (!from) {
  process.stderr.write(
    "usage: node --import tsx scripts/publish-demo-model.ts <recipe stage folder> [out]\n",
  );
  process.exit(2);
}
const source = resolve(from);
await withAtomicDir(
  resolve(to),
  async (temp) => {
    for (const entry of await readdir(source, { withFileTypes: true })) {
      if (entry.name === "checkpoints" || entry.name === "cache" || entry.name.endsWith(".svg")) continue;
      await cp(join(source, entry.name), join(temp, entry.name), { recursive: true });
      if (!entry.isDirectory()) continue;
      for (const file of await readdir(join(temp, entry.name))) {
        if (!file.endsWith(".safetensors")) continue;
        const path = join(temp, entry.name, file);
        const half = new Map<string, HostTensor>();
        for (const [k, t] of await readSafetensors(path)) {
          half.set(k, t.dtype === "float32" ? toFloat16(toFloat32(t)) : t);
        }
        await rm(path);
        await import("node:fs/promises").then((fs) =>
          fs.writeFile(path, serializeSafetensors(half, { format: "pt" })),
        );
      }
    }
  },
  { canReplace: () => undefined },
);
process.stdout.write(`wrote ${resolve(to)}\n`);
