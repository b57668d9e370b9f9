/**
 * The flow-dependent rows of the opencv kind: remap warps (each stored border), the replicate-border
 * warp (stored only as a pixel hash), consistency masks, warp errors and their variants, all from
 * the reference flows; plus the warp error end to end from our own Farneback flows.
 */
import type { FlowField } from "../../control/flow.js";
import { consistencyMaskSync, type ConsistencyNorm } from "../../control/occlusion.js";
import type { Cv } from "../../control/opencv.js";
import { warpBilinearExact, warpImageSync, type BorderMode, type FloatImage } from "../../control/warp.js";
import type { Image } from "../../image.js";
import { pairWarpError } from "../../metrics/warp-error.js";
import type { ConformanceRow } from "../types.js";
import type { OpencvCase } from "./opencv-case.js";
import { imageRow, numbersRow, readPngDir, sha256, type PixelCheck } from "./opencv-io.js";

interface Flows {
  readonly fw: readonly FlowField[];
  readonly bw: readonly FlowField[];
}

/** A warp_error variant name understood by this kind, e.g. `consistency_sq_only_border_replicate`. */
export interface VariantSpec {
  /** Consistency test of the mask ("primary" = case.json's), or null for every pixel. */
  readonly mask: { readonly norm: ConsistencyNorm; readonly inBounds: boolean } | "primary" | null;
  readonly border: BorderMode;
  /** "remap" = cv2.remap uint8 warp, "exact" = float64 bilinear, "none" = frame i+1 unwarped. */
  readonly warp: "remap" | "exact" | "none";
}

export function parseVariant(name: string): VariantSpec | undefined {
  if (name === "no_warp_baseline_unmasked") return { mask: null, border: "constant", warp: "none" };
  if (name === "primary_mask_exact_float64_bilinear")
    return { mask: "primary", border: "constant", warp: "exact" };
  const m =
    /^(?:consistency_(sq|unsquared_lhs)_(and_inbounds|only)|unmasked)(?:_border_(constant|replicate))?$/u.exec(
      name,
    );
  if (m === null) return undefined;
  const border = m[3] === "replicate" ? "replicate" : "constant";
  if (m[1] === undefined) return { mask: null, border, warp: "remap" };
  return {
    mask: { norm: m[1] === "sq" ? "squared" : "unsquared-lhs", inBounds: m[2] === "and_inbounds" },
    border,
    warp: "remap",
  };
}

/** Expected `{pixels?, error}` of a variant entry (a number, or an object with `error`). */
function expectedVariant(value: unknown): { error: number; pixels?: number } | undefined {
  if (typeof value === "number") return { error: value };
  if (typeof value === "object" && value !== null && "error" in value && typeof value.error === "number") {
    const pixels = "pixels" in value && typeof value.pixels === "number" ? value.pixels : undefined;
    return pixels === undefined ? { error: value.error } : { error: value.error, pixels };
  }
  return undefined;
}

export async function warpRows(
  dir: string,
  cv: Cv,
  c: OpencvCase,
  frames: readonly Image[],
  golden: Flows,
  own: Flows,
  pixels: PixelCheck,
): Promise<ConformanceRow[]> {
  const rows: ConformanceRow[] = [];
  const pairs = c.frameCount - 1;
  const interpolation = c.warp.interpolation;
  const warpAll = (border: BorderMode, value: readonly number[], fw: readonly FlowField[]): Image[] =>
    fw.slice(0, pairs).map((f, i) =>
      warpImageSync(cv, frames[i + 1] ?? frames[0]!, f, {
        interpolation,
        borderMode: border,
        borderValue: value,
      }),
    );

  const zero = [0, 0, 0, 0];
  const constant = warpAll("constant", zero, golden.fw);
  for (const d of c.warp.dirs) {
    const expected = await readPngDir(dir, d.dir, pairs, pixels);
    const actual =
      d.border === "constant" && d.value.every((v) => v === 0)
        ? constant
        : warpAll(d.border, d.value, golden.fw);
    rows.push(
      imageRow(
        c.label,
        d.dir,
        actual,
        expected,
        c.tolerances.exact,
        ` (remap ${interpolation}, border ${d.border}${d.border === "constant" ? ` (${d.value.join(", ")})` : ""})`,
      ),
    );
  }

  if (c.pairs.some((p) => p.replicateSha256 !== undefined)) {
    const replicate = warpAll("replicate", zero, golden.fw);
    let bad = 0;
    const counts: number[] = [];
    const expectedCounts: number[] = [];
    for (const p of c.pairs) {
      const r = replicate[p.pair[0]];
      const k = constant[p.pair[0]];
      if (r === undefined || k === undefined || p.replicateSha256 === undefined) continue;
      if (sha256(r.data) !== p.replicateSha256) bad++;
      if (p.replicateDiffering !== undefined) {
        let differing = 0;
        for (let q = 0; q < r.data.length; q += r.channels) {
          for (let ch = 0; ch < r.channels; ch++) {
            if (r.data[q + ch] !== k.data[q + ch]) {
              differing++;
              break;
            }
          }
        }
        counts.push(differing);
        expectedCounts.push(p.replicateDiffering);
      }
    }
    const countRow = numbersRow(c.label, "warp_replicate", counts, expectedCounts, 0);
    rows.push({
      ...countRow,
      maxAbsError: bad === 0 ? countRow.maxAbsError : NaN,
      pass: bad === 0 && countRow.pass,
      note: `${bad} of ${c.pairs.length} pixel hashes differ; max abs error = pixels differing from BORDER_CONSTANT vs reference count`,
    });
  }

  const { alpha, beta, norm, inBounds, sampling } = c.consistency;
  const masks = golden.fw
    .slice(0, pairs)
    .map((f, i) => consistencyMaskSync(cv, f, golden.bw[i] ?? f, { alpha, beta, norm, inBounds, sampling }));
  const expectedMasks = await readPngDir(dir, c.consistency.dir, pairs, pixels);
  rows.push(
    imageRow(
      c.label,
      c.consistency.dir,
      masks,
      expectedMasks,
      c.tolerances.exact,
      ` (${norm}, alpha ${alpha}, beta ${beta}, sampling ${sampling.interpolation}/${sampling.borderMode})`,
    ),
  );

  const primary = c.pairs.map((p) =>
    pairWarpError(frames[p.pair[0]]!, constant[p.pair[0]]!, masks[p.pair[0]]!, c.warpDistance),
  );
  const countsOk = c.pairs.every((p, i) => p.maskPixels === undefined || p.maskPixels === primary[i]?.pixels);
  const primaryRow = numbersRow(
    c.label,
    "warp_error",
    primary.map((e) => e.error),
    c.pairs.map((p) => p.warpError),
    c.tolerances.warpError,
  );
  const variants = variantRows(cv, c, frames, golden, constant, masks);
  const skipped =
    variants.skipped.length === 0 ? "" : `; variants not computed: ${variants.skipped.join(", ")}`;
  rows.push({
    ...primaryRow,
    pass: primaryRow.pass && countsOk,
    note: `${c.warpDistance.toUpperCase()} over mask; mask pixel counts ${countsOk ? "match" : "DIFFER"}${skipped}`,
  });
  rows.push(...variants.rows);

  const ownWarps = warpAll("constant", zero, own.fw);
  const ownErrors = c.pairs.map((p) => {
    const i = p.pair[0];
    const mask = consistencyMaskSync(cv, own.fw[i]!, own.bw[i]!, { alpha, beta, norm, inBounds, sampling });
    return pairWarpError(frames[i]!, ownWarps[i]!, mask, c.warpDistance);
  });
  const drift = ownErrors.reduce((s, e, i) => s + Math.abs(e.pixels - (primary[i]?.pixels ?? 0)), 0);
  rows.push(
    numbersRow(
      c.label,
      "warp_error[own flow]",
      ownErrors.map((e) => e.error),
      c.pairs.map((p) => p.warpError),
      c.tolerances.warpErrorOwnFlow,
      `end to end from our Farneback flows; mask pixels differ by ${drift} in total`,
    ),
  );
  return rows;
}

function variantRows(
  cv: Cv,
  c: OpencvCase,
  frames: readonly Image[],
  golden: Flows,
  constant: readonly Image[],
  primaryMasks: readonly Image[],
): { rows: ConformanceRow[]; skipped: string[] } {
  const names = [...new Set(c.pairs.flatMap((p) => Object.keys(p.variants)))];
  const rows: ConformanceRow[] = [];
  const skipped: string[] = [];
  const { alpha, beta, sampling } = c.consistency;
  const remapped = new Map<string, Image>();
  for (const name of names) {
    const spec = parseVariant(name);
    if (spec === undefined) {
      skipped.push(name);
      continue;
    }
    const actual: number[] = [];
    const expected: number[] = [];
    let pixelMismatch = 0;
    for (const p of c.pairs) {
      const want = expectedVariant(p.variants[name]);
      const i = p.pair[0];
      const frame = frames[i];
      const fw = golden.fw[i];
      const bw = golden.bw[i];
      if (want === undefined || frame === undefined || fw === undefined || bw === undefined) continue;
      let warped: Image | FloatImage | undefined = spec.warp === "none" ? frames[i + 1] : constant[i];
      if (spec.warp === "exact")
        warped = warpBilinearExact(
          frames[i + 1]!,
          fw,
          spec.border === "replicate" ? "replicate" : "constant",
        );
      else if (spec.warp === "remap" && spec.border !== "constant") {
        const key = `${spec.border}:${i}`;
        const cached =
          remapped.get(key) ??
          warpImageSync(cv, frames[i + 1]!, fw, {
            interpolation: c.warp.interpolation,
            borderMode: spec.border,
          });
        remapped.set(key, cached);
        warped = cached;
      }
      const primary =
        spec.mask === "primary" ||
        (spec.mask !== null &&
          spec.mask.norm === c.consistency.norm &&
          spec.mask.inBounds === c.consistency.inBounds);
      const mask =
        spec.mask === null
          ? null
          : primary
            ? primaryMasks[i]!
            : consistencyMaskSync(cv, fw, bw, { alpha, beta, sampling, ...spec.mask });
      const e = pairWarpError(frame, warped!, mask, c.warpDistance);
      actual.push(e.error);
      expected.push(want.error);
      if (want.pixels !== undefined && want.pixels !== e.pixels) pixelMismatch++;
    }
    const row = numbersRow(c.label, `warp_error.${name}`, actual, expected, c.tolerances.warpError);
    rows.push({
      ...row,
      pass: row.pass && pixelMismatch === 0,
      note: pixelMismatch === 0 ? "variant" : `mask pixel count differs in ${pixelMismatch} pairs`,
    });
  }
  return { rows, skipped };
}
