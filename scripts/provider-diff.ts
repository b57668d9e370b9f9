/**
 * Where does an execution provider go wrong on a model? A developer's tool for porting to a new
 * provider (docs/gpu.md; it found the two WebGPU limits in src/runtime/provider-limits.ts).
 *
 *   node --import tsx scripts/provider-diff.ts compare <model.onnx> [--dims JSON] [--provider P]
 *   node --import tsx scripts/provider-diff.ts crash <model.onnx> [--dims JSON] [--provider P]
 *
 * `compare` makes every node's output a graph output, runs the model on the CPU and on P (default
 * webgpu) with the same deterministic inputs, and prints the first outputs, in node order, whose
 * max abs error exceeds 1e-3 of their largest CPU value. `crash` finds the first node at which a
 * run on P dies (a crash kills the process): it runs ever shorter prefixes of the graph in child
 * processes, bisecting. `--dims` gives symbolic input dims ({"batch": 2, "height": 8}; default 1).
 * Float inputs are filled with values in [-1, 1), inputs named *timestep* with 500, *scale* with 1.
 * The edited models are written beside the model (its external data stays where it is).
 */
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import ort from "onnxruntime-node";
import { onnxType } from "../src/graph/proto.js";

interface NodeProto {
  readonly name: string;
  readonly op_type: string;
  readonly input: readonly string[];
  readonly output: readonly string[];
}
interface ModelObject {
  graph: { node: NodeProto[]; output: { name: string }[] };
}

const USAGE = "usage: provider-diff.ts compare|crash <model.onnx> [--dims JSON] [--provider webgpu|cuda]";

function parse(argv: readonly string[]): {
  mode: string;
  model: string;
  dims: Record<string, number>;
  provider: string;
} {
  const [mode, model, ...rest] = argv;
  if ((mode !== "compare" && mode !== "crash" && mode !== "run-prefix") || model === undefined)
    throw new Error(USAGE);
  let dims: Record<string, number> = {};
  let provider = "webgpu";
  for (let i = 0; i < rest.length; i += 2) {
    const value = rest[i + 1];
    if (value === undefined) throw new Error(`${rest[i]} needs a value; ${USAGE}`);
    if (rest[i] === "--dims") dims = JSON.parse(value) as Record<string, number>;
    else if (rest[i] === "--provider") provider = value;
    else throw new Error(`unknown option ${rest[i]}; ${USAGE}`);
  }
  return { mode, model, dims, provider };
}

const Model = onnxType("ModelProto");

function readModel(path: string): ModelObject {
  return Model.toObject(Model.decode(readFileSync(path)), { longs: Number }) as ModelObject;
}

/** Writes the model's first `count` nodes, every output of them a graph output. */
function writePrefix(model: ModelObject, count: number, file: string): void {
  const copy = structuredClone(model);
  copy.graph.node = model.graph.node.slice(0, count);
  copy.graph.output = copy.graph.node.flatMap((n) =>
    n.output.filter((o) => o !== "").map((name) => ({ name })),
  );
  writeFileSync(file, Model.encode(Model.fromObject(copy)).finish());
}

function feeds(session: ort.InferenceSession, dims: Record<string, number>): Record<string, ort.Tensor> {
  let seed = 12345;
  const next = (): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return (seed / 2 ** 32) * 2 - 1;
  };
  const out: Record<string, ort.Tensor> = {};
  for (const m of session.inputMetadata) {
    if (!m.isTensor) continue;
    if (m.type !== "float32") throw new Error(`input ${m.name} is ${m.type}: only float32 inputs are filled`);
    const shape = m.shape.map((d) => (typeof d === "number" ? d : (dims[d] ?? 1)));
    const n = shape.reduce((a, b) => a * b, 1);
    const fill = m.name.includes("timestep") ? () => 500 : m.name.includes("scale") ? () => 1 : next;
    out[m.name] = new ort.Tensor("float32", Float32Array.from({ length: n }, fill), shape);
  }
  return out;
}

async function compare(
  model: ModelObject,
  path: string,
  dims: Record<string, number>,
  provider: string,
): Promise<void> {
  const file = join(dirname(path), "provider-diff.all-outputs.onnx");
  writePrefix(model, model.graph.node.length, file);
  try {
    const cpu = await ort.InferenceSession.create(file, { executionProviders: ["cpu"], logSeverityLevel: 3 });
    const other = await ort.InferenceSession.create(file, {
      executionProviders: [provider],
      logSeverityLevel: 3,
    });
    const inputs = feeds(cpu, dims);
    const [a, b] = [await cpu.run(inputs), await other.run(inputs)];
    let shown = 0;
    for (const node of model.graph.node) {
      for (const name of node.output) {
        const x = a[name]?.data;
        const y = b[name]?.data;
        if (!(x instanceof Float32Array) || !(y instanceof Float32Array)) continue;
        let err = 0;
        let ref = 0;
        for (let i = 0; i < x.length; i++) {
          err = Math.max(err, Math.abs((x[i] ?? 0) - (y[i] ?? 0)));
          ref = Math.max(ref, Math.abs(x[i] ?? 0));
        }
        if (err > 1e-3 * ref && shown++ < 12)
          console.log(
            `${node.op_type} ${node.name} -> ${name} [${a[name]?.dims.join(", ")}]: max abs error ${err.toExponential(2)}, largest |cpu| ${ref.toExponential(2)}`,
          );
      }
    }
    console.log(`${shown} of the outputs differ by more than 1e-3 of their scale (first 12 shown)`);
  } finally {
    rmSync(file, { force: true });
  }
}

function crash(model: ModelObject, path: string, dims: Record<string, number>, provider: string): void {
  const file = join(dirname(path), "provider-diff.prefix.onnx");
  const runs = (count: number): boolean => {
    writePrefix(model, count, file);
    const args = [
      ...process.execArgv,
      process.argv[1] ?? "",
      "run-prefix",
      file,
      "--dims",
      JSON.stringify(dims),
      "--provider",
      provider,
    ];
    const r = spawnSync(process.execPath, args, { encoding: "utf8" });
    const ok = r.status === 0;
    console.log(`first ${count} nodes: ${ok ? "ran" : `failed (${r.signal ?? `exit ${r.status}`})`}`);
    return ok;
  };
  try {
    const total = model.graph.node.length;
    if (runs(total)) {
      console.log("the whole model runs");
      return;
    }
    let good = 0;
    let bad = total;
    while (bad - good > 1) {
      const mid = (good + bad) >> 1;
      if (runs(mid)) good = mid;
      else bad = mid;
    }
    const node = model.graph.node[bad - 1];
    console.log(`the first failing node is #${bad - 1}: ${JSON.stringify(node)}`);
  } finally {
    rmSync(file, { force: true });
  }
}

async function main(): Promise<void> {
  const { mode, model: path, dims, provider } = parse(process.argv.slice(2));
  if (mode === "run-prefix") {
    const session = await ort.InferenceSession.create(path, {
      executionProviders: [provider],
      logSeverityLevel: 3,
    });
    await session.run(feeds(session, dims));
    return;
  }
  const model = readModel(path);
  if (mode === "compare") await compare(model, path, dims, provider);
  else crash(model, path, dims, provider);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
