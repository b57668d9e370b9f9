/**
 * The layer order of docs/architecture.md ("## Layers"), enforced: every import in src/**\/*.ts
 * but tests (static, type-only, re-export or dynamic `import()`, as TypeScript's own pre-processor
 * finds them) must stay in its folder or go to a lower layer. The list is read from the document, so the document
 * and the rule cannot drift apart.
 */
import { readFile, readdir } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "..");
const SRC = join(ROOT, "src");

/** Layer index of each unit (top folder of src/, or a src/*.ts file's name), from architecture.md. */
async function readLayers(): Promise<Map<string, number>> {
  const doc = await readFile(join(ROOT, "docs/architecture.md"), "utf8");
  const section = /^## Layers\n([\s\S]*?)(?=^## )/m.exec(doc)?.[1];
  if (section === undefined) throw new Error('docs/architecture.md has no "## Layers" section');
  const layers = new Map<string, number>();
  for (const m of section.matchAll(/^(\d+)\. (.*)$/gm)) {
    const names = (m[2] ?? "").split(":")[0] ?? "";
    for (const name of names.matchAll(/`([a-z][a-z-]*)`/g)) layers.set(name[1] ?? "", Number(m[1]));
  }
  return layers;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map((e) =>
      e.isDirectory()
        ? sourceFiles(join(dir, e.name))
        : Promise.resolve(e.name.endsWith(".ts") ? [join(dir, e.name)] : []),
    ),
  );
  return nested.flat();
}

/** "models" for src/models/unet/runner.ts, "tensor" for src/tensor.ts; undefined outside src/. */
function unitOf(path: string): string | undefined {
  const rel = relative(SRC, path);
  if (rel.startsWith("..")) return undefined;
  const [first = "", ...rest] = rel.split(sep);
  return rest.length === 0 ? first.replace(/\.[jt]s$/, "") : first;
}

interface Violation {
  readonly file: string;
  readonly imports: string;
  readonly why: string;
}

async function violations(layers: ReadonlyMap<string, number>): Promise<Violation[]> {
  const top = Math.max(...layers.values());
  const found: Violation[] = [];
  // Tests (*.test.ts, beside the code or in test/) exercise a layer with whatever they need.
  for (const file of (await sourceFiles(SRC)).filter((f) => !f.endsWith(".test.ts"))) {
    const from = unitOf(file) ?? "";
    const fromLayer = layers.get(from);
    const rel = relative(ROOT, file);
    if (fromLayer === undefined) {
      found.push({ file: rel, imports: "", why: `"${from}" is in no layer of docs/architecture.md` });
      continue;
    }
    if (fromLayer === top) continue; // cli and the public barrel import anything
    const info = ts.preProcessFile(await readFile(file, "utf8"), true, true);
    for (const ref of info.importedFiles) {
      if (!ref.fileName.startsWith(".")) continue; // packages and node: builtins
      const to = unitOf(resolve(dirname(file), ref.fileName));
      if (to === undefined || to === from) continue; // test helpers, or its own folder
      const toLayer = layers.get(to);
      if (toLayer === undefined) {
        found.push({ file: rel, imports: ref.fileName, why: `"${to}" is in no layer` });
      } else if (toLayer >= fromLayer) {
        const how = toLayer === fromLayer ? "the same layer" : "a higher layer";
        found.push({
          file: rel,
          imports: ref.fileName,
          why: `${from} (layer ${fromLayer}) imports ${to} (layer ${toLayer}), ${how}`,
        });
      }
    }
  }
  return found;
}

describe("layering (docs/architecture.md, ## Layers)", () => {
  it("reads the layer list: graph < nn < weights < models < pipeline < engine, metrics < study, cli on top", async () => {
    const layers = await readLayers();
    const at = (name: string): number => layers.get(name) ?? Number.NaN;
    const order = ["errors", "tensor", "graph", "nn", "weights", "models", "pipeline", "engine", "cli"];
    for (let i = 1; i < order.length; i++) expect(at(order[i] ?? "")).toBeGreaterThan(at(order[i - 1] ?? ""));
    expect(at("study")).toBeGreaterThan(at("metrics"));
    expect(at("cli")).toBe(Math.max(...layers.values()));
    expect(at("index")).toBe(at("cli"));
  });

  it("finds upward imports, type-only and dynamic ones included", () => {
    const text = [
      'import type { A } from "../pipeline/types.js";',
      'export { B } from "./b.js";',
      'const c = await import("../models/unet/runner.js");',
    ].join("\n");
    const names = ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
    expect(names).toEqual(["../pipeline/types.js", "./b.js", "../models/unet/runner.js"]);
  });

  it("has no import in src/ that goes up (or sideways) the layer order", async () => {
    const found = await violations(await readLayers());
    const report = found.map((v) => `${v.file}${v.imports ? ` -> ${v.imports}` : ""}: ${v.why}`);
    expect(report).toEqual([]);
  });
});
