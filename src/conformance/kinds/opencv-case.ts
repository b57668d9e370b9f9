/**
 * Parses an opencv fixture's case.json (schema `steadyframe-opencv-golden/1`) into typed settings.
 * Everything the kind computes comes from here: folders, Canny thresholds, Farneback parameters,
 * remap interpolation and border, consistency α/β, interpolation times, reference figures.
 * case.json states no tolerances; optional `tolerances` (top level) overrides the defaults below.
 */
import { ConfigError } from "../../errors.js";
import { isRecord, Reader, type Json } from "./opencv-json.js";
import type { FarnebackOptions } from "../../control/flow.js";
import type { ConsistencyNorm } from "../../control/occlusion.js";
import type { BorderMode, RemapInterpolation } from "../../control/warp.js";

/** Default tolerances (max abs error) when case.json has no `tolerances` object. */
export const OPENCV_TOLERANCES = {
  /** uint8 outputs (gray, Canny, warps, masks, interpolations) must match exactly. */
  exact: 0,
  /** Farneback flow, px (OpenCV.js scalar wasm vs cv2 SIMD: measured ~2e-5). */
  flow: 1e-3,
  /** Warp error from the reference flows (float64 summation order only). */
  warpError: 1e-9,
  /** Warp error end to end from our own Farneback flows (mask/warp may differ on a few pixels). */
  warpErrorOwnFlow: 1e-4,
  /** Edge pixel fractions are printed with 6 decimals: half a unit of the last digit, plus float slack. */
  fraction: 5.000001e-7,
} as const;

export type OpencvTolerances = { -readonly [K in keyof typeof OPENCV_TOLERANCES]: number };

export interface CannySpec {
  readonly dir: string;
  readonly threshold1: number;
  readonly threshold2: number;
  readonly apertureSize: 3 | 5 | 7;
  readonly l2Gradient: boolean;
  readonly edgePixelFraction: readonly number[] | undefined;
}

export interface InterpSpec {
  readonly thresholds: readonly [number, number];
  readonly dir: string;
  readonly times: readonly number[];
  /** Python-format pattern of one file, e.g. `interp_100_200/interp_{i:03d}_{k:02d}.png`. */
  readonly filePattern: string;
}

export interface WarpErrorPair {
  readonly pair: readonly [number, number];
  readonly maskPixels: number | undefined;
  readonly warpError: number;
  readonly replicateSha256: string | undefined;
  readonly replicateDiffering: number | undefined;
  readonly variants: Readonly<Record<string, unknown>>;
  readonly flowStats: Readonly<Record<string, unknown>> | undefined;
}

export interface OpencvCase {
  readonly label: string;
  readonly frameCount: number;
  readonly framesDir: string;
  readonly grayDir: string;
  readonly canny: readonly CannySpec[];
  readonly farneback: Required<Omit<FarnebackOptions, "initialFlow">>;
  readonly flowFile: string;
  readonly warp: {
    readonly interpolation: RemapInterpolation;
    /** folder -> border of the warps stored as PNG. */
    readonly dirs: readonly { readonly dir: string; readonly border: BorderMode; readonly value: number }[];
  };
  readonly consistency: {
    readonly alpha: number;
    readonly beta: number;
    readonly norm: ConsistencyNorm;
    readonly inBounds: boolean;
    readonly dir: string;
  };
  readonly pairs: readonly WarpErrorPair[];
  readonly interp: readonly InterpSpec[];
  /** relative path -> sha256 of the decoded pixels, when case.json lists it. */
  readonly pixelHashes: ReadonlyMap<string, string>;
  readonly tolerances: OpencvTolerances;
}

const BORDERS: Readonly<Record<string, BorderMode>> = {
  CONSTANT: "constant",
  REPLICATE: "replicate",
  REFLECT: "reflect",
  REFLECT_101: "reflect101",
  REFLECT101: "reflect101",
  DEFAULT: "reflect101",
  WRAP: "wrap",
};

const REMAP_INTERPOLATIONS: Readonly<Record<string, RemapInterpolation>> = {
  NEAREST: "nearest",
  LINEAR: "linear",
  CUBIC: "cubic",
  LANCZOS4: "lanczos4",
};

/** The folder of the files of one `kind` in case.json's `files` map, or `fallback`. */
function dirOfKind(files: Json | undefined, kind: string, fallback: string): string {
  for (const [path, entry] of Object.entries(files ?? {})) {
    if (isRecord(entry) && entry.kind === kind && path.includes("/"))
      return path.slice(0, path.lastIndexOf("/"));
  }
  return fallback;
}

function parseCanny(r: Reader, value: unknown, i: number): CannySpec {
  const c = r.record(value, `canny[${i}]`);
  const apertureSize = c.apertureSize === undefined ? 3 : r.int(c.apertureSize, `canny[${i}].apertureSize`);
  if (apertureSize !== 3 && apertureSize !== 5 && apertureSize !== 7) {
    throw new ConfigError(r.file, `canny[${i}].apertureSize`, "3, 5 or 7", apertureSize);
  }
  const l2 = c.L2gradient ?? false;
  if (typeof l2 !== "boolean") throw new ConfigError(r.file, `canny[${i}].L2gradient`, "true or false", l2);
  const fractions = c.edge_pixel_fraction;
  return {
    dir: r.path(c.dir, `canny[${i}].dir`),
    threshold1: r.number(c.threshold1, `canny[${i}].threshold1`),
    threshold2: r.number(c.threshold2, `canny[${i}].threshold2`),
    apertureSize,
    l2Gradient: l2,
    edgePixelFraction:
      fractions === undefined
        ? undefined
        : r
            .list(fractions, `canny[${i}].edge_pixel_fraction`)
            .map((f, k) => r.number(f, `canny[${i}].edge_pixel_fraction[${k}]`)),
  };
}

function parseFarneback(r: Reader, json: Json): Required<Omit<FarnebackOptions, "initialFlow">> {
  const p = r.record(r.record(json.farneback, "farneback").params, "farneback.params");
  const polyN = r.int(p.poly_n, "farneback.params.poly_n");
  if (polyN !== 5 && polyN !== 7) throw new ConfigError(r.file, "farneback.params.poly_n", "5 or 7", polyN);
  return {
    pyrScale: r.number(p.pyr_scale, "farneback.params.pyr_scale"),
    levels: r.int(p.levels, "farneback.params.levels"),
    winsize: r.int(p.winsize, "farneback.params.winsize"),
    iterations: r.int(p.iterations, "farneback.params.iterations"),
    polyN,
    polySigma: r.number(p.poly_sigma, "farneback.params.poly_sigma"),
    flags: r.int(p.flags, "farneback.params.flags"),
  };
}

function parseWarp(r: Reader, json: Json): OpencvCase["warp"] {
  const w = r.record(json.warp, "warp");
  const call = r.string(w.call, "warp.call");
  const inter = /INTER_([A-Z0-9]+)/u.exec(call)?.[1] ?? "";
  const interpolation = REMAP_INTERPOLATIONS[inter];
  if (interpolation === undefined)
    throw new ConfigError(
      r.file,
      "warp.call",
      "a cv2.remap call with cv2.INTER_NEAREST/LINEAR/CUBIC/LANCZOS4",
      call,
    );
  const dirs = Object.entries(r.record(w.dirs, "warp.dirs")).map(([dir, description]) => {
    const text = r.string(description, `warp.dirs.${dir}`);
    const border = BORDERS[/BORDER_([A-Z0-9_]+)/u.exec(text)?.[1] ?? ""];
    if (border === undefined)
      throw new ConfigError(r.file, `warp.dirs.${dir}`, "a description naming a BORDER_* mode", text);
    const value = Number(/borderValue\s*=\s*(-?[\d.]+)/u.exec(text)?.[1] ?? "0");
    return { dir: r.path(dir, `warp.dirs.${dir}`), border, value };
  });
  return { interpolation, dirs };
}

function parsePairs(r: Reader, json: Json): WarpErrorPair[] {
  const we = r.record(json.warp_error, "warp_error");
  return r.list(we.pairs, "warp_error.pairs").map((value, i) => {
    const p = r.record(value, `warp_error.pairs[${i}]`);
    const pair = r
      .list(p.pair, `warp_error.pairs[${i}].pair`)
      .map((v, k) => r.int(v, `warp_error.pairs[${i}].pair[${k}]`));
    const [a, b] = pair;
    if (pair.length !== 2 || a === undefined || b !== a + 1) {
      throw new ConfigError(r.file, `warp_error.pairs[${i}].pair`, "[i, i + 1]", p.pair);
    }
    const rep = isRecord(p.warp_replicate) ? p.warp_replicate : undefined;
    return {
      pair: [a, b],
      maskPixels:
        p.mask_pixels === undefined ? undefined : r.int(p.mask_pixels, `warp_error.pairs[${i}].mask_pixels`),
      warpError: r.number(p.warp_error, `warp_error.pairs[${i}].warp_error`),
      replicateSha256: typeof rep?.pixels_sha256 === "string" ? rep.pixels_sha256 : undefined,
      replicateDiffering:
        typeof rep?.pixels_differing_from_constant === "number"
          ? rep.pixels_differing_from_constant
          : undefined,
      variants: isRecord(p.variants) ? p.variants : {},
      flowStats: isRecord(p.flow_fw_stats) ? p.flow_fw_stats : undefined,
    };
  });
}

function parseInterp(r: Reader, json: Json): InterpSpec[] {
  if (json.interp === undefined) return [];
  return r.list(json.interp, "interp").map((value, i) => {
    const it = r.record(value, `interp[${i}]`);
    const th = r.list(it.canny, `interp[${i}].canny`).map((v, k) => r.number(v, `interp[${i}].canny[${k}]`));
    const [t1, t2] = th;
    if (th.length !== 2 || t1 === undefined || t2 === undefined)
      throw new ConfigError(r.file, `interp[${i}].canny`, "[threshold1, threshold2]", it.canny);
    const n = r.int(it.n, `interp[${i}].n`);
    const times =
      it.t === undefined
        ? Array.from({ length: n }, (_, k) => (n === 1 ? 0 : k / (n - 1)))
        : r.list(it.t, `interp[${i}].t`).map((t, k) => r.number(t, `interp[${i}].t[${k}]`));
    const pattern = r.string(it.file_pattern, `interp[${i}].file_pattern`).trim().split(/\s+/u)[0] ?? "";
    return {
      thresholds: [t1, t2],
      dir: r.path(it.dir, `interp[${i}].dir`),
      times,
      filePattern: r.path(pattern, `interp[${i}].file_pattern`),
    };
  });
}

/** The fixture's test text: `|w + w_hat|^2 < ...` is the squared test, `|w + w_hat| < ...` unsquared-lhs. */
function consistencyNorm(r: Reader, test: unknown): ConsistencyNorm {
  const text = r.string(test, "consistency.test").replace(/\s+/gu, "");
  if (text.includes("|w+w_hat|^2<")) return "squared";
  if (text.includes("|w+w_hat|<")) return "unsquared-lhs";
  throw new ConfigError(
    r.file,
    "consistency.test",
    'a test of the form "|w + w_hat|^2 < alpha * (|w|^2 + |w_hat|^2) + beta"',
    test,
  );
}

/** Validates and types a parsed opencv case.json (`file` is used in error messages). */
export function parseOpencvCase(json: Json, file: string): OpencvCase {
  const r = new Reader(file);
  const files = isRecord(json.files) ? json.files : undefined;
  const decode = r.record(json.decode, "decode");
  const consistency = r.record(json.consistency, "consistency");
  const farneback = r.record(json.farneback, "farneback");
  const pixelHashes = new Map<string, string>();
  for (const [path, entry] of Object.entries(files ?? {})) {
    if (isRecord(entry) && typeof entry.pixels_sha256 === "string")
      pixelHashes.set(path, entry.pixels_sha256);
  }
  const tolerances: OpencvTolerances = { ...OPENCV_TOLERANCES };
  if (json.tolerances !== undefined) {
    for (const [key, value] of Object.entries(r.record(json.tolerances, "tolerances"))) {
      if (!(key in tolerances))
        throw new ConfigError(file, `tolerances.${key}`, `one of ${Object.keys(tolerances).join(", ")}`, key);
      tolerances[key as keyof OpencvTolerances] = r.number(value, `tolerances.${key}`);
    }
  }
  const frameCount = r.int(decode.count, "decode.count");
  if (frameCount < 2) throw new ConfigError(file, "decode.count", "at least 2 frames", frameCount);
  const pairs = parsePairs(r, json);
  const outside = pairs.find((p) => p.pair[1] >= frameCount);
  if (outside !== undefined)
    throw new ConfigError(file, "warp_error.pairs[].pair", `frame indices below ${frameCount}`, outside.pair);
  return {
    label: `${r.string(json.fixture, "fixture")}/${typeof json.clip === "string" ? json.clip : "clip"}`,
    frameCount,
    framesDir: dirOfKind(files, "frame_rgb", "frames"),
    grayDir: r.path(r.record(json.gray, "gray").dir, "gray.dir"),
    canny: r.list(json.canny, "canny").map((c, i) => parseCanny(r, c, i)),
    farneback: parseFarneback(r, json),
    flowFile: r.path(farneback.file, "farneback.file"),
    warp: parseWarp(r, json),
    consistency: {
      alpha: r.number(consistency.alpha, "consistency.alpha"),
      beta: r.number(consistency.beta, "consistency.beta"),
      norm: consistencyNorm(r, consistency.test),
      inBounds: consistency.in_bounds !== undefined,
      dir: dirOfKind(files, "consistency_mask", "consistency"),
    },
    pairs,
    interp: parseInterp(r, json),
    pixelHashes,
    tolerances,
  };
}

/** Fills a Python format pattern such as `interp_{i:03d}_{k:02d}.png`. */
export function formatPattern(pattern: string, values: Readonly<Record<string, number>>): string {
  return pattern.replace(/\{(\w+)(?::0?(\d+)d)?\}/gu, (whole, name: string, width: string | undefined) => {
    const v = values[name];
    if (v === undefined) return whole;
    return width === undefined ? String(v) : String(v).padStart(Number(width), "0");
  });
}
