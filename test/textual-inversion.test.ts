/**
 * Textual inversion (issue 10, item 5), tested by construction (no reference fixture exists): the
 * three file formats people download are read, their tokens are added to the tokenizer (a
 * multi-vector file as token, token_1, ...), and the text encoder uses exactly the file's vectors
 * for them: its output on a prompt with the new word equals the plain model's output on the same
 * positions after the rows of three ordinary tokens were replaced by the file's vectors by hand.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../src/cli/main.js";
import { CLIPTextModel } from "../src/models/clip/clip-text-model.js";
import { resolveComponent } from "../src/models/component-source.js";
import { mapStore } from "../src/nn/weight-store.js";
import { withTextualInversions } from "../src/pipeline/textual-inversion.js";
import { type HostTensor, tensor, toFloat32 } from "../src/tensor.js";
import { CLIPTokenizer } from "../src/tokenizer/clip-tokenizer.js";
import {
  TOKEN_EMBEDDING_KEY,
  parseEmbeddingOption,
  readTextualInversion,
} from "../src/weights/embeddings/index.js";
import { readSafetensors, writeSafetensors } from "../src/weights/safetensors.js";
import { captureIO } from "./helpers/cli-io.js";
import { randomTensor } from "./helpers/graph-reference.js";
import { dictPickle, le, op, tensorV2, torchZip } from "./helpers/torch-archive.js";

const TINY = "test/fixtures/golden/tiny-sd";
const HIDDEN = 32;

describe("textual inversion", () => {
  let dir: string;
  let diffusersFile: string;
  let a1111Safetensors: string;
  let a1111Pt: string;
  const single = randomTensor([HIDDEN], 21);
  const triple = randomTensor([3, HIDDEN], 22);
  const double = randomTensor([2, HIDDEN], 23);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sf-ti-"));
    diffusersFile = join(dir, "learned_embeds.safetensors");
    await writeSafetensors(diffusersFile, { "<cat-toy>": single });
    a1111Safetensors = join(dir, "mystyle.safetensors");
    await writeSafetensors(a1111Safetensors, { emb_params: triple });
    // A1111 .pt: {"string_to_token": {"*": 265}, "string_to_param": {"*": tensor[2, 32]}, "name": "ptstyle", "step": 3000}
    a1111Pt = join(dir, "ptstyle.pt");
    const param = [
      op.EMPTY_DICT,
      op.MARK,
      ...op.str("*"),
      ...tensorV2({ key: "0", numel: 2 * HIDDEN, size: [2, HIDDEN] }),
      op.SETITEMS,
    ];
    const tokenDict = [op.EMPTY_DICT, op.MARK, ...op.str("*"), ...op.int(265), op.SETITEMS];
    const pickle = dictPickle({
      string_to_token: tokenDict,
      string_to_param: param,
      name: op.str("ptstyle"),
      step: op.int(3000),
    });
    await writeFile(a1111Pt, torchZip(pickle, { "0": le(double.data) }));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads the three formats with their tokens and vectors, and parses FILE[:TOKEN]", async () => {
    const d = await readTextualInversion({ path: diffusersFile }, HIDDEN);
    expect(d.tokens).toEqual(["<cat-toy>"]);
    expect(Array.from(d.vectors.data)).toEqual(Array.from(single.data));
    const s = await readTextualInversion({ path: a1111Safetensors }, HIDDEN);
    expect(s.tokens).toEqual(["mystyle", "mystyle_1", "mystyle_2"]);
    expect(Array.from(s.vectors.data)).toEqual(Array.from(triple.data));
    const p = await readTextualInversion({ path: a1111Pt, token: "ptword" }, HIDDEN);
    expect(p.tokens).toEqual(["ptword", "ptword_1"]);
    expect(Array.from(p.vectors.data)).toEqual(Array.from(double.data));
    await expect(readTextualInversion({ path: diffusersFile }, 768)).rejects.toThrow(/hidden_size/);
    expect(parseEmbeddingOption("a/b.pt:word")).toEqual({ path: "a/b.pt", token: "word" });
    expect(parseEmbeddingOption("a/b.pt")).toEqual({ path: "a/b.pt" });
    expect(parseEmbeddingOption("C:\\x\\b.pt")).toEqual({ path: "C:\\x\\b.pt" });
  });

  it("the text encoder uses exactly the file's vectors for the new tokens", async () => {
    const tokenizer = await CLIPTokenizer.fromPretrained(join(TINY, "tokenizer"));
    const vocab = tokenizer.size;
    const { textEncoder } = await withTextualInversions(
      [{ path: diffusersFile }, { path: a1111Safetensors }, { path: a1111Pt, token: "ptword" }],
      tokenizer,
      join(TINY, "text_encoder"),
    );
    // the tokenizer: each new word is one added token; a multi-vector word stands for all its tokens
    const ids = tokenizer.encode("a mystyle photo of <cat-toy> ptword");
    const a = tokenizer.encode("a")[1];
    const photo = tokenizer.encode("photo")[1];
    const of = tokenizer.encode("of")[1];
    expect(ids).toEqual([
      tokenizer.bosTokenId,
      a,
      vocab + 1,
      vocab + 2,
      vocab + 3,
      photo,
      of,
      vocab,
      vocab + 4,
      vocab + 5,
      tokenizer.eosTokenId,
    ]);
    // the embedding table the text encoder is built with: the file's vectors at those rows
    const parts = await resolveComponent(textEncoder, "transformers");
    const table = toFloat32(await parts.store.source(TOKEN_EMBEDDING_KEY).load());
    expect(table.shape).toEqual([vocab + 6, HIDDEN]);
    const row = (r: number) => Array.from(table.data.subarray(r * HIDDEN, (r + 1) * HIDDEN));
    expect(row(vocab)).toEqual(Array.from(single.data));
    for (let k = 0; k < 3; k++)
      expect(row(vocab + 1 + k)).toEqual(Array.from(triple.data.subarray(k * HIDDEN, (k + 1) * HIDDEN)));
    for (let k = 0; k < 2; k++)
      expect(row(vocab + 4 + k)).toEqual(Array.from(double.data.subarray(k * HIDDEN, (k + 1) * HIDDEN)));

    // the model: the inverted text encoder on the prompt == the plain one with rows replaced by hand
    const withTi = await CLIPTextModel.load(textEncoder, { intraOpNumThreads: 1 });
    const base = await readSafetensors(join(TINY, "text_encoder", "model.safetensors"));
    const plainTable = toFloat32(base.get(TOKEN_EMBEDDING_KEY) as HostTensor);
    const edited = Float32Array.from(plainTable.data);
    const stand = [400, 401, 402, 403, 404, 405]; // ordinary tokens whose rows take the file's vectors
    const fileRows = [single, triple, double].flatMap((t) =>
      Array.from({ length: t.data.length / HIDDEN }, (_, k) => t.data.subarray(k * HIDDEN, (k + 1) * HIDDEN)),
    );
    stand.forEach((id, k) => edited.set(fileRows[k] ?? new Float32Array(HIDDEN), id * HIDDEN));
    base.set(TOKEN_EMBEDDING_KEY, tensor("float32", plainTable.shape, edited));
    const handConfig = (await resolveComponent(join(TINY, "text_encoder"), "transformers")).config;
    const byHand = await CLIPTextModel.load(
      { config: handConfig, store: mapStore(base) },
      { intraOpNumThreads: 1 },
    );
    try {
      const padded = tokenizer.encodeBatch(["a mystyle photo of <cat-toy> ptword"]);
      const swapped = tensor(
        "int64",
        padded.shape,
        padded.data.map((v) => (v >= BigInt(vocab) ? BigInt(stand[Number(v) - vocab] ?? 0) : v)),
      );
      // the swap maps row vocab -> 400 (<cat-toy>), vocab+1..3 -> 401..403, vocab+4..5 -> 404..405
      const got = (await withTi.encode(padded)).lastHiddenState;
      const want = (await byHand.encode(swapped)).lastHiddenState;
      let maxAbs = 0;
      got.data.forEach((v, i) => (maxAbs = Math.max(maxAbs, Math.abs(v - (want.data[i] ?? NaN)))));
      expect(maxAbs).toBeLessThanOrEqual(1e-6);
      // and the new word matters: without the embedding the same prompt encodes differently
      const plainIds = tokenizer.encodeBatch(["a photo of"]);
      const other = (await withTi.encode(plainIds)).lastHiddenState;
      let diff = 0;
      other.data.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - (got.data[i] ?? 0)))));
      expect(diff).toBeGreaterThan(1e-3);
    } finally {
      await withTi.release();
      await byHand.release();
    }
  });

  it("steadyframe image --embedding FILE:TOKEN uses the word in the prompt", async () => {
    const run = async (out: string, prompt: string, extra: string[]) => {
      const io = captureIO();
      const code = await main(
        [
          "image",
          "--model",
          TINY,
          "--prompt",
          prompt,
          "--steps",
          "2",
          "--scheduler",
          "ddim",
          "--width",
          "32",
          "--height",
          "32",
          "--seed",
          "3",
          "--out",
          out,
          ...extra,
        ],
        io,
      );
      return { code, err: io.err() };
    };
    const withWord = join(dir, "with.png");
    const without = join(dir, "without.png");
    const r1 = await run(withWord, "a photo of zzword", ["--embedding", `${a1111Safetensors}:zzword`]);
    expect(r1.err).not.toMatch(/error/i);
    expect(r1.code).toBe(0);
    const r2 = await run(without, "a photo of", ["--embedding", `${a1111Safetensors}:zzword`]);
    expect(r2.code).toBe(0);
    const [x, y] = await Promise.all([withWord, without].map((p) => sharp(p).raw().toBuffer()));
    let d = 0;
    for (let i = 0; i < (x?.length ?? 0); i++) d += Math.abs((x?.[i] ?? 0) - (y?.[i] ?? 0));
    expect(d / (x?.length ?? 1)).toBeGreaterThan(0.5);
    // video takes the flag too
    const io = captureIO();
    const video = await main(
      [
        "video",
        "--model",
        TINY,
        "--prompt",
        "a zzword car",
        "--frames",
        "2",
        "--steps",
        "2",
        "--size",
        "32x32",
        "--embedding",
        `${a1111Safetensors}:zzword`,
        "--out",
        join(dir, "ti-video"),
      ],
      io,
    );
    expect(io.err()).not.toMatch(/error/i);
    expect(video).toBe(0);
    const missing = await run(join(dir, "m.png"), "a", ["--embedding", join(dir, "nope.pt")]);
    expect(missing.code).not.toBe(0);
    expect(missing.err).toMatch(/--embedding/);
  });
});
