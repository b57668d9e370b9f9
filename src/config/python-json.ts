/**
 * JSON as Python's `json.dump` writes it: standard JSON plus the bare tokens `NaN`, `Infinity` and
 * `-Infinity` for non-finite floats (diffusers saves DPMSolverMultistepScheduler's
 * `lambda_min_clipped: -Infinity` this way). Read through `parseJson(text, file, { pythonFloats: true })`
 * in parse.ts, which names the file in errors.
 */

const SENTINEL = "\u0000steadyframe-float:";

/** Parses Python-flavoured JSON; throws JSON.parse's SyntaxError for anything else malformed. */
export function parsePythonJson(text: string): unknown {
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i);
    if (inString) {
      out += c;
      if (c === "\\") {
        out += text.charAt(i + 1);
        i++;
      } else if (c === '"') {
        inString = false;
      }
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
      continue;
    }
    const token = /^(?:-?Infinity|NaN)/.exec(text.slice(i, i + 9));
    if (token !== null) {
      out += JSON.stringify(SENTINEL + token[0]);
      i += token[0].length - 1;
      continue;
    }
    out += c;
  }
  return JSON.parse(out, (_key, value: unknown) =>
    typeof value === "string" && value.startsWith(SENTINEL) ? Number(value.slice(SENTINEL.length)) : value,
  );
}
