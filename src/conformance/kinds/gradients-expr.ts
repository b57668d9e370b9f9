/**
 * A small evaluator for the Python expressions of gradient fixtures' `call` strings
 * (`y = torch.cat([a, b], dim=1); y1, y2 = torch.split(y, [6, 2], dim=1)`, `x[..., ::2]`,
 * `x.permute(0, 2, 3, 1).reshape(2, 20, 6)`, `a*b + a/(b*b+1) - exp(-0.5a)`): it builds graph ops
 * for the torch functions, methods, operators and slicing these calls use, nothing else.
 * The same parser reads the arguments of module constructors and functional calls
 * (gradients-call-args.ts).
 */
import { UnsupportedError } from "../../errors.js";
import type { GraphBuilder, Value } from "../../graph/builder.js";
import * as op from "../../graph/ops/index.js";
import { gelu, quickGelu, silu } from "../../nn/activations.js";

export type Node =
  | { k: "num"; v: number }
  | { k: "str"; v: string }
  | { k: "name"; v: string }
  | { k: "list"; items: Node[]; tuple: boolean }
  | { k: "bin"; op: string; a: Node; b: Node }
  | { k: "neg"; a: Node }
  | { k: "call"; fn: Node; args: Node[]; kwargs: Record<string, Node> }
  | { k: "attr"; obj: Node; name: string }
  | { k: "index"; obj: Node; items: Node[] }
  | { k: "slice"; start: Node | null; stop: Node | null; step: Node | null }
  | { k: "ellipsis" };

export interface Statement {
  readonly targets: readonly string[];
  readonly expr: Node;
}

const TOKEN = /\s*(\d+(?:\.\d*)?(?:e-?\d+)?|[A-Za-z_][\w]*|\*\*|\.\.\.|'[^']*'|"[^"]*"|[-+*/@()[\],:.=^])/y;

export function tokenize(src: string): string[] {
  const out: string[] = [];
  TOKEN.lastIndex = 0;
  let m: RegExpExecArray | null;
  while (TOKEN.lastIndex < src.length && (m = TOKEN.exec(src))) out.push(m[1] ?? "");
  if (src.slice(TOKEN.lastIndex).trim() !== "")
    throw new UnsupportedError(`expression syntax near "${src.slice(TOKEN.lastIndex)}"`);
  return out;
}

export class Parser {
  private i = 0;
  constructor(private readonly t: string[]) {}
  peek(): string | undefined {
    return this.t[this.i];
  }
  next(): string {
    const v = this.t[this.i++];
    if (v === undefined) throw new UnsupportedError("expression ends early");
    return v;
  }
  eat(s: string): boolean {
    if (this.peek() !== s) return false;
    this.i++;
    return true;
  }
  expect(s: string): void {
    if (!this.eat(s))
      throw new UnsupportedError(`expression: expected "${s}" but found "${this.peek() ?? "end"}"`);
  }
  done(): boolean {
    return this.i >= this.t.length;
  }
  expr(): Node {
    let a = this.term();
    while (this.peek() === "+" || this.peek() === "-") a = { k: "bin", op: this.next(), a, b: this.term() };
    return a;
  }
  term(): Node {
    let a = this.unary();
    while (["*", "/", "@"].includes(this.peek() ?? "")) a = { k: "bin", op: this.next(), a, b: this.unary() };
    return a;
  }
  unary(): Node {
    if (this.eat("-")) return { k: "neg", a: this.unary() };
    const base = this.postfix();
    if (this.eat("**")) return { k: "bin", op: "**", a: base, b: this.unary() };
    return base;
  }
  postfix(): Node {
    let n = this.primary();
    for (;;) {
      if (this.eat(".")) n = { k: "attr", obj: n, name: this.next() };
      else if (this.peek() === "(") n = this.call(n);
      else if (this.eat("[")) {
        const items: Node[] = [];
        while (!this.eat("]")) {
          items.push(this.indexItem());
          this.eat(",");
        }
        n = { k: "index", obj: n, items };
      } else if (this.peek() === "^" && this.t[this.i + 1] === "T") {
        this.i += 2;
        n = { k: "call", fn: { k: "name", v: "__transpose_last" }, args: [n], kwargs: {} };
      } else return n;
    }
  }
  indexItem(): Node {
    if (this.eat("...")) return { k: "ellipsis" };
    const bound = (): Node | null =>
      this.peek() === ":" || this.peek() === "," || this.peek() === "]" ? null : this.expr();
    const start = bound();
    if (!this.eat(":")) return start ?? { k: "name", v: "None" };
    const stop = bound();
    const step = this.eat(":") ? bound() : null;
    return { k: "slice", start, stop, step };
  }
  call(fn: Node): Node {
    this.expect("(");
    const args: Node[] = [];
    const kwargs: Record<string, Node> = {};
    while (!this.eat(")")) {
      const name = this.peek();
      if (name !== undefined && /^[A-Za-z_]/.test(name) && this.t[this.i + 1] === "=") {
        this.i += 2;
        kwargs[name] = this.expr();
      } else args.push(this.expr());
      this.eat(",");
    }
    return { k: "call", fn, args, kwargs };
  }
  primary(): Node {
    const tok = this.next();
    if (/^\d/.test(tok)) {
      const num: Node = { k: "num", v: Number(tok) };
      // "0.5a": implicit multiplication as the fixture writes it
      if (/^[A-Za-z_]/.test(this.peek() ?? "")) return { k: "bin", op: "*", a: num, b: this.postfix() };
      return num;
    }
    if (/^['"]/.test(tok)) return { k: "str", v: tok.slice(1, -1) };
    if (/^[A-Za-z_]/.test(tok)) return { k: "name", v: tok };
    if (tok === "(" || tok === "[") {
      const close = tok === "(" ? ")" : "]";
      const items: Node[] = [];
      let comma = false;
      while (!this.eat(close)) {
        items.push(this.expr());
        if (this.eat(",")) comma = true;
      }
      if (tok === "(" && items.length === 1 && !comma) return items[0] as Node;
      return { k: "list", items, tuple: tok === "(" };
    }
    throw new UnsupportedError(`expression token "${tok}"`);
  }
}

/** Parses `a; b = f(x); y1, y2 = g(y)  # comment`. */
export function parseStatements(source: string): Statement[] {
  const code = source.split("#")[0] ?? "";
  return code
    .split(";")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => {
      const m = /^([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*=(?!=)\s*(.*)$/s.exec(s);
      const p = new Parser(tokenize(m ? (m[2] ?? "") : s));
      const expr = p.expr();
      if (!p.done()) throw new UnsupportedError(`expression "${s}"`);
      return { targets: m ? (m[1] ?? "").split(",").map((t) => t.trim()) : [], expr };
    });
}

type Val =
  Value | number | string | null | Val[] | { slice: [number | null, number | null, number | null] } | "...";

/** `a.b.c` of a name or attribute chain; null for anything else. */
export function qualified(n: Node): string | null {
  return n.k === "name" ? n.v : n.k === "attr" ? `${qualified(n.obj) ?? "?"}.${n.name}` : null;
}

const isValue = (v: Val): v is Value =>
  typeof v === "object" && v !== null && !Array.isArray(v) && "graph" in v;

function asValue(v: Val, what: string): Value {
  if (!isValue(v)) throw new UnsupportedError(`${what}: expected a tensor`);
  return v;
}

function nums(v: Val): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.flatMap(nums);
  throw new UnsupportedError("expected numbers");
}

/** The keyword arguments each function / tensor method reads; any other one is refused. */
const KEYWORDS: Readonly<Record<string, readonly string[]>> = {
  mean: ["dim", "keepdim"],
  sum: ["dim", "keepdim"],
  softmax: ["dim"],
  cat: ["dim"],
  split: ["dim"],
  gelu: ["approximate"],
  interpolate: ["scale_factor", "mode"],
  mse_loss: ["reduction"],
};

function checkKeywords(name: string, kwargs: Record<string, unknown>): void {
  const known = KEYWORDS[name] ?? [];
  const unknown = Object.keys(kwargs).filter((k) => !known.includes(k));
  if (unknown.length > 0)
    throw new UnsupportedError(`${name}(${unknown.map((k) => `${k}=...`).join(", ")})`, {
      hint: known.length > 0 ? `it reads ${known.join(", ")}` : "it takes no keyword arguments here",
    });
}

/**
 * Evaluates the statements; returns the `outputs` variables (a bare last expression is the only
 * output). `input(name)` gives a tensor the fixture provides.
 */
export function evaluate(
  g: GraphBuilder,
  statements: readonly Statement[],
  input: (name: string) => Value,
  outputs: readonly string[],
): Record<string, Value> {
  const vars = new Map<string, Val>();
  const lookup = (name: string): Val => {
    if (vars.has(name)) return vars.get(name) ?? null;
    if (name === "None") return null;
    if (name === "pi") return Math.PI;
    return input(name);
  };
  const arith = (o: string, a: Val, b: Val): Val => {
    if (typeof a === "number" && typeof b === "number") {
      const r = { "+": a + b, "-": a - b, "*": a * b, "/": a / b, "**": a ** b }[o];
      if (r === undefined) throw new UnsupportedError(`operator ${o} on numbers`);
      return r;
    }
    const x = typeof a === "number" ? a : asValue(a, o);
    const y = typeof b === "number" ? b : asValue(b, o);
    switch (o) {
      case "+":
        return op.Add(g, x, y);
      case "-":
        return op.Sub(g, x, y);
      case "*":
        return op.Mul(g, x, y);
      case "/":
        return op.Div(g, x, y);
      case "@":
        return op.MatMul(g, asValue(a, o), asValue(b, o));
      case "**":
        return typeof y === "number" && y === 2 ? op.Mul(g, asValue(a, o), asValue(a, o)) : op.Pow(g, x, y);
      default:
        throw new UnsupportedError(`operator ${o}`);
    }
  };
  const index = (x: Value, items: Val[]): Value => {
    const rank = x.rank;
    const explicit = items.filter((i) => i !== "..." && i !== null).length;
    const expanded: Val[] = [];
    for (const it of items) {
      if (it === "...")
        for (let k = 0; k < rank - explicit; k++) expanded.push({ slice: [null, null, null] });
      else expanded.push(it);
    }
    let out = x;
    const starts: number[] = [];
    const ends: number[] = [];
    const axes: number[] = [];
    const steps: number[] = [];
    const unsqueeze: number[] = [];
    let axis = 0;
    expanded.forEach((it, pos) => {
      if (it === null) {
        unsqueeze.push(pos);
        return;
      }
      if (typeof it === "object" && !Array.isArray(it) && "slice" in it) {
        const [s, e, st] = it.slice;
        if (s !== null || e !== null || (st !== null && st !== 1)) {
          const step = st ?? 1;
          starts.push(s ?? (step > 0 ? 0 : -1));
          ends.push(e ?? (step > 0 ? 2 ** 62 : -(2 ** 62)));
          axes.push(axis);
          steps.push(step);
        }
        axis++;
        return;
      }
      throw new UnsupportedError("integer or tensor indexing");
    });
    if (axes.length > 0) out = op.Slice(g, out, { starts, ends, axes, steps });
    if (unsqueeze.length > 0) out = op.Unsqueeze(g, out, unsqueeze);
    return out;
  };
  const method = (obj: Val, name: string, args: Val[], kwargs: Record<string, Val>): Val => {
    const x = asValue(obj, name);
    checkKeywords(name, kwargs);
    const flat = args.flatMap(nums);
    switch (name) {
      case "float":
        return op.Cast(g, x, "float32");
      case "permute":
        return op.Transpose(g, x, flat);
      case "reshape":
      case "view":
        return op.Reshape(g, x, flat);
      case "mean":
      case "sum": {
        const dim = kwargs.dim ?? args[0];
        const axes = dim === undefined || dim === null ? x.shape.map((_, i) => i) : nums(dim);
        const keep = kwargs.keepdim === "True" || kwargs.keepdim === 1;
        return name === "mean"
          ? op.ReduceMean(g, x, axes, { keepdims: keep })
          : op.ReduceSum(g, x, axes, { keepdims: keep });
      }
      default:
        throw new UnsupportedError(`tensor method .${name}()`);
    }
  };
  const fn = (name: string, args: Val[], kwargs: Record<string, Val>): Val => {
    const a0 = (): Value => asValue(args[0] ?? null, name);
    const dimArg = (fallback: number): number => {
      const d = kwargs.dim ?? args[1];
      return typeof d === "number" ? d : fallback;
    };
    const bare = name.replace(/^(torch|F|np)\./, "");
    checkKeywords(bare, kwargs);
    switch (bare) {
      case "matmul":
        return op.MatMul(g, a0(), asValue(args[1] ?? null, name));
      case "__transpose_last": {
        const x = a0();
        const perm = x.shape.map((_, i) => i);
        [perm[x.rank - 2], perm[x.rank - 1]] = [x.rank - 1, x.rank - 2];
        return op.Transpose(g, x, perm);
      }
      case "softmax":
        return op.Softmax(g, a0(), dimArg(-1));
      case "sigmoid":
        return op.Sigmoid(g, a0());
      case "tanh":
        return op.Tanh(g, a0());
      case "exp":
        return op.Exp(g, a0());
      case "sqrt":
        return op.Sqrt(g, a0());
      case "silu":
        return silu(g, a0());
      case "quick_gelu":
        return quickGelu(g, a0());
      case "gelu": {
        const approximate = kwargs.approximate ?? "none";
        if (approximate !== "none" && approximate !== "tanh")
          throw new UnsupportedError(`gelu approximate=${String(approximate)}`, { hint: "'none' or 'tanh'" });
        return gelu(g, a0(), { approximate });
      }
      case "cat":
        return op.Concat(
          g,
          (args[0] as Val[]).map((v) => asValue(v, name)),
          dimArg(0),
        );
      case "split": {
        const sizes = nums(args[1] ?? null);
        return op.Split(g, a0(), dimArg(0), sizes);
      }
      case "interpolate": {
        const x = a0();
        const f = nums(kwargs.scale_factor ?? 1);
        const spatial = x.rank - 2;
        const factors = f.length === 1 ? Array<number>(spatial).fill(f[0] ?? 1) : f;
        if ((kwargs.mode ?? "nearest") !== "nearest")
          throw new UnsupportedError(`interpolate mode ${String(kwargs.mode)}`);
        return op.Resize(g, x, [1, 1, ...factors]);
      }
      case "mse_loss": {
        const d = op.Sub(g, a0(), asValue(args[1] ?? null, name));
        const sq = op.Mul(g, d, d);
        const axes = sq.shape.map((_, i) => i);
        const reduction = kwargs.reduction ?? "mean";
        if (reduction === "none") return sq;
        if (reduction === "sum") return op.ReduceSum(g, sq, axes, { keepdims: false });
        if (reduction === "mean") return op.ReduceMean(g, sq, axes, { keepdims: false });
        throw new UnsupportedError(`mse_loss reduction=${String(reduction)}`, {
          hint: "'mean', 'sum' or 'none'",
        });
      }
      default:
        throw new UnsupportedError(`function ${name}()`);
    }
  };
  const ev = (n: Node): Val => {
    switch (n.k) {
      case "num":
        return n.v;
      case "str":
        return n.v;
      case "name":
        return n.v === "True" ? 1 : n.v === "False" ? 0 : lookup(n.v);
      case "ellipsis":
        return "...";
      case "list":
        return n.items.map(ev);
      case "neg": {
        const a = ev(n.a);
        return typeof a === "number" ? -a : op.Neg(g, asValue(a, "-"));
      }
      case "bin":
        return arith(n.op, ev(n.a), ev(n.b));
      case "slice": {
        const b = (x: Node | null): number | null => (x === null ? null : (nums(ev(x))[0] ?? null));
        return { slice: [b(n.start), b(n.stop), b(n.step)] };
      }
      case "index":
        return index(asValue(ev(n.obj), "[]"), n.items.map(ev));
      case "attr":
        throw new UnsupportedError(`attribute ${n.name}`);
      case "call": {
        const args = n.args.map(ev);
        const kwargs = Object.fromEntries(Object.entries(n.kwargs).map(([k, v]) => [k, ev(v)]));
        const name = qualified(n.fn);
        if (n.fn.k === "attr" && name !== null && /^(torch|F|nn\.functional)\./.test(name))
          return fn(name, args, kwargs);
        if (n.fn.k === "attr") return method(ev(n.fn.obj), n.fn.name, args, kwargs);
        return fn(name ?? "?", args, kwargs);
      }
    }
  };
  let last: Val = null;
  for (const s of statements) {
    last = ev(s.expr);
    if (s.targets.length === 1) vars.set(s.targets[0] ?? "", last);
    else if (s.targets.length > 1) {
      const parts = Array.isArray(last) ? last : [];
      s.targets.forEach((t, i) => vars.set(t, parts[i] ?? null));
    }
  }
  const result: Record<string, Value> = {};
  for (const name of outputs) {
    const v = vars.get(name) ?? (outputs.length === 1 ? last : null);
    result[name] = asValue(v ?? null, `output ${name}`);
  }
  return result;
}
