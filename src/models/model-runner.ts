/**
 * The one runner family: every model runner (UNet2DConditionModel, ControlNetModel, UNetMotionModel,
 * CLIPTextModel, AutoencoderKL) extends `ModelRunner`. A runner's `load` resolves config and weights
 * and builds its graphs, so config and weight errors always surface in `load`; each graph is then
 * compiled (written into the model cache and opened as a session, ./compiled-graph.ts) by one policy,
 * chosen with the load option `compile`:
 *
 * - `"load"` (the default, for every runner): `load` compiles every graph before it returns, so write
 *   and session errors surface there too, a pipeline's loading phase does all the slow work, and
 *   `session`, `modelPath` and `reused` can be read right away;
 * - `"first-use"`: each graph is compiled by the first call that needs it (a VAE that only decodes
 *   never writes its encoder).
 *
 * `release()` closes every session; a later call compiles the graph again (the built graph is kept;
 * its weights are lazy sources, read only while writing). The feed helpers the runners share
 * (timestep broadcast, run options, float32 outputs) live here too.
 */
import { GraphError, InvalidArgumentError } from "../errors.js";
import { GraphBuilder } from "../graph/builder.js";
import type { Session } from "../runtime/session.js";
import { type HostTensor, elementAsNumber, shapeToString, tensor } from "../tensor.js";
import { type CompiledGraph, type ModelLoadOptions, compileGraph } from "./compiled-graph.js";

/** When a runner compiles its graphs (the load option `compile`; see the module comment). */
export type CompileTiming = NonNullable<ModelLoadOptions["compile"]>;

export const COMPILE_TIMINGS: readonly CompileTiming[] = ["load", "first-use"];

/** A fresh graph builder for a model runner. */
export function newGraph(name: string): GraphBuilder {
  return new GraphBuilder({ name });
}

/**
 * One graph of a runner: built, then compiled when `load` or the first call asks for it. A failed
 * compile is not remembered (the next call tries again).
 */
export class RunnerGraph {
  private pending: Promise<CompiledGraph> | undefined;
  private done: CompiledGraph | undefined;

  constructor(
    /** Names the cache folder (`<name>-<hash>`) and the graph in errors. */
    readonly name: string,
    private readonly graph: GraphBuilder,
    /** Identity of the weights for the cache; null = written to a temporary folder removed on release. */
    private readonly weightsId: string | null,
    private readonly options: ModelLoadOptions,
  ) {}

  /** The compiled graph, compiling it first when needed. */
  compile(): Promise<CompiledGraph> {
    if (this.pending === undefined) {
      const pending = compileGraph(this.graph, this.name, this.weightsId, this.options);
      this.pending = pending;
      pending.then(
        (compiled) => {
          if (this.pending === pending) this.done = compiled;
        },
        () => {
          if (this.pending === pending) this.pending = undefined;
        },
      );
    }
    return this.pending;
  }

  /**
   * `session` adding the graph's live inputs (GraphBuilder.liveInputs: e.g. unfused LoRA scales) to
   * every run that does not feed them itself; the session as it is when the graph has none.
   */
  withLiveInputs(session: Session): Session {
    const live = this.graph.liveInputs;
    if (live.size === 0) return session;
    const wrapped = Object.create(session) as Session;
    wrapped.run = (feeds, options) => {
      const all: Record<string, HostTensor> = { ...feeds };
      for (const [name, provide] of live) if (!(name in all)) all[name] = provide();
      return session.run(all, options);
    };
    return wrapped;
  }

  /** The compiled graph when it is compiled now, else undefined. */
  get compiled(): CompiledGraph | undefined {
    return this.done;
  }

  /** Closes the session (and deletes an uncached model folder); `compile` opens it again. */
  async release(): Promise<void> {
    const pending = this.pending;
    this.pending = undefined;
    this.done = undefined;
    const compiled = await pending?.catch(() => undefined);
    await compiled?.release();
  }
}

/** Base of every model runner: its graphs (the first is the main one), compile policy and release. */
export abstract class ModelRunner {
  private readonly graphs: readonly RunnerGraph[];

  protected constructor(
    /** The model's class name, for errors ("UNet2DConditionModel"). */
    readonly modelName: string,
    graphs: readonly RunnerGraph[],
  ) {
    if (graphs.length === 0) throw new GraphError(modelName, "internal: a runner needs at least one graph");
    this.graphs = graphs;
  }

  /** Applies the `compile` option of `options` to a runner just made by a `load` (see the module comment). */
  static async opened<R extends ModelRunner>(runner: R, options: ModelLoadOptions): Promise<R> {
    const timing = options.compile ?? "load";
    if (!COMPILE_TIMINGS.includes(timing)) {
      throw new InvalidArgumentError("compile", `one of ${COMPILE_TIMINGS.join(", ")}`, timing);
    }
    if (timing === "load") await runner.compile();
    return runner;
  }

  /** Compiles every graph now (what `load` does unless told `compile: "first-use"`). */
  async compile(): Promise<void> {
    try {
      for (const graph of this.graphs) await graph.compile();
    } catch (error) {
      await this.release();
      throw error;
    }
  }

  /** The main graph's session; throws before it is compiled (`compile: "first-use"`, or after release). */
  get session(): Session {
    return this.mainGraph.withLiveInputs(this.compiledMain().session);
  }

  /** The main graph's ONNX file in the model cache. */
  get modelPath(): string {
    return this.compiledMain().modelPath;
  }

  /** True when the main graph's written model came from the cache (nothing was written). */
  get reused(): boolean {
    return this.compiledMain().reused;
  }

  /** Closes every session (a later call opens them again). */
  async release(): Promise<void> {
    for (const graph of this.graphs) await graph.release();
  }

  /** The graph called `name` (one of those given to the constructor). */
  protected graph(name: string): RunnerGraph {
    const graph = this.graphs.find((g) => g.name === name);
    if (graph === undefined) throw new GraphError(this.modelName, `internal: no graph "${name}"`);
    return graph;
  }

  /** The session of graph `name` (default: the main graph), compiling the graph first when needed. */
  protected async openSession(name?: string): Promise<Session> {
    const graph = name === undefined ? this.mainGraph : this.graph(name);
    return graph.withLiveInputs((await graph.compile()).session);
  }

  private get mainGraph(): RunnerGraph {
    return this.graphs[0] as RunnerGraph;
  }

  private compiledMain(): CompiledGraph {
    const compiled = this.mainGraph.compiled;
    if (compiled === undefined) {
      throw new InvalidArgumentError(
        `${this.modelName} session`,
        "a compiled model",
        "none compiled yet (loaded with compile: first-use, or released)",
        { hint: "call compile() first, or load with compile: load" },
      );
    }
    return compiled;
  }
}

/** `{ signal }` for a session run when a signal is given, else `{}` (exactOptionalPropertyTypes). */
export function signalOption(options: { readonly signal?: AbortSignal | undefined }): {
  signal?: AbortSignal;
} {
  return options.signal ? { signal: options.signal } : {};
}

/** The timestep as float32 [batch]: a scalar (or one-element tensor) is broadcast. */
export function timestepFeed(timestep: HostTensor | number, batch: number): HostTensor<"float32"> {
  if (typeof timestep === "number") return tensor("float32", [batch], new Float32Array(batch).fill(timestep));
  const n = timestep.data.length;
  if (timestep.shape.length > 1 || (n !== 1 && n !== batch)) {
    throw new InvalidArgumentError(
      "timestep",
      `a scalar or a [${batch}] tensor (one per batch item)`,
      shapeToString(timestep.shape),
    );
  }
  const out = new Float32Array(batch);
  for (let i = 0; i < batch; i++) out[i] = elementAsNumber(timestep, n === 1 ? 0 : i);
  return tensor("float32", [batch], out);
}

/** The float32 output `name` of a session run; InvalidArgumentError when it is missing or of another dtype. */
export function float32Output(
  outputs: Readonly<Record<string, HostTensor>>,
  name: string,
): HostTensor<"float32"> {
  const t = outputs[name];
  if (t?.dtype !== "float32") throw new InvalidArgumentError(name, "a float32 output", t?.dtype);
  return t as HostTensor<"float32">;
}
