/**
 * Conformance kind `single_file`: original single-file checkpoints (LDM `model.safetensors` /
 * `model.ckpt`, lllyasviel `controlnet.pth`) must reproduce the fixtures of their equivalent
 * diffusers folder. Every checkpoint case.json `files` lists that exists is opened and split into
 * diffusers-keyed components (./single-file-sources.ts); then every fixture folder of
 * `must_reproduce` (relative paths: "../unet") is run by its own kind with those weights in place of
 * the folder's, once per combination of files providing the components it needs (a ControlNet
 * fixture takes the ControlNet and the UNet). Tolerance: the fixture's own, else must_reproduce's
 * `suggested_max_abs_err`. Rows: one per reproduced output, labelled
 * "single_file:<files> -> <fixture>", plus a failing row per file/component whose keys the key map
 * leaves unmapped.
 */
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseJson } from "../../config/parse.js";
import { ConfigError } from "../../errors.js";
import type { ComponentParts } from "../../models/component-source.js";
import type { LdmComponent } from "../../weights/key-maps/ldm.js";
import { failedRow } from "../compare.js";
import type { ConformanceRow, FixtureContext, FixtureKind } from "../types.js";
import { runClipTextEncoderFixture } from "./clip-text-encoder.js";
import { runControlNetFixture } from "./controlnet.js";
import { runCrossFrameAttnFixture } from "./cross-frame-attn.js";
import { type ModelFixtureOptions, caseFile, errorNote, isRecord } from "./model-fixture.js";
import {
  type FileComponent,
  type SingleFileOptions,
  type SingleFileSources,
  openSingleFileSources,
} from "./single-file-sources.js";
import { runUNetFixture } from "./unet.js";
import { runVaeFixture } from "./vae.js";

type FixtureRunner = (ctx: FixtureContext, options: ModelFixtureOptions) => Promise<ConformanceRow[]>;

/** The fixture kinds a single file can reproduce, with the components each runs (main one first). */
export const REPRODUCIBLE_KINDS: Readonly<
  Record<string, { readonly needs: readonly LdmComponent[]; readonly run: FixtureRunner }>
> = {
  unet: { needs: ["unet"], run: runUNetFixture },
  cross_frame_attn: { needs: ["unet"], run: runCrossFrameAttnFixture },
  vae: { needs: ["vae"], run: runVaeFixture },
  clip_text_encoder: { needs: ["text_encoder"], run: runClipTextEncoderFixture },
  controlnet: { needs: ["controlnet", "unet"], run: runControlNetFixture },
};

/** `must_reproduce` as [relative folder, suggested tolerance]: an object keyed by folder, or a list. */
export function mustReproduce(ctx: FixtureContext): [string, number | undefined][] {
  const m = ctx.caseJson.must_reproduce;
  if (Array.isArray(m) && m.every((x): x is string => typeof x === "string"))
    return m.map((x) => [x, undefined]);
  if (!isRecord(m)) {
    throw new ConfigError(
      caseFile(ctx),
      "must_reproduce",
      'an object keyed by fixture folder ("../unet")',
      m,
    );
  }
  return Object.entries(m).map(([dir, entry]) => {
    const t = isRecord(entry) ? entry.suggested_max_abs_err : undefined;
    return [dir, typeof t === "number" && t >= 0 ? t : undefined];
  });
}

/** Every way to pick one file per needed component. */
function combinations(
  needs: readonly LdmComponent[],
  sources: SingleFileSources,
): Map<LdmComponent, FileComponent>[] {
  let combos: Map<LdmComponent, FileComponent>[] = [new Map()];
  for (const component of needs) {
    const options = sources.byComponent.get(component) ?? [];
    combos = combos.flatMap((combo) => options.map((o) => new Map([...combo, [component, o]])));
  }
  return combos;
}

async function readCase(dir: string): Promise<Record<string, unknown>> {
  const parsed = parseJson(await readFile(join(dir, "case.json"), "utf8"), join(dir, "case.json"));
  if (!isRecord(parsed))
    throw new ConfigError(join(dir, "case.json"), "(top level)", "a JSON object", parsed);
  return parsed;
}

/** Re-runs one must_reproduce fixture on every combination of single-file components. */
async function reproduce(
  ctx: FixtureContext,
  rel: string,
  suggested: number | undefined,
  sources: SingleFileSources,
): Promise<ConformanceRow[]> {
  const dir = resolve(ctx.dir, rel);
  let caseJson: Record<string, unknown>;
  try {
    caseJson = await readCase(dir);
  } catch (error) {
    return [failedRow(`single_file -> ${rel}`, "case.json", errorNote(error))];
  }
  const fixture = typeof caseJson.fixture === "string" ? caseJson.fixture : rel;
  const kind = fixture.split("/")[0] ?? "";
  const entry = REPRODUCIBLE_KINDS[kind];
  if (entry === undefined) {
    const known = Object.keys(REPRODUCIBLE_KINDS).join(", ");
    return [
      failedRow(
        `single_file -> ${fixture}`,
        "kind",
        `cannot reproduce a "${kind}" fixture (known: ${known})`,
      ),
    ];
  }
  const missing = entry.needs.filter((c) => (sources.byComponent.get(c) ?? []).length === 0);
  if (missing.length > 0) {
    const note = `no checkpoint in case.json \`files\` gives usable ${missing.join(" and ")} weights`;
    return [failedRow(`single_file -> ${fixture}`, "weights", note)];
  }
  const rows: ConformanceRow[] = [];
  for (const combo of combinations(entry.needs, sources)) {
    const files = [...new Set([...combo.values()].map((c) => c.file))];
    const label = `single_file:${files.join(" + ")} -> ${fixture}`;
    const components: Partial<Record<LdmComponent, ComponentParts>> = {};
    for (const [component, source] of combo) components[component] = source.parts;
    try {
      const sub: FixtureContext = { dir, caseJson, ...(ctx.signal ? { signal: ctx.signal } : {}) };
      const result = await entry.run(sub, {
        components,
        ...(suggested === undefined ? {} : { fallbackTolerance: suggested }),
      });
      rows.push(...result.map((row) => ({ ...row, fixture: label })));
    } catch (error) {
      rows.push(failedRow(label, "*", errorNote(error)));
    }
  }
  return rows;
}

/** Runs a `single_file` fixture folder (see the module comment). */
export async function runSingleFileCase(
  ctx: FixtureContext,
  options: SingleFileOptions = {},
): Promise<ConformanceRow[]> {
  const targets = mustReproduce(ctx);
  const sources = await openSingleFileSources(ctx, options);
  const rows: ConformanceRow[] = [...sources.problems];
  for (const [rel, suggested] of targets) rows.push(...(await reproduce(ctx, rel, suggested, sources)));
  return rows;
}

export const singleFileKind: FixtureKind = {
  kind: "single_file",
  description:
    "LDM single-file checkpoints (.safetensors/.ckpt) and ControlNet .pth re-run the diffusers folder's fixtures",
  run: (ctx) => runSingleFileCase(ctx),
};
