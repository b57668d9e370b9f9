/**
 * JSON as Python's `json.dump` writes it: standard JSON plus the bare tokens `NaN`, `Infinity` and
 * `-Infinity` for non-finite floats (diffusers saves DPMSolverMultistepScheduler's
 * `lambda_min_clipped: -Infinity` this way). Every JSON file Steadyframe reads goes through
 * `parseJson` / `readJsonFile` in parse.ts, which use this reader and name the file in errors.
 */

const SENTINEL = "\u0000steadyframe-float:";
const TOKEN = /-?Infinity|NaN/y;

/** Parses Python-flavoured JSON; throws JSON.parse's SyntaxError for anything else malformed. */
export function parsePythonJson(text: string): unknown {
  // Fast path: plain JSON (no bare token can occur without these letters).
  if (!text.includes("Infinity") && !text.includes("NaN")) return JSON.parse(text) as unknown;
  const parts: string[] = [];
  let copied = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) {
      inString = true;
      continue;
    }
    if (c !== 0x4e && c !== 0x49 && c !== 0x2d) continue; // N, I, -
    TOKEN.lastIndex = i;
    const token = TOKEN.exec(text);
    if (token === null) continue;
    parts.push(text.slice(copied, i), JSON.stringify(SENTINEL + token[0]));
    i += token[0].length - 1;
    copied = i + 1;
  }
  parts.push(text.slice(copied));
  return JSON.parse(parts.join(""), (_key, value: unknown) =>
    typeof value === "string" && value.startsWith(SENTINEL) ? Number(value.slice(SENTINEL.length)) : value,
  );
}
