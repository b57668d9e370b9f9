/**
 * The "what to do" part of a MissingWeightsError: recognises foreign checkpoint layouts, shows the
 * closest stored name for the first missing keys, and lists weights of an unusable dtype.
 */

interface Problems {
  readonly missing: readonly string[];
  readonly unexpected: readonly string[];
  readonly wrongDType: readonly string[];
}

const FOREIGN_LAYOUTS: readonly { test: (key: string) => boolean; text: string }[] = [
  {
    test: (k) => k.startsWith("model.diffusion_model."),
    text: "looks like an original (LDM) Stable Diffusion checkpoint; use the ldm key map",
  },
  { test: (k) => k.startsWith("first_stage_model."), text: "looks like an LDM VAE; use the ldm key map" },
  {
    test: (k) => k.startsWith("cond_stage_model."),
    text: "looks like an LDM text encoder; use the ldm key map",
  },
  {
    test: (k) => k.startsWith("control_model."),
    text: "looks like an original ControlNet checkpoint; use the controlnet key map",
  },
  {
    test: (k) => k.includes(".motion_modules.") && k.includes("temporal_transformer"),
    text: "looks like an original AnimateDiff motion module; use the animatediff key map",
  },
];

/** Levenshtein distance (small strings, used only for hints). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(
        (prev[j] ?? 0) + 1,
        (cur[j - 1] ?? 0) + 1,
        (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The closest candidate to `key`, or undefined when none is reasonably close. */
export function closestKey(key: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates.slice(0, 5000)) {
    const d = editDistance(key, c);
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  return bestDistance <= Math.max(3, key.length / 3) ? best : undefined;
}

export function describeProblems(problems: Problems, storeKeys: readonly string[]): string {
  const parts: string[] = [];
  const layouts = FOREIGN_LAYOUTS.filter((l) => storeKeys.some(l.test)).map((l) => l.text);
  parts.push(...layouts);
  const guesses = problems.missing
    .slice(0, 3)
    .map((k) => [k, closestKey(k, problems.unexpected)] as const)
    .filter((pair): pair is readonly [string, string] => pair[1] !== undefined)
    .map(([k, c]) => `${k} is missing but ${c} is stored`);
  if (guesses.length > 0) parts.push(`closest names: ${guesses.join("; ")}`);
  if (problems.wrongDType.length > 0)
    parts.push(`unusable dtypes: ${problems.wrongDType.slice(0, 20).join(", ")}`);
  parts.push("check that the config.json belongs to this checkpoint");
  return parts.join("; ");
}
