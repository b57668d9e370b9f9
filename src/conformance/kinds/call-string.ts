/**
 * The Python call strings model fixtures give per output
 * (`unet(0.01 * sample, 500, encoder_hidden_states=ehs).sample  # comment`): parse the call and
 * resolve its arguments against the fixture's inputs.safetensors.
 */
import { InvalidArgumentError } from "../../errors.js";
import { type HostTensor, tensor, toFloat32 } from "../../tensor.js";

export interface ParsedCall {
  /** The called name ("unet", "controlnet", "unet.set_attn_processor" ...). */
  readonly fn: string;
  readonly args: readonly string[];
  readonly kwargs: Readonly<Record<string, string>>;
}

/** Splits `s` at top-level commas (outside brackets). */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === "(" || ch === "[" || ch === "{") depth++;
    else if (ch === ")" || ch === "]" || ch === "}") depth--;
    else if (ch === "," && depth === 0) {
      parts.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = s.slice(start).trim();
  if (last !== "") parts.push(last);
  return parts;
}

/**
 * Parses the last `name(...)` call in a Python statement whose name is one of `fns` (comments after
 * `#` are dropped). Returns null when there is none.
 */
export function parseCall(statement: string, fns: readonly string[]): ParsedCall | null {
  const code = statement.split("#")[0] ?? "";
  let found: ParsedCall | null = null;
  for (const m of code.matchAll(/([A-Za-z_][\w.]*)\(/g)) {
    const fn = m[1] ?? "";
    if (!fns.includes(fn)) continue;
    const open = (m.index ?? 0) + m[0].length;
    let depth = 1;
    let end = open;
    while (end < code.length && depth > 0) {
      if (code[end] === "(") depth++;
      else if (code[end] === ")") depth--;
      end++;
    }
    if (depth !== 0) continue;
    const args: string[] = [];
    const kwargs: Record<string, string> = {};
    for (const part of splitTopLevel(code.slice(open, end - 1))) {
      const kw = /^([A-Za-z_]\w*)\s*=(?!=)\s*(.*)$/s.exec(part);
      if (kw) kwargs[kw[1] ?? ""] = (kw[2] ?? "").trim();
      else args.push(part);
    }
    found = { fn, args, kwargs };
  }
  return found;
}

/** Common abbreviations in the call strings -> input tensor names. */
const ALIASES: Readonly<Record<string, string>> = {
  t: "timestep",
  ehs: "encoder_hidden_states",
  cond: "controlnet_cond",
};

/**
 * Resolves an argument: a number literal, an input tensor (by name, alias, or the keyword it was
 * passed as), or `<number> * <tensor>` (computed in float32 as torch does). Throws with the reason.
 */
export function resolveArg(
  expr: string,
  inputs: ReadonlyMap<string, HostTensor>,
  keyword?: string,
): HostTensor | number {
  const e = expr.trim();
  if (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(e)) return Number(e);
  const scaled =
    /^([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*\*\s*([A-Za-z_]\w*)$/i.exec(e) ??
    /^([A-Za-z_]\w*)\s*\*\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)$/i.exec(e);
  if (scaled) {
    const [a = "", b = ""] = [scaled[1], scaled[2]];
    const [k, name] = /^[A-Za-z_]/.test(a) ? [Number(b), a] : [Number(a), b];
    const t = resolveArg(name, inputs);
    if (typeof t === "number") return Math.fround(k) * t;
    const f = Math.fround(k);
    return tensor(
      "float32",
      t.shape,
      toFloat32(t).data.map((v) => f * v),
    );
  }
  for (const name of [e, ALIASES[e], keyword]) {
    if (name === undefined) continue;
    const t = inputs.get(name);
    if (t) return t;
  }
  throw new InvalidArgumentError(
    `call argument${keyword ? ` ${keyword}` : ""}`,
    "a number, an input tensor name or <number> * <name>",
    e,
    {
      hint: `inputs.safetensors holds ${[...inputs.keys()].join(", ")}`,
    },
  );
}

/** A tensor argument, or an error naming what was found instead. */
export function tensorArg(
  expr: string | undefined,
  inputs: ReadonlyMap<string, HostTensor>,
  keyword: string,
): HostTensor {
  const v = resolveArg(expr ?? keyword, inputs, keyword);
  if (typeof v === "number") throw new InvalidArgumentError(`call argument ${keyword}`, "a tensor", v);
  return v;
}
