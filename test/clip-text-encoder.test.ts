import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clipTextEncoderKind } from "../src/conformance/kinds/clip-text-encoder.js";
import { CLIPTextModel } from "../src/models/clip/clip-text-model.js";
import { ConfigError } from "../src/errors.js";
import { type HostTensor, tensor } from "../src/tensor.js";
import { writeSafetensors } from "../src/weights/safetensors.js";
import { GOLDEN, expectOutputsPass, fixtureTensor, openGoldenFixture } from "./helpers/golden-fixture.js";
import { expectClose, expectError } from "./helpers/run-graph.js";

const dir = join(GOLDEN, "clip_text_encoder");
const sdDir = join(GOLDEN, "tiny-sd");

describe("clip_text_encoder golden fixture (transformers 4.36 CLIPTextModel)", () => {
  let caseJson: Record<string, unknown>;
  let inputs: Map<string, HostTensor>;
  let outputs: Map<string, HostTensor>;
  let model: CLIPTextModel;
  const tolerance = 5e-5;
  const ref = (name: string): HostTensor => fixtureTensor(outputs.has(name) ? outputs : inputs, name);

  beforeAll(async () => {
    ({ caseJson, inputs, outputs } = await openGoldenFixture(dir));
    model = await CLIPTextModel.load(join(sdDir, "text_encoder"), { intraOpNumThreads: 1 });
  });
  afterAll(async () => {
    await model.release();
  });

  it("passes the clip_text_encoder conformance kind: one passing row per output tensor", async () => {
    const rows = await clipTextEncoderKind.run({ dir, caseJson });
    expectOutputsPass(rows, outputs, tolerance);
  });

  it("runner: prompt embeddings, pooled output and clip skip 1", async () => {
    const ids = ref("input_ids");
    const plain = await model.encode(ids);
    expectClose(plain.lastHiddenState, ref("last_hidden_state"), { atol: tolerance, rtol: 0 });
    expectClose(plain.promptEmbeds, ref("last_hidden_state"), { atol: tolerance, rtol: 0 });
    expectClose(plain.poolerOutput, ref("pooler_output"), { atol: tolerance, rtol: 0 });
    const skipped = await model.encode(ids, { clipSkip: 1 });
    expectClose(skipped.promptEmbeds, ref("clip_skip_1_prompt_embeds"), { atol: tolerance, rtol: 0 });
    expectClose(skipped.lastHiddenState, ref("last_hidden_state"), { atol: tolerance, rtol: 0 });
  });

  it("the kind tokenizes case.json prompts when the inputs file has no input_ids; unknown outputs fail their row", async () => {
    const tmp = await mkdtemp(join(tmpdir(), "sf-clip-kind-"));
    try {
      await writeSafetensors(join(tmp, "inputs.safetensors"), { unrelated: tensor("float32", [1]) });
      await writeSafetensors(join(tmp, "outputs.safetensors"), {
        pooler_output: ref("pooler_output"),
        clip_skip_1_prompt_embeds: ref("clip_skip_1_prompt_embeds"),
        attentions_0: ref("pooler_output"),
      });
      const weights = join(sdDir, "text_encoder");
      const tokenizer = join(sdDir, "tokenizer");
      const rows = await clipTextEncoderKind.run({
        dir: tmp,
        caseJson: { ...caseJson, weights, tokenizer, outputs_file: { file: "outputs.safetensors" } },
      });
      expect(rows.map((r) => [r.tensor, r.pass])).toEqual([
        ["pooler_output", true],
        ["clip_skip_1_prompt_embeds", true],
        ["attentions_0", false],
      ]);
      expect(rows[2]?.note).toContain('unknown output "attentions_0"');
      await expectError(
        () => clipTextEncoderKind.run({ dir: tmp, caseJson: { ...caseJson, weights, tolerance: {} } }),
        ConfigError,
        "E_CONFIG",
        "tolerance",
      );
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
