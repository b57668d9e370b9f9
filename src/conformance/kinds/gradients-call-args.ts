/**
 * The arguments of module constructors and functional calls in gradient fixtures' `call` strings
 * (`FeedForward(16, mult=4, activation_fn='geglu')`, `F.conv2d(x, weight, stride=(2, 1))`), read
 * with the expression parser of gradients-expr.ts and bound to their Python signatures
 * ({@link CallArgs}): an argument a signature does not have is refused, never ignored.
 */
import { UnsupportedError } from "../../errors.js";
import { type Node, Parser, qualified, tokenize } from "./gradients-expr.js";

/** A call-string argument: a literal (True/False as booleans, None as null), a name or a call. */
export type PyValue = number | string | boolean | null | readonly PyValue[] | PyName | PyCall;

export interface PyName {
  readonly name: string;
}

export interface PyCall {
  readonly fn: string;
  readonly args: readonly PyValue[];
  readonly kwargs: Readonly<Record<string, PyValue>>;
}

const isName = (v: PyValue | undefined): v is PyName =>
  typeof v === "object" && v !== null && !Array.isArray(v) && "name" in v;
const isCall = (v: PyValue | undefined): v is PyCall =>
  typeof v === "object" && v !== null && !Array.isArray(v) && "fn" in v;

/** Python's spelling of a value, for messages. */
export function pyRepr(v: PyValue | undefined): string {
  if (v === undefined) return "(absent)";
  if (v === null) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "string") return `'${v}'`;
  if (typeof v === "number") return String(v);
  if (Array.isArray(v)) return `(${v.map(pyRepr).join(", ")})`;
  if (isName(v)) return v.name;
  if (isCall(v)) {
    const kw = Object.entries(v.kwargs).map(([k, x]) => `${k}=${pyRepr(x)}`);
    return `${v.fn}(${[...v.args.map(pyRepr), ...kw].join(", ")})`;
  }
  return "?";
}

function pyValue(n: Node): PyValue {
  switch (n.k) {
    case "num":
    case "str":
      return n.v;
    case "name":
      return n.v === "True" ? true : n.v === "False" ? false : n.v === "None" ? null : { name: n.v };
    case "attr":
      return { name: qualified(n) ?? "?" };
    case "list":
      return n.items.map(pyValue);
    case "neg": {
      const a = pyValue(n.a);
      if (typeof a === "number") return -a;
      break;
    }
    case "bin": {
      const a = pyValue(n.a);
      const b = pyValue(n.b);
      if (typeof a === "number" && typeof b === "number") {
        const r = { "+": a + b, "-": a - b, "*": a * b, "/": a / b, "**": a ** b }[n.op];
        if (r !== undefined) return r;
      }
      break;
    }
    case "call":
      return {
        fn: qualified(n.fn) ?? "?",
        args: n.args.map(pyValue),
        kwargs: Object.fromEntries(Object.entries(n.kwargs).map(([k, v]) => [k, pyValue(v)])),
      };
    default:
      break;
  }
  throw new UnsupportedError(`call argument of kind "${n.k}"`);
}

/** A Python literal or name as a call string writes it (`(2, 1)`, `'same'`, `True`, `1e-05`). */
export function parseLiteral(source: string): PyValue {
  const p = new Parser(tokenize(source));
  const n = p.expr();
  if (!p.done()) throw new UnsupportedError(`value "${source}"`);
  return pyValue(n);
}

/** Index of the parenthesis closing the one at `open` (quotes skipped). */
function closingParen(code: string, open: number): number {
  let depth = 0;
  let quote: string | null = null;
  for (let i = open; i < code.length; i++) {
    const ch = code[i];
    if (quote) {
      if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === "(" || ch === "[") depth++;
    else if (ch === ")" || ch === "]") {
      depth--;
      if (depth === 0) return i;
    }
  }
  throw new UnsupportedError(`unbalanced parentheses in "${code.slice(open)}"`);
}

function parseArguments(fn: string, text: string): PyCall {
  const p = new Parser(tokenize(text));
  const n = p.call({ k: "name", v: fn });
  if (!p.done()) throw new UnsupportedError(`arguments "${text}"`);
  return pyValue(n) as PyCall;
}

/**
 * The first call of `fn` (a name, or its last dotted parts: `FeedForward` finds
 * `diffusers.models.attention.FeedForward(...)`) in a call string's code (a `#` comment is not
 * code), and the call applied to its result when one follows (`ResnetBlock2D(...)(x, temb)`).
 */
export function findCall(
  source: string,
  fn: string,
): { readonly call: PyCall; readonly applied: PyCall | null } | undefined {
  const code = source.split("#")[0] ?? "";
  const m = new RegExp(`(?<!\\w)${fn.replace(/[.]/g, "\\.")}\\s*\\(`).exec(code);
  if (!m) return undefined;
  const open = m.index + m[0].length - 1;
  const close = closingParen(code, open);
  const call = parseArguments(fn, code.slice(open, close + 1));
  const next = /^\s*\(/.exec(code.slice(close + 1));
  if (!next) return { call, applied: null };
  const open2 = close + next[0].length;
  return { call, applied: parseArguments(`${fn}(...)`, code.slice(open2, closingParen(code, open2) + 1)) };
}

/**
 * A call's arguments bound to the parameter names of its Python signature (the first `positional`
 * names also by position; default: all). An argument the signature lacks, a second value for one
 * parameter, or a value of the wrong type is an UnsupportedError: no setting is ignored.
 */
export class CallArgs {
  private readonly values = new Map<string, PyValue>();

  constructor(
    readonly what: string,
    call: PyCall,
    readonly signature: readonly string[],
    positional = signature.length,
  ) {
    if (call.args.length > positional)
      throw new UnsupportedError(`${what}: ${call.args.length} positional arguments`, {
        hint: `it takes ${positional === 0 ? "keyword arguments only" : `at most ${positional}: ${signature.slice(0, positional).join(", ")}`}`,
      });
    call.args.forEach((v, i) => this.values.set(signature[i] ?? "", v));
    for (const [k, v] of Object.entries(call.kwargs)) {
      if (!signature.includes(k))
        throw new UnsupportedError(`${what}: argument ${k}=${pyRepr(v)}`, {
          hint: `its arguments are ${signature.join(", ")}`,
        });
      if (this.values.has(k)) throw new UnsupportedError(`${what}: ${k} given twice`);
      this.values.set(k, v);
    }
  }

  /** The argument as given (undefined: absent). */
  value(name: string): PyValue | undefined {
    return this.values.get(name);
  }

  /** Whether the argument is given and not None. */
  has(name: string): boolean {
    const v = this.values.get(name);
    return v !== undefined && v !== null;
  }

  private bad(name: string, expected: string): UnsupportedError {
    return new UnsupportedError(`${this.what}: ${name}=${pyRepr(this.values.get(name))}`, {
      hint: `expected ${expected}`,
    });
  }

  /** A number; `fallback` when absent or None. */
  num(name: string, fallback: number): number {
    const v = this.values.get(name);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number") throw this.bad(name, "a number");
    return v;
  }

  /** A number, or null when absent or None. */
  optNum(name: string): number | null {
    return this.has(name) ? this.num(name, 0) : null;
  }

  bool(name: string, fallback: boolean): boolean {
    const v = this.values.get(name);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") throw this.bad(name, "True or False");
    return v;
  }

  str(name: string, fallback: string): string {
    const v = this.values.get(name);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "string") throw this.bad(name, "a string");
    return v;
  }

  /** A list or tuple of numbers; `fallback` when absent or None. */
  numbers(name: string, fallback: readonly number[]): number[] {
    const v = this.values.get(name);
    if (v === undefined || v === null) return [...fallback];
    if (!Array.isArray(v) || !v.every((x) => typeof x === "number"))
      throw this.bad(name, "a list of numbers");
    return v as number[];
  }

  /** A per-axis setting (torch `_pair`): one number for every axis, or one per axis. */
  perAxis(name: string, fallback: number, axes: number): number[] {
    const v = this.values.get(name);
    if (typeof v === "number" || v === undefined || v === null)
      return Array<number>(axes).fill(this.num(name, fallback));
    const list = this.numbers(name, []);
    if (list.length === 1) return Array<number>(axes).fill(list[0] ?? fallback);
    if (list.length !== axes) throw this.bad(name, `one number or ${axes}`);
    return list;
  }

  /** The name an argument refers to (`x` in `F.conv2d(x, ...)`); undefined when absent or None. */
  name(name: string): string | undefined {
    const v = this.values.get(name);
    if (v === undefined || v === null) return undefined;
    if (!isName(v)) throw this.bad(name, "a tensor name");
    return v.name;
  }

  /** A call argument (`F.pad(x, (0, 1, 0, 1))`); undefined when it is not a call. */
  call(name: string): PyCall | undefined {
    const v = this.values.get(name);
    return isCall(v) ? v : undefined;
  }

  /**
   * Refuses an argument whose value the engine does not build: it must be absent or equal one of
   * `supported` (numbers compare by value, so `0` accepts `0.0`).
   */
  only(name: string, supported: readonly PyValue[], why?: string): void {
    const v = this.values.get(name);
    if (v === undefined || supported.some((s) => pyRepr(s) === pyRepr(v))) return;
    throw new UnsupportedError(`${this.what}: ${name}=${pyRepr(v)}`, {
      hint: why ?? `supported: ${supported.map(pyRepr).join(", ")}`,
    });
  }
}

/** The arguments of the first `fn(...)` of `call` by `fn`'s Python signature (see CallArgs). */
export function argsOf(
  call: string,
  fn: string,
  signature: readonly string[],
  positional?: number,
): CallArgs {
  const found = findCall(call, fn);
  if (!found) throw new UnsupportedError(`call "${call}"`, { hint: `expected a ${fn}(...) call` });
  return new CallArgs(fn, found.call, signature, positional);
}

/**
 * A keyword argument's source text in the code of `call` (not its `#` comment): a tuple, list or
 * quoted string whole (`stride=(2, 1)`), anything else up to the next `,` or `)`. `name` must start
 * a word (`bias` does not match `out_bias=`).
 */
export const kw = (call: string, name: string): string | undefined =>
  new RegExp(`(?<![\\w.])${name}\\s*=\\s*(\\([^)]*\\)|\\[[^\\]]*\\]|'[^']*'|"[^"]*"|[^,)]+)`)
    .exec(call.split("#")[0] ?? "")?.[1]
    ?.trim();

/** A numeric keyword argument (`fallback` when absent or None); anything else is refused. */
export const kwNum = (call: string, name: string, fallback: number): number => {
  const v = kw(call, name);
  if (v === undefined || v === "None") return fallback;
  const n = Number(v);
  if (v === "" || !Number.isFinite(n))
    throw new UnsupportedError(`${name}=${v}`, { hint: "expected a number" });
  return n;
};
