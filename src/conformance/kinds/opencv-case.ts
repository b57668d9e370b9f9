/**
 * Parses an opencv fixture's case.json (schema `steadyframe-opencv-golden/1`) into typed settings.
 * Everything the kind computes comes from here: folders, Canny thresholds, Farneback parameters,
 * remap interpolation and border, consistency α/β, interpolation times, reference figures.
 * case.json states no tolerances; optional `tolerances` (top level) overrides the defaults below.
 */
import { ConfigError, UnsupportedError } from "../../errors.js";
import { isRecord, Reader, type Json } from "./opencv-json.js";
import type { FarnebackOptions } from "../../control/flow.js";
import type { ConsistencyNorm } from "../../control/occlusion.js";
import type { WarpDistance } from "../../metrics/warp-error.js";
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
  /** `gamma` of `cv2.addWeighted(edge_i, 1.0 - t, edge_{i+1}, t, gamma)` (0 when no call is stated). */
  readonly gamma: number;
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
    /** folder -> border of the warps stored as PNG; `value` is the cv::Scalar (RGB channel order). */
    readonly dirs: readonly {
      readonly dir: string;
      readonly border: BorderMode;
      readonly value: readonly number[];
    }[];
  };
  readonly consistency: {
    readonly alpha: number;
    readonly beta: number;
    readonly norm: ConsistencyNorm;
    readonly inBounds: boolean;
    /** remap of the backward flow at x + w (`consistency.sampling`; default linear / replicate). */
    readonly sampling: { readonly interpolation: RemapInterpolation; readonly borderMode: BorderMode };
    readonly dir: string;
  };
  /** Distance of `warp_error.definition`: |a - b| ("l1") or (a - b)^2 ("l2"). */
  readonly warpDistance: WarpDistance;
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

/** cv2.remap treats INTER_AREA as INTER_LINEAR (imgwarp.cpp, OpenCV 4.6). */
const REMAP_INTERPOLATIONS: Readonly<Record<string, RemapInterpolation>> = {
  NEAREST: "nearest",
  LINEAR: "linear",
  AREA: "linear",
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

/** The remap interpolation named in a call (`cv2.INTER_*`), or `fallback` when none is named. */
function remapInterpolation(
  r: Reader,
  field: string,
  text: string,
  fallback?: RemapInterpolation,
): RemapInterpolation {
  const name = /INTER_([A-Z0-9_]+)/u.exec(text)?.[1];
  const interpolation = name === undefined ? fallback : REMAP_INTERPOLATIONS[name];
  if (interpolation === undefined) {
    if (name !== undefined)
      throw new UnsupportedError(
        `${r.file}: ${field} uses cv2.INTER_${name} (remap takes NEAREST/LINEAR/CUBIC/LANCZOS4/AREA)`,
      );
    throw new ConfigError(
      r.file,
      field,
      "a cv2.remap call with cv2.INTER_NEAREST/LINEAR/CUBIC/LANCZOS4",
      text,
    );
  }
  return interpolation;
}

/** The border mode named in a text (`BORDER_*`), or `fallback` when none is named. */
function borderMode(r: Reader, field: string, text: string, fallback?: BorderMode): BorderMode {
  const name = /BORDER_([A-Z0-9_]+)/u.exec(text)?.[1];
  const border = name === undefined ? fallback : BORDERS[name];
  if (border === undefined) {
    if (name !== undefined) throw new UnsupportedError(`${r.file}: ${field} uses BORDER_${name}`);
    throw new ConfigError(r.file, field, "a description naming a BORDER_* mode", text);
  }
  return border;
}

/**
 * The cv::Scalar of `borderValue=...` as cv2's Python binding builds it: a tuple/list gives its
 * values per channel, a bare number v gives (v, 0, 0, 0) (only the first channel!); none gives 0.
 */
export function parseBorderValue(r: Reader, field: string, text: string): number[] {
  const m = /borderValue\s*=\s*(\(|\[)?/u.exec(text);
  if (m === null) return [0, 0, 0, 0];
  const rest = text.slice(m.index + m[0].length);
  const num = String.raw`[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?`;
  if (m[1] !== undefined) {
    const close = m[1] === "(" ? ")" : "]";
    const end = rest.indexOf(close);
    const items = (end < 0 ? "" : rest.slice(0, end)).split(",").map((x) => x.trim());
    if (items.at(-1) === "") items.pop();
    const values = items.map(Number);
    if (end < 0 || values.length < 1 || values.length > 4 || !values.every(Number.isFinite))
      throw new ConfigError(r.file, field, "borderValue=<number> or a tuple of 1-4 numbers", text);
    return [...values, 0, 0, 0, 0].slice(0, 4);
  }
  const v = new RegExp(`^${num}`, "u").exec(rest)?.[0];
  if (v === undefined) throw new ConfigError(r.file, field, "borderValue=<number> or a tuple", text);
  return [Number(v), 0, 0, 0];
}

function parseWarp(r: Reader, json: Json): OpencvCase["warp"] {
  const w = r.record(json.warp, "warp");
  const call = r.string(w.call, "warp.call");
  const interpolation = remapInterpolation(r, "warp.call", call);
  const dirs = Object.entries(r.record(w.dirs, "warp.dirs")).map(([dir, description]) => {
    const text = r.string(description, `warp.dirs.${dir}`);
    const border = borderMode(r, `warp.dirs.${dir}`, text);
    const value = parseBorderValue(r, `warp.dirs.${dir}`, text);
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
    let gamma = 0;
    if (it.call !== undefined) {
      const call = r.string(it.call, `interp[${i}].call`).replace(/\s+/gu, "");
      const m = /^cv2\.addWeighted\(edge_i,1(?:\.0*)?-t,edge_\{i\+1\},t,([-+]?[\d.eE+-]+)\)$/u.exec(call);
      gamma = Number(m?.[1]);
      if (m === null || !Number.isFinite(gamma))
        throw new UnsupportedError(
          `${r.file}: interp[${i}].call ${JSON.stringify(it.call)} (only cv2.addWeighted(edge_i, 1.0 - t, edge_{i+1}, t, gamma))`,
        );
    }
    return {
      thresholds: [t1, t2],
      dir: r.path(it.dir, `interp[${i}].dir`),
      times,
      gamma,
      filePattern: r.path(pattern, `interp[${i}].file_pattern`),
    };
  });
}

/** The fixture's test text: `|w + w_hat|^2 < ...` is the squared test, `|w + w_hat| < ...` unsquared-lhs. */
function consistencyNorm(r: Reader, test: unknown): ConsistencyNorm {
  const text = r.string(test, "consistency.test").replace(/\s+/gu, "");
  if (/\|w\+w_hat\|(?:\^2)?<=/u.test(text))
    throw new UnsupportedError(
      `${r.file}: consistency.test with a non-strict "<=" (only the strict "<" test)`,
    );
  if (text.includes("|w+w_hat|^2<")) return "squared";
  if (text.includes("|w+w_hat|<")) return "unsquared-lhs";
  throw new ConfigError(
    r.file,
    "consistency.test",
    'a test of the form "|w + w_hat|^2 < alpha * (|w|^2 + |w_hat|^2) + beta"',
    test,
  );
}

/** The consistency mask requires the in-bounds test when case.json states one and its `mask` keeps it. */
function consistencyInBounds(r: Reader, c: Json): boolean {
  if (c.in_bounds === undefined) return false;
  if (c.mask === undefined) return true;
  return r.string(c.mask, "consistency.mask").includes("in_bounds");
}

/** `consistency.sampling`: the remap of the backward flow at x + w (default linear / replicate). */
function consistencySampling(r: Reader, c: Json): OpencvCase["consistency"]["sampling"] {
  if (c.sampling === undefined) return { interpolation: "linear", borderMode: "replicate" };
  const text = r.string(c.sampling, "consistency.sampling");
  if (/borderValue\s*=/u.test(text) && parseBorderValue(r, "consistency.sampling", text).some((v) => v !== 0))
    throw new UnsupportedError(`${r.file}: consistency.sampling with a non-zero borderValue`);
  return {
    interpolation: remapInterpolation(r, "consistency.sampling", text, "linear"),
    borderMode: borderMode(r, "consistency.sampling", text, "replicate"),
  };
}

/** `warp_error.definition`: mean of |a - b| (L1) or (a - b)^2 (L2) over mask pixels and channels. */
function warpDistance(r: Reader, json: Json): WarpDistance {
  const we = r.record(json.warp_error, "warp_error");
  if (we.definition === undefined) return "l1";
  const text = r.string(we.definition, "warp_error.definition").replace(/\s+/gu, "");
  if (/\|frame_i\/255-warp_constant_i\/255\|(?!\^)/u.test(text)) return "l1";
  if (/\(frame_i\/255-warp_constant_i\/255\)\^2|\|frame_i\/255-warp_constant_i\/255\|\^2/u.test(text))
    return "l2";
  throw new UnsupportedError(
    `${r.file}: warp_error.definition ${JSON.stringify(we.definition)} (only the L1 or squared difference of frame_i and warp_constant_i)`,
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
  const gray = r.record(json.gray, "gray");
  if (gray.call !== undefined && !/COLOR_RGB2GRAY\b/u.test(r.string(gray.call, "gray.call")))
    throw new UnsupportedError(
      `${file}: gray.call ${JSON.stringify(gray.call)} (only cv2.COLOR_RGB2GRAY of the RGB frames)`,
    );
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
    grayDir: r.path(gray.dir, "gray.dir"),
    canny: r.list(json.canny, "canny").map((c, i) => parseCanny(r, c, i)),
    farneback: parseFarneback(r, json),
    flowFile: r.path(farneback.file, "farneback.file"),
    warp: parseWarp(r, json),
    consistency: {
      alpha: r.number(consistency.alpha, "consistency.alpha"),
      beta: r.number(consistency.beta, "consistency.beta"),
      norm: consistencyNorm(r, consistency.test),
      inBounds: consistencyInBounds(r, consistency),
      sampling: consistencySampling(r, consistency),
      dir: dirOfKind(files, "consistency_mask", "consistency"),
    },
    warpDistance: warpDistance(r, json),
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
