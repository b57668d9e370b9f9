/**
 * Summarises an ORT profile (the JSON array written with `enableProfiling`): for one `model_run`
 * (the last by default), the kernel time per op type and the slowest nodes, so the report says
 * where a step's time goes.
 */
import { readFile } from "node:fs/promises";
import { round } from "./stats.js";

interface ProfileEvent {
  readonly cat: string;
  readonly name: string;
  readonly ts: number;
  readonly dur: number;
  readonly opName: string | undefined;
  /** The execution provider that ran a node ("CPUExecutionProvider", "WebGpuExecutionProvider"). */
  readonly provider: string | undefined;
}

export interface OpTime {
  readonly op: string;
  readonly nodes: number;
  readonly ms: number;
  /** Share of the run's wall time. */
  readonly percent: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly runMs: number;
  /** Sum of kernel times (can differ from runMs: threads, gaps between kernels). */
  readonly kernelMs: number;
  readonly byOpType: readonly OpTime[];
  readonly slowestNodes: readonly { readonly node: string; readonly op: string; readonly ms: number }[];
}

function parseEvents(json: unknown): ProfileEvent[] {
  if (!Array.isArray(json)) return [];
  const events: ProfileEvent[] = [];
  for (const e of json as unknown[]) {
    if (typeof e !== "object" || e === null) continue;
    const r = e as Record<string, unknown>;
    const args =
      typeof r["args"] === "object" && r["args"] !== null ? (r["args"] as Record<string, unknown>) : {};
    const opName = args["op_name"];
    const provider = args["provider"];
    if (
      typeof r["cat"] !== "string" ||
      typeof r["name"] !== "string" ||
      typeof r["ts"] !== "number" ||
      typeof r["dur"] !== "number"
    )
      continue;
    events.push({
      cat: r["cat"],
      name: r["name"],
      ts: r["ts"],
      dur: r["dur"],
      opName: typeof opName === "string" ? opName : undefined,
      provider: typeof provider === "string" ? provider : undefined,
    });
  }
  return events;
}

/** Summary of the last model_run in the profile at `file` (top `top` op types and nodes). */
export async function summariseProfile(file: string, top = 10): Promise<ProfileSummary> {
  const events = parseEvents(JSON.parse(await readFile(file, "utf8")));
  const runs = events.filter((e) => e.cat === "Session" && e.name === "model_run");
  const run = runs[runs.length - 1];
  if (!run) throw new Error(`no model_run event in ${file}`);
  const kernels = events.filter(
    (e) => e.cat === "Node" && e.name.endsWith("_kernel_time") && e.ts >= run.ts && e.ts <= run.ts + run.dur,
  );
  const byOp = new Map<string, { nodes: number; us: number }>();
  for (const k of kernels) {
    const op = k.opName ?? "?";
    const entry = byOp.get(op) ?? { nodes: 0, us: 0 };
    entry.nodes++;
    entry.us += k.dur;
    byOp.set(op, entry);
  }
  const kernelUs = kernels.reduce((s, k) => s + k.dur, 0);
  return {
    file,
    runMs: round(run.dur / 1000),
    kernelMs: round(kernelUs / 1000),
    byOpType: [...byOp.entries()]
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, top)
      .map(([op, v]) => ({
        op,
        nodes: v.nodes,
        ms: round(v.us / 1000),
        percent: round((100 * v.us) / run.dur, 3),
      })),
    slowestNodes: [...kernels]
      .sort((a, b) => b.dur - a.dur)
      .slice(0, top)
      .map((k) => ({
        node: k.name.replace(/_kernel_time$/, ""),
        op: k.opName ?? "?",
        ms: round(k.dur / 1000),
      })),
  };
}

/** Where the nodes of a profiled run ran: kernel events per provider, and the op types that ran elsewhere than `provider`. */
export interface Placement {
  readonly nodesByProvider: Readonly<Record<string, number>>;
  readonly opsOffProvider: Readonly<Record<string, number>>;
}

/** Placement of the kernels in the profile at `file` (every run in it). */
export async function summarisePlacement(file: string, provider: string): Promise<Placement> {
  const events = parseEvents(JSON.parse(await readFile(file, "utf8")));
  const nodesByProvider: Record<string, number> = {};
  const opsOffProvider: Record<string, number> = {};
  for (const e of events) {
    if (e.cat !== "Node" || !e.name.endsWith("_kernel_time")) continue;
    const where = e.provider ?? "?";
    nodesByProvider[where] = (nodesByProvider[where] ?? 0) + 1;
    if (!where.toLowerCase().startsWith(provider.toLowerCase()))
      opsOffProvider[e.opName ?? "?"] = (opsOffProvider[e.opName ?? "?"] ?? 0) + 1;
  }
  return { nodesByProvider, opsOffProvider };
}
