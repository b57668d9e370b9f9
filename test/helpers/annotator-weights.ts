/**
 * Test helpers for the annotator networks: the key layouts (name -> shape) of the released weight
 * files, written out from the PyTorch modules of ControlNet / Uni-ControlNet `annotator/*` (module
 * attribute paths and Sequential indices), random tensors for them, and a torch.save-style zip
 * (`.pth`) writer that handles hundreds of MB (the byte-by-byte helpers in torch-archive.ts build JS
 * arrays). No real weights: every file is generated at test time.
 */
import { writeFile } from "node:fs/promises";
import { crc32 } from "node:zlib";
import { type HostTensor, tensor } from "../../src/tensor.js";
import { dictPickle, tensorV2 } from "./torch-archive.js";

export type Layout = [key: string, shape: number[]][];

const conv = (name: string, inC: number, outC: number, k: number, bias = true): Layout => [
  [`${name}.weight`, [outC, inC, k, k]],
  ...(bias ? ([[`${name}.bias`, [outC]]] as Layout) : []),
];
const bn = (name: string, c: number): Layout => [
  [`${name}.weight`, [c]],
  [`${name}.bias`, [c]],
  [`${name}.running_mean`, [c]],
  [`${name}.running_var`, [c]],
  [`${name}.num_batches_tracked`, []],
];

/** ControlNetHED_Apache2 (ControlNetHED.pth): 37 tensors. */
export function hedApache2Layout(): Layout {
  const out: Layout = [["norm", [1, 3, 1, 1]]];
  const blocks: [number, number, number][] = [
    [3, 64, 2],
    [64, 128, 2],
    [128, 256, 3],
    [256, 512, 3],
    [512, 512, 3],
  ];
  blocks.forEach(([inC, outC, n], b) => {
    for (let i = 0; i < n; i++) out.push(...conv(`block${b + 1}.convs.${i}`, i === 0 ? inC : outC, outC, 3));
    out.push(...conv(`block${b + 1}.projection`, outC, 1, 1));
  });
  return out;
}

/** HED BSDS500 (network-bsds500.pth as released: `moduleVggOne.0.weight` ...): 38 tensors. */
export function hedBsds500Layout(prefix = "module"): Layout {
  const out: Layout = [];
  const stages: [string, number, number, number][] = [
    ["One", 3, 64, 2],
    ["Two", 64, 128, 2],
    ["Thr", 128, 256, 3],
    ["Fou", 256, 512, 3],
    ["Fiv", 512, 512, 3],
  ];
  for (const [name, inC, outC, n] of stages) {
    const first = name === "One" ? 0 : 1; // MaxPool2d first in stages 2..5
    for (let i = 0; i < n; i++)
      out.push(...conv(`${prefix}Vgg${name}.${first + 2 * i}`, i === 0 ? inC : outC, outC, 3));
  }
  for (const [name, , outC] of stages) out.push(...conv(`${prefix}Score${name}`, outC, 1, 1));
  out.push(...conv(`${prefix}Combine.0`, 5, 1, 1));
  return out;
}

/** MobileV2_MLSD_Large (mlsd_large_512_fp32.pth), BatchNorm buffers included. */
export function mlsdLargeLayout(): Layout {
  const out: Layout = [];
  const f = "backbone.features";
  out.push(...conv(`${f}.0.0`, 4, 32, 3, false), ...bn(`${f}.0.1`, 32));
  const settings: [number, number, number, number][] = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
  ];
  let idx = 1;
  let inp = 32;
  for (const [t, c, n] of settings) {
    for (let i = 0; i < n; i++) {
      const hidden = inp * t;
      const p = `${f}.${idx}.conv`;
      let j = 0;
      if (t !== 1) {
        out.push(...conv(`${p}.${j}.0`, inp, hidden, 1, false), ...bn(`${p}.${j}.1`, hidden));
        j++;
      }
      out.push([`${p}.${j}.0.weight`, [hidden, 1, 3, 3]], ...bn(`${p}.${j}.1`, hidden));
      j++;
      out.push(...conv(`${p}.${j}`, hidden, c, 1, false));
      j++;
      out.push(...bn(`${p}.${j}`, c));
      inp = c;
      idx++;
    }
  }
  const blockA = (name: string, inC1: number, inC2: number): Layout => [
    ...conv(`${name}.conv1.0`, inC2, 64, 1),
    ...bn(`${name}.conv1.1`, 64),
    ...conv(`${name}.conv2.0`, inC1, 64, 1),
    ...bn(`${name}.conv2.1`, 64),
  ];
  const blockB = (name: string): Layout => [
    ...conv(`${name}.conv1.0`, 128, 128, 3),
    ...bn(`${name}.conv1.1`, 128),
    ...conv(`${name}.conv2.0`, 128, 64, 3),
    ...bn(`${name}.conv2.1`, 64),
  ];
  out.push(...blockA("block15", 64, 96), ...blockB("block16"));
  out.push(...blockA("block17", 32, 64), ...blockB("block18"));
  out.push(...blockA("block19", 24, 64), ...blockB("block20"));
  out.push(...blockA("block21", 16, 64), ...blockB("block22"));
  out.push(
    ...conv("block23.conv1.0", 64, 64, 3),
    ...bn("block23.conv1.1", 64),
    ...conv("block23.conv2.0", 64, 64, 3),
    ...bn("block23.conv2.1", 64),
    ...conv("block23.conv3", 64, 16, 1),
  );
  return out;
}

/** Sketch simplification GAN (model_gan.pth): `layerN.i` of the Sequential modules. */
export function sketchLayout(): Layout {
  const out: Layout = [];
  const add = (l: number, i: number, inC: number, outC: number, k: number, transposed = false): void => {
    out.push(
      [`layer${l}.${i}.weight`, transposed ? [inC, outC, k, k] : [outC, inC, k, k]],
      [`layer${l}.${i}.bias`, [outC]],
    );
  };
  add(1, 0, 1, 48, 5);
  add(1, 2, 48, 128, 3);
  add(1, 4, 128, 128, 3);
  add(1, 6, 128, 128, 3);
  add(2, 0, 128, 256, 3);
  add(2, 2, 256, 256, 3);
  add(2, 4, 256, 256, 3);
  add(3, 0, 256, 512, 3);
  add(3, 2, 512, 1024, 3);
  add(3, 4, 1024, 1024, 3);
  add(3, 6, 1024, 1024, 3);
  add(3, 8, 1024, 1024, 3);
  add(4, 0, 1024, 512, 3);
  add(4, 2, 512, 256, 3);
  add(4, 4, 256, 256, 4, true);
  add(4, 6, 256, 256, 3);
  add(5, 0, 256, 128, 3);
  add(5, 2, 128, 128, 4, true);
  add(5, 4, 128, 128, 3);
  add(6, 0, 128, 48, 3);
  add(6, 2, 48, 48, 4, true);
  add(7, 0, 48, 24, 3);
  add(7, 2, 24, 1, 3);
  return out;
}

/** OpenPose bodypose_model (body_pose_model.pth, flat caffe layer names): 184 tensors. */
export function bodyPoseLayout(): Layout {
  const out: Layout = [];
  const trunk: [string, number, number][] = [
    ["conv1_1", 3, 64],
    ["conv1_2", 64, 64],
    ["conv2_1", 64, 128],
    ["conv2_2", 128, 128],
    ["conv3_1", 128, 256],
    ["conv3_2", 256, 256],
    ["conv3_3", 256, 256],
    ["conv3_4", 256, 256],
    ["conv4_1", 256, 512],
    ["conv4_2", 512, 512],
    ["conv4_3_CPM", 512, 256],
    ["conv4_4_CPM", 256, 128],
  ];
  for (const [n, i, o] of trunk) out.push(...conv(n, i, o, 3));
  for (const L of [1, 2]) {
    const last = L === 1 ? 38 : 19;
    out.push(...conv(`conv5_1_CPM_L${L}`, 128, 128, 3), ...conv(`conv5_2_CPM_L${L}`, 128, 128, 3));
    out.push(...conv(`conv5_3_CPM_L${L}`, 128, 128, 3), ...conv(`conv5_4_CPM_L${L}`, 128, 512, 1));
    out.push(...conv(`conv5_5_CPM_L${L}`, 512, last, 1));
  }
  for (let s = 2; s <= 6; s++)
    for (const L of [1, 2]) {
      out.push(...conv(`Mconv1_stage${s}_L${L}`, 185, 128, 7));
      for (let m = 2; m <= 5; m++) out.push(...conv(`Mconv${m}_stage${s}_L${L}`, 128, 128, 7));
      out.push(
        ...conv(`Mconv6_stage${s}_L${L}`, 128, 128, 1),
        ...conv(`Mconv7_stage${s}_L${L}`, 128, L === 1 ? 38 : 19, 1),
      );
    }
  return out;
}

/** mulberry32 stream in [0, 1). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FillOptions {
  readonly seed?: number;
  /** Value for a key, or undefined for the default random fill. */
  readonly value?: (key: string, shape: readonly number[]) => number | undefined;
}

/**
 * Tensors for a layout: conv weights uniform in +-sqrt(6 / fan_in) (He-like, so activations keep
 * their scale through deep stacks), biases +-0.1, BatchNorm weights ~1, running_var in [0.5, 1.5],
 * num_batches_tracked int64 0.
 */
export function fillLayout(layout: Layout, options: FillOptions = {}): Map<string, HostTensor> {
  const next = rng(options.seed ?? 1);
  const out = new Map<string, HostTensor>();
  for (const [key, shape] of layout) {
    if (key.endsWith("num_batches_tracked")) {
      out.set(key, tensor("int64", [], BigInt64Array.of(0n)));
      continue;
    }
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const fixed = options.value?.(key, shape);
    const fanIn = shape.length >= 2 ? shape.slice(1).reduce((a, b) => a * b, 1) : 1;
    const isBn = shape.length === 1 && key.endsWith(".weight");
    for (let i = 0; i < n; i++) {
      const u = next() * 2 - 1;
      data[i] =
        fixed !== undefined
          ? fixed
          : key.endsWith("running_var")
            ? 1 + 0.5 * u
            : key.endsWith("running_mean") || key.endsWith("bias")
              ? 0.1 * u
              : isBn
                ? 1 + 0.1 * u
                : u * Math.sqrt(6 / fanIn);
    }
    out.set(key, tensor("float32", shape, data));
  }
  return out;
}

/** A stored zip entry list -> bytes (torch.save layout: data aligned to 64, no descriptors). */
function zip(entries: readonly { name: string; data: Uint8Array }[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, "utf8");
    const headerEnd = offset + 30 + name.length;
    const pad = (64 - ((headerEnd + 4) % 64)) % 64;
    const extra = Buffer.alloc(4 + pad, 0x5a);
    extra.writeUInt16LE(0x4246, 0);
    extra.writeUInt16LE(pad, 2);
    const crc = crc32(e.data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x800, 6);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(e.data.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    parts.push(local, name, extra, Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength));
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(0x800, 8);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(e.data.length, 20);
    c.writeUInt32LE(e.data.length, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt32LE(offset, 42);
    central.push(c, name);
    offset += 30 + name.length + extra.length + e.data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

/** Writes a plain state dict as torch.save would (`{key: tensor}` pickle + one storage per tensor). */
export async function writeStateDictPth(
  path: string,
  tensors: ReadonlyMap<string, HostTensor>,
): Promise<void> {
  const items: Record<string, number[]> = {};
  const storages: { name: string; data: Uint8Array }[] = [];
  [...tensors.entries()].forEach(([key, t], i) => {
    const storageType = t.dtype === "int64" ? "torch.LongStorage" : "torch.FloatStorage";
    items[key] = tensorV2({ key: String(i), numel: t.data.length, size: [...t.shape], storageType });
    const d = t.data as Float32Array | BigInt64Array;
    storages.push({ name: `archive/data/${i}`, data: new Uint8Array(d.buffer, d.byteOffset, d.byteLength) });
  });
  const pickle = dictPickle(items);
  await writeFile(
    path,
    zip([
      { name: "archive/data.pkl", data: pickle },
      ...storages,
      { name: "archive/version", data: Buffer.from("3\n") },
    ]),
  );
}
