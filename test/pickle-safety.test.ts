/**
 * The pickle-safety golden fixtures (test/fixtures/golden/pickle-safety, copied from shared/golden):
 * payload checkpoints must be refused without running anything, corrupt ones refused with the right
 * error, benign ones loaded bit-exactly; plus the tiny ControlNet .pth of tiny-sd-single-file, which
 * must equal the diffusers folder's tensors through key_map.json.
 */
import { existsSync } from "node:fs";
import { cp, mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { pickleSafetyKind } from "../src/conformance/kinds/pickle-safety.js";
import { runFixture } from "../src/conformance/run.js";
import { CorruptFileError, SteadyframeError, UnsafePickleError } from "../src/errors.js";
import { float16BitsToNumber, type HostTensor } from "../src/tensor.js";
import { readTorchCheckpoint, readTorchStateDict, TorchCheckpoint } from "../src/weights/pickle/index.js";
import { readSafetensors } from "../src/weights/safetensors.js";

const golden = join(import.meta.dirname, "fixtures", "golden");
const fixtureDir = join(golden, "pickle-safety");

interface FileSpec {
  expect: string;
  sentinel_file?: string;
  forbidden_globals?: string[];
}
let files: Record<string, FileSpec>;

beforeAll(async () => {
  files = (
    JSON.parse(await readFile(join(fixtureDir, "case.json"), "utf8")) as { files: Record<string, FileSpec> }
  ).files;
  for (const spec of Object.values(files))
    if (spec.sentinel_file && existsSync(spec.sentinel_file)) await unlink(spec.sentinel_file);
});

const bytesOf = (t: HostTensor | undefined): Buffer =>
  t === undefined ? Buffer.alloc(0) : Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

async function refusal(path: string): Promise<unknown> {
  return readTorchCheckpoint(path).then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe("pickle_safety conformance kind on the golden fixtures", () => {
  it("passes every file (refusals typed, loads exact) and no payload ran", async () => {
    const result = await runFixture(fixtureDir, { kinds: [pickleSafetyKind] });
    expect(result?.rows.length).toBe(Object.keys(files).length);
    for (const row of result?.rows ?? [])
      expect(row, `${row.tensor}: ${row.note ?? ""}`).toMatchObject({ pass: true });
    for (const spec of Object.values(files))
      if (spec.sentinel_file) expect(existsSync(spec.sentinel_file)).toBe(false);
  });

  it("fails rows whose expectation the loader does not meet", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sf-pickle-kind-"));
    try {
      for (const name of ["a_posix_system.ckpt", "f_dtypes_strides.ckpt", "expected.safetensors"]) {
        await cp(join(fixtureDir, name), join(dir, name));
      }
      const f = JSON.parse(await readFile(join(fixtureDir, "case.json"), "utf8")) as {
        files: Record<string, Record<string, unknown>>;
      };
      const wrongValue = structuredClone(f.files["f_dtypes_strides.ckpt"] ?? {});
      (wrongValue["non_tensor_values"] as { meta: { epoch: number } }).meta.epoch = 8;
      const caseJson = {
        fixture: "pickle_safety",
        files: {
          "a_posix_system.ckpt": { expect: "load", tensors: {} },
          "f_dtypes_strides.ckpt": wrongValue,
          "missing.ckpt": { expect: "refuse" }, // refused as FileNotFoundError: a typed error, passes
        },
      };
      await writeFile(join(dir, "case.json"), JSON.stringify(caseJson));
      const rows = (await runFixture(dir, { kinds: [pickleSafetyKind] }))?.rows ?? [];
      expect(rows.map((r) => r.pass)).toEqual([false, false, true]);
      expect(rows[0]?.note).toMatch(/refused a valid file: E_UNSAFE_PICKLE/);
      expect(rows[1]?.note).toMatch(/value meta: .*"epoch":7/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("refusals name the reason", () => {
  it.each([
    ["a_posix_system.ckpt", 'GLOBAL imports "posix.system" (= os.system)'],
    ["b_builtins_eval.ckpt", '"builtins.eval"'],
    ["c_subprocess_popen.pth", '"subprocess.Popen"'],
    ["g_stack_global_protocol4.ckpt", 'STACK_GLOBAL imports "posix.system"'],
    ["h_inst_opcode.ckpt", 'INST imports "posix.system"'],
    ["i_builtin_getattr_chain.ckpt", '"__builtin__.getattr" (= builtins.getattr)'],
    ["m_py2_alias_commands_popen.pth", '"commands.Popen" (= subprocess.Popen)'],
  ])("%s -> UnsafePickleError", async (name, fragment) => {
    const error = await refusal(join(fixtureDir, name));
    expect(error).toBeInstanceOf(UnsafePickleError);
    expect((error as UnsafePickleError).code).toBe("E_UNSAFE_PICKLE");
    expect((error as UnsafePickleError).message).toContain(fragment);
    expect((error as UnsafePickleError).message).toContain("nothing in the file was executed");
    const sentinel = files[name]?.sentinel_file;
    if (sentinel !== undefined) expect(existsSync(sentinel)).toBe(false);
  });

  it.each([
    ["d_truncated.ckpt", /no end-of-central-directory record/],
    [
      "j_view_out_of_bounds.ckpt",
      /tensor view \[1000\] .* reaches element 1001 of storage "0", which holds 4 float32/,
    ],
    [
      "k_record_too_short.ckpt",
      /record "archive\/data\/0" holds 16 bytes but storage "0" declares 64 float32 elements/,
    ],
    [
      "l_missing_record.ckpt",
      /storage "1" is used by the pickle but the archive has no record "archive\/data\/1"/,
    ],
  ])("%s -> CorruptFileError", async (name, fragment) => {
    const error = await refusal(join(fixtureDir, name));
    expect(error).toBeInstanceOf(CorruptFileError);
    expect((error as CorruptFileError).code).toBe("E_CORRUPT_FILE");
    expect((error as CorruptFileError).message).toMatch(fragment);
  });
});

describe("benign checkpoints load exactly", () => {
  it("f_dtypes_strides.ckpt: every dtype, view and special value", async () => {
    const tensors = await readTorchCheckpoint(join(fixtureDir, "f_dtypes_strides.ckpt"));
    const expected = await readSafetensors(join(fixtureDir, "expected.safetensors"));
    expect([...tensors.keys()].sort()).toEqual([...expected.keys()].sort());
    const base = tensors.get("tensors/base");
    const transposed = tensors.get("tensors/base_t");
    expect(transposed?.shape).toEqual([5, 3]);
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 3; j++) expect(transposed?.data[i * 3 + j]).toBe(base?.data[j * 5 + i]);
    }
    const special = tensors.get("tensors/f16_special");
    const reference = expected.get("tensors/f16_special");
    expect(special?.dtype).toBe("float16");
    special?.data.forEach((bits, i) => {
      const value = float16BitsToNumber(Number(bits));
      const want = Number(reference?.data[i]);
      expect(Number.isNaN(want) ? Number.isNaN(value) : Object.is(value, want)).toBe(true);
    });
    expect(tensors.get("state_dict/1.num_batches_tracked")?.dtype).toBe("int64");
    expect(tensors.get("tensors/bool")?.dtype).toBe("bool");
  });

  it("e_legacy_format.pth: the pre-1.6 format loads; a truncated copy is refused", async () => {
    const tensors = await readTorchStateDict(join(fixtureDir, "e_legacy_format.pth"));
    expect([...tensors.keys()]).toEqual(["weight", "weight_t", "ids", "half"]);
    const expected = await readSafetensors(join(fixtureDir, "expected_legacy.safetensors"));
    expect([...(tensors.get("ids")?.data ?? [])]).toEqual([...(expected.get("state_dict/ids")?.data ?? [0])]);
    expect([...(tensors.get("weight_t")?.data ?? [])]).toEqual([
      ...(expected.get("state_dict/weight_t")?.data ?? []),
    ]);
    const bytes = await readFile(join(fixtureDir, "e_legacy_format.pth"));
    const error = await TorchCheckpoint.fromBytes(bytes.subarray(0, bytes.length - 4), "cut.pth").catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CorruptFileError);
    expect((error as SteadyframeError).message).toMatch(
      /legacy storage "2" .* runs past the end of the file/,
    );
  });
});

describe("tiny ControlNet .pth (tiny-sd-single-file)", () => {
  let keyMap: Record<string, string>;
  beforeAll(async () => {
    const json = JSON.parse(await readFile(join(golden, "tiny-sd-single-file", "key_map.json"), "utf8")) as {
      controlnet: Record<string, string>;
    };
    keyMap = json.controlnet;
  });

  it("has every key of key_map.json and equals tiny-sd/controlnet bit for bit", async () => {
    const pth = await readTorchStateDict(join(golden, "tiny-sd-single-file", "controlnet.pth"));
    const diffusers = await readSafetensors(
      join(golden, "tiny-sd", "controlnet", "diffusion_pytorch_model.safetensors"),
    );
    expect(pth.size).toBe(170);
    expect([...pth.keys()].sort()).toEqual(Object.keys(keyMap).sort());
    for (const [key, target] of Object.entries(keyMap)) {
      const reference = diffusers.get(target.replace(/^controlnet:/, ""));
      const actual = pth.get(key);
      expect(actual?.dtype, key).toBe("float32");
      expect(actual?.shape, key).toEqual(reference?.shape);
      expect(bytesOf(actual).equals(bytesOf(reference)), key).toBe(true);
    }
  });
});
