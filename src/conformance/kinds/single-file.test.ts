import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectError } from "../../../test/helpers/run-graph.js";
import { ConfigError, UnsupportedError } from "../../errors.js";
import { tensor } from "../../tensor.js";
import { writeSafetensors } from "../../weights/safetensors.js";
import { ldmLayoutFor } from "../../models/ldm-layout.js";
import { checkpointFiles, componentConfigPath } from "./single-file-sources.js";
import { mustReproduce, runSingleFileCase } from "./single-file.js";

let root = "";
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "sf-single-file-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("single_file kind: reading case.json", () => {
  it("derives the key map layout from each component's config", async () => {
    const unet = {
      layers_per_block: [2, 2, 2],
      up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    };
    expect(ldmLayoutFor("unet", "unet/config.json", unet)).toEqual({
      layersPerBlock: 2,
      upBlockHasAttention: [false, true, true],
      vaeLevels: 1,
    });
    expect(ldmLayoutFor("vae", "vae/config.json", { block_out_channels: [8, 16, 32] }).vaeLevels).toBe(3);
    expect(ldmLayoutFor("controlnet", "c.json", { layers_per_block: 1 }).layersPerBlock).toBe(1);
    await expectError(
      () => ldmLayoutFor("unet", "unet/config.json", { layers_per_block: [1, 2] }),
      UnsupportedError,
      "E_UNSUPPORTED",
      "layers_per_block [1,2] in unet/config.json",
    );
  });

  it("finds configs, checkpoints and the fixtures to reproduce, and names bad fields", async () => {
    const ctx = (caseJson: Record<string, unknown>) => ({ dir: join(root, "f"), caseJson });
    const components = { vae: { diffusers_folder: "../sd/vae" } };
    expect(componentConfigPath(ctx({ components }), "vae")).toBe(join(root, "sd/vae/config.json"));
    expect(componentConfigPath(ctx({ equivalent_diffusers_folder: "../sd" }), "unet")).toBe(
      join(root, "sd/unet/config.json"),
    );
    await expectError(
      () => componentConfigPath(ctx({}), "unet"),
      ConfigError,
      "E_CONFIG",
      'field "components.unet.diffusers_folder"',
    );
    expect(
      mustReproduce(ctx({ must_reproduce: { "../unet": { suggested_max_abs_err: 1e-4 }, "../vae": {} } })),
    ).toEqual([
      ["../unet", 1e-4],
      ["../vae", undefined],
    ]);
    expect(mustReproduce(ctx({ must_reproduce: ["../unet"] }))).toEqual([["../unet", undefined]]);
    await expectError(
      () => mustReproduce(ctx({ must_reproduce: 3 })),
      ConfigError,
      "E_CONFIG",
      "must_reproduce",
    );
    await expectError(() => checkpointFiles(ctx({ files: 3 })), ConfigError, "E_CONFIG", 'field "files"');
  });

  it("turns every problem into a failing row: unreadable files, configs, fixtures and missing components", async () => {
    const dir = join(root, "case");
    await mkdir(join(dir, "cfg"), { recursive: true });
    await writeFile(join(dir, "cfg", "config.json"), JSON.stringify({ layers_per_block: [1, 2] }));
    await writeSafetensors(join(dir, "m.safetensors"), {
      "model.diffusion_model.time_embed.0.weight": tensor("float32", [1]),
    });
    await writeFile(join(dir, "bad.ckpt"), "not a zip");
    for (const [name, body] of [
      ["a", "[]"],
      ["b", JSON.stringify({ fixture: "rng/case1" })],
      ["c", JSON.stringify({ fixture: "vae" })],
    ] as const) {
      await mkdir(join(root, name), { recursive: true });
      await writeFile(join(root, name, "case.json"), body);
    }
    const rows = await runSingleFileCase({
      dir,
      caseJson: {
        files: { "m.safetensors": {}, "bad.ckpt": {}, "absent.ckpt": {}, "key_map.json": {} },
        components: { unet: { diffusers_folder: "cfg" } },
        must_reproduce: { "../a": {}, "../b": {}, "../c": {} },
      },
    });
    const notes = rows.map((r) => [r.fixture, r.tensor, r.pass, r.note ?? ""] as const);
    expect(notes.every(([, , pass]) => !pass)).toBe(true);
    expect(notes.map(([f, t]) => `${f} ${t}`)).toEqual([
      "single_file:m.safetensors -> unet key map",
      "single_file:bad.ckpt open",
      "single_file -> ../a case.json",
      "single_file -> rng/case1 kind",
      "single_file -> vae weights",
    ]);
    expect(notes[0]?.[3]).toContain("layers_per_block [1,2]");
    expect(notes[1]?.[3]).toMatch(/^error: /);
    expect(notes[2]?.[3]).toContain('field "(top level)" should be a JSON object');
    expect(notes[3]?.[3]).toContain('cannot reproduce a "rng" fixture');
    expect(notes[4]?.[3]).toContain("gives usable vae weights");
    const none = await runSingleFileCase({ dir, caseJson: { files: ["absent.ckpt"], must_reproduce: [] } });
    expect(none.map((r) => [r.tensor, r.pass, r.note])).toEqual([
      ["files", false, "none of the checkpoints case.json `files` lists exists"],
    ]);
    await expectError(
      () => runSingleFileCase({ dir, caseJson: { files: {}, must_reproduce: "../unet" } }),
      ConfigError,
      "E_CONFIG",
      "must_reproduce",
    );
  });
});
