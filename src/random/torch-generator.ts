/**
 * PyTorch's CPU generator in TypeScript: `new TorchGenerator(s).randn(shape)` gives the same float32
 * numbers as `torch.randn(shape, generator=torch.Generator().manual_seed(s))`, so a seed typed into
 * a PyTorch tool gives the same initial noise here.
 *
 * Reference (torch 1.13, pytorch/pytorch):
 * - aten/src/ATen/CPUGeneratorImpl.cpp: `manual_seed` resets the engine with the seed's low 32 bits
 *   and clears the cached normal sample; `random64()` = (first draw << 32) | second draw.
 * - aten/src/ATen/core/DistributionsHelper.h + TransformationHelper.h: float uniforms are
 *   (u32 & (2^24 - 1)) * 2^-24; double uniforms are (u64 & (2^53 - 1)) * 2^-53; the scalar normal is
 *   Box-Muller in double with a cached second value.
 * - aten/src/ATen/native/cpu/DistributionTemplates.h (`normal_kernel`, `normal_fill`): float tensors of
 *   16 or more elements are filled with uniforms first, then transformed 16 at a time; a tail that is
 *   not a multiple of 16 redraws the last 16 values and transforms them again.
 *
 * - aten/src/ATen/native/cpu/DistributionKernels.cpp (`normal_fill_16_AVX2`): torch's x86 builds with
 *   GCC run the block transform with avx_mathfun's log/sincos and a float32 2*pi; that is the default
 *   here (`cpuCapability: "avx2"`, bit-exact against the rng fixture). `"default"` is the portable
 *   libm path (`normal_fill_16`, used by MSVC/Windows builds and CPUs without AVX2); it differs by up
 *   to ~2e-6 and has no reference fixture of its own.
 *
 * The generator is consumed like torch's: successive calls continue the same stream, and a cached
 * second normal from the scalar (< 16 elements) path is used by the next scalar draw.
 */
import { InvalidArgumentError } from "../errors.js";
import {
  type HostTensor,
  type Shape,
  bfloat16BitsToNumber,
  float16BitsToNumber,
  numberToBfloat16Bits,
  numberToFloat16Bits,
  numel,
  tensor,
} from "../tensor.js";
import { log256, sincos256 } from "./avx-mathfun.js";
import { MT19937 } from "./mt19937.js";

/** A seed as torch accepts it: an integer in [-2^63, 2^64). Negative seeds wrap like int64 -> uint64. */
export type TorchSeed = number | bigint;

const TWO_POW_24 = 2 ** 24;
const TWO_POW_53 = 2 ** 53;
const TWO_POW_21 = 2 ** 21;
const MIN_SEED = -(2n ** 63n);
const MAX_SEED = 2n ** 64n - 1n;

/** Low 32 bits of a torch seed, after validating it the way `Generator.manual_seed` does. */
function seedLow32(seed: TorchSeed): number {
  if (typeof seed === "number" && !Number.isSafeInteger(seed)) {
    throw new InvalidArgumentError("seed", "a safe integer (use a bigint for seeds beyond 2^53)", seed);
  }
  const big = BigInt(seed);
  if (big < MIN_SEED || big > MAX_SEED) {
    throw new InvalidArgumentError("seed", "an integer in [-2^63, 2^64 - 1] (torch's seed range)", seed);
  }
  return Number(BigInt.asUintN(32, big));
}

function checkShape(shape: Shape): void {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new InvalidArgumentError("shape", "an array of non-negative integers", shape);
  }
}

/**
 * The dtypes `randn`/`rand` generate in, as torch's CPU kernels do for `dtype=`: float32 (default),
 * float64 (53-bit uniforms from random64(), Box-Muller in double), float16 / bfloat16 (11- / 8-bit
 * uniforms, every intermediate of normal_fill_16 rounded to the dtype as c10::Half / BFloat16 do).
 */
export type RandomDType = "float32" | "float64" | "float16" | "bfloat16";

const RANDOM_DTYPES: readonly RandomDType[] = ["float32", "float64", "float16", "bfloat16"];

/** Which of torch's CPU kernels `randn` on >= 16 elements reproduces (torch's ATEN_CPU_CAPABILITY names). */
export type CpuCapability = "avx2" | "default";

export interface TorchGeneratorOptions {
  /**
   * (optional, default "avx2") "avx2": torch on x86-64 Linux/macOS with AVX2 or AVX-512 (bit-exact);
   * "default": torch's portable kernel (Windows builds, CPUs without AVX2, ATEN_CPU_CAPABILITY=default).
   */
  readonly cpuCapability?: CpuCapability;
}

export class TorchGenerator {
  private engine: MT19937;
  private cachedNormal: number | undefined;
  private seedValue: bigint;
  private readonly fill16: (data: Float32Array, offset: number) => void;

  constructor(seed: TorchSeed, options: TorchGeneratorOptions = {}) {
    this.engine = new MT19937(seedLow32(seed));
    this.seedValue = BigInt.asUintN(64, BigInt(seed));
    this.cachedNormal = undefined;
    const capability = options.cpuCapability ?? "avx2";
    if (capability !== "avx2" && capability !== "default") {
      throw new InvalidArgumentError("cpuCapability", 'one of "avx2", "default"', capability);
    }
    this.fill16 = capability === "avx2" ? normalFill16Avx2 : normalFill16Default;
  }

  /** Re-seeds in place, like `generator.manual_seed(seed)`; returns this generator. */
  manualSeed(seed: TorchSeed): this {
    this.engine = new MT19937(seedLow32(seed));
    this.seedValue = BigInt.asUintN(64, BigInt(seed));
    this.cachedNormal = undefined;
    return this;
  }

  /** The seed as torch reports it from `initial_seed()` (a uint64). */
  initialSeed(): bigint {
    return this.seedValue;
  }

  /**
   * Standard-normal values, like `torch.randn(shape, generator=g, dtype=dtype)` (default float32).
   * float32 with 16 or more elements takes the vectorised kernel (`cpuCapability`); float64/float16/
   * bfloat16 with 16 or more take torch's scalar `normal_fill<scalar_t>`; fewer than 16 elements take
   * the double Box-Muller (`normal_distribution<double>`) cast to the dtype.
   */
  randn<D extends RandomDType = "float32">(shape: Shape, dtype?: D): HostTensor<D> {
    checkShape(shape);
    const dt = checkDType(dtype);
    const n = numel(shape);
    if (dt === "float32") {
      const out = tensor("float32", shape);
      if (n >= 16) this.normalFill(out.data);
      else for (let i = 0; i < n; i++) out.data[i] = this.scalarNormal();
      return out as HostTensor<D>;
    }
    const values = new Float64Array(n);
    if (n >= 16) this.normalFillGeneric(values, dt);
    else for (let i = 0; i < n; i++) values[i] = ROUND[dt](this.scalarNormal());
    return fromValues(dt, shape, values) as HostTensor<D>;
  }

  /**
   * Uniform values in [0, 1), like `torch.rand(shape, generator=g, dtype=dtype)` (default float32):
   * `uniform_real_distribution<T>` = (bits & (2^digits - 1)) * 2^-digits with digits 24 (float32),
   * 53 (float64, from random64()), 11 (float16), 8 (bfloat16).
   */
  rand<D extends RandomDType = "float32">(shape: Shape, dtype?: D): HostTensor<D> {
    checkShape(shape);
    const dt = checkDType(dtype);
    const n = numel(shape);
    if (dt === "float32") {
      const out = tensor("float32", shape);
      for (let i = 0; i < n; i++) out.data[i] = this.uniformFloat();
      return out as HostTensor<D>;
    }
    const values = new Float64Array(n);
    for (let i = 0; i < n; i++) values[i] = this.uniformOf(dt);
    return fromValues(dt, shape, values) as HostTensor<D>;
  }

  /**
   * Integers in [low, high), like `torch.randint(low, high, shape, generator=g)` (int64):
   * `uniform_int_from_to_distribution` = (draw % (high - low)) + low, the draw being random64() when
   * the range is 2^32 or more, else one 32-bit random().
   */
  randint(low: number | bigint, high: number | bigint, shape: Shape): HostTensor<"int64"> {
    checkShape(shape);
    const lo = BigInt(low);
    const range = BigInt(high) - lo;
    if (range <= 0n || lo < -(2n ** 63n) || BigInt(high) > 2n ** 63n) {
      throw new InvalidArgumentError("randint range", "low < high within int64", `[${low}, ${high})`);
    }
    const out = tensor("int64", shape);
    const wide = range >= 2n ** 32n;
    for (let i = 0; i < out.data.length; i++) {
      let draw: bigint;
      if (wide) {
        const hi = BigInt(this.engine.nextUint32());
        draw = (hi << 32n) | BigInt(this.engine.nextUint32());
      } else draw = BigInt(this.engine.nextUint32());
      out.data[i] = BigInt.asIntN(64, (draw % range) + lo);
    }
    return out;
  }

  /** `uniform_real_distribution<T>(0, 1)` for a dtype other than float32. */
  private uniformOf(dtype: Exclude<RandomDType, "float32">): number {
    if (dtype === "float64") return this.uniformDouble();
    const digits = dtype === "float16" ? 11 : 8;
    return (this.engine.nextUint32() & (2 ** digits - 1)) / 2 ** digits;
  }

  /**
   * `normal_fill<scalar_t>` + `normal_fill_16<scalar_t>` (mean 0, std 1) for float64/float16/bfloat16:
   * uniforms for every element, Box-Muller per 16-block on the pairs (j, j + 8), the ragged tail
   * redrawn. For float16/bfloat16 u1, radius and theta are stored in the dtype (c10::Half arithmetic
   * goes through float: logf/sqrtf/cosf/sinf), the outputs rounded float -> dtype.
   */
  private normalFillGeneric(data: Float64Array, dtype: Exclude<RandomDType, "float32">): void {
    const size = data.length;
    for (let i = 0; i < size; i++) data[i] = this.uniformOf(dtype);
    const block = dtype === "float64" ? normalFill16Double : normalFill16Reduced(ROUND[dtype]);
    for (let i = 0; i + 16 <= size; i += 16) block(data, i);
    if (size % 16 !== 0) {
      const start = size - 16;
      for (let i = 0; i < 16; i++) data[start + i] = this.uniformOf(dtype);
      block(data, start);
    }
  }

  /** `uniform_real_distribution<float>(0, 1)`: 24 random bits scaled by 2^-24 (exact in float32). */
  private uniformFloat(): number {
    return (this.engine.nextUint32() & (TWO_POW_24 - 1)) / TWO_POW_24;
  }

  /** `uniform_real_distribution<double>(0, 1)`: the low 53 bits of random64() scaled by 2^-53. */
  private uniformDouble(): number {
    const hi = this.engine.nextUint32();
    const lo = this.engine.nextUint32();
    return ((hi % TWO_POW_21) * 2 ** 32 + lo) / TWO_POW_53;
  }

  /** `normal_distribution<double>` (mean 0, std 1): Box-Muller in double, second value cached. */
  private scalarNormal(): number {
    if (this.cachedNormal !== undefined) {
      const cached = this.cachedNormal;
      this.cachedNormal = undefined;
      return cached;
    }
    const u1 = this.uniformDouble();
    const u2 = this.uniformDouble();
    const r = Math.sqrt(-2 * Math.log(1 - u2));
    const theta = 2 * Math.PI * u1;
    this.cachedNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** `normal_fill`: uniforms for every element, Box-Muller per 16-block, the ragged tail redrawn. */
  private normalFill(data: Float32Array): void {
    const size = data.length;
    for (let i = 0; i < size; i++) data[i] = this.uniformFloat();
    for (let i = 0; i + 16 <= size; i += 16) this.fill16(data, i);
    if (size % 16 !== 0) {
      const start = size - 16;
      for (let i = 0; i < 16; i++) data[start + i] = this.uniformFloat();
      this.fill16(data, start);
    }
  }
}

const fround = Math.fround;

function checkDType(dtype: RandomDType | undefined): RandomDType {
  const dt = dtype ?? "float32";
  if (!RANDOM_DTYPES.includes(dt)) {
    throw new InvalidArgumentError("dtype", RANDOM_DTYPES.map((d) => `"${d}"`).join(", "), dtype);
  }
  return dt;
}

/** Rounds a number to a dtype's value set (double -> float -> half/bfloat16, as static_cast does). */
const ROUND: Record<Exclude<RandomDType, "float32">, (x: number) => number> = {
  float64: (x) => x,
  float16: (x) => float16BitsToNumber(numberToFloat16Bits(x)),
  bfloat16: (x) => bfloat16BitsToNumber(numberToBfloat16Bits(x)),
};

function fromValues(
  dtype: Exclude<RandomDType, "float32">,
  shape: Shape,
  values: Float64Array,
): HostTensor<Exclude<RandomDType, "float32">> {
  if (dtype === "float64") return tensor("float64", shape, values);
  const toBits = dtype === "float16" ? numberToFloat16Bits : numberToBfloat16Bits;
  const bits = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) bits[i] = toBits(values[i] ?? 0);
  return tensor(dtype, shape, bits);
}

/** `normal_fill_16<double>`: Box-Muller in double, theta = 2 * pi * u2. */
function normalFill16Double(data: Float64Array, offset: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = 1 - (data[offset + j] ?? 0);
    const u2 = data[offset + j + 8] ?? 0;
    const radius = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    data[offset + j] = radius * Math.cos(theta) + 0;
    data[offset + j + 8] = radius * Math.sin(theta) + 0;
  }
}

/** `normal_fill_16<c10::Half / c10::BFloat16>`: float maths, u1/radius/theta/outputs stored in the dtype. */
function normalFill16Reduced(round: (x: number) => number): (data: Float64Array, offset: number) => void {
  return (data, offset) => {
    for (let j = 0; j < 8; j++) {
      const u1 = round(1 - (data[offset + j] ?? 0));
      const u2 = data[offset + j + 8] ?? 0;
      const radius = round(fround(Math.sqrt(fround(-2 * fround(Math.log(u1))))));
      const theta = round(2 * Math.PI * u2);
      const cos = fround(Math.cos(theta));
      const sin = fround(Math.sin(theta));
      data[offset + j] = round(fround(radius * cos) + 0);
      data[offset + j + 8] = round(fround(radius * sin) + 0);
    }
  };
}

const TWO_PI_F32 = fround(2 * Math.PI);

/** `normal_fill_16_AVX2` (mean 0, std 1): Box-Muller on the pairs (j, j + 8) of one 16-block. */
function normalFill16Avx2(data: Float32Array, offset: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = fround(1 - (data[offset + j] ?? 0)); // [0, 1) -> (0, 1] for the log
    const u2 = data[offset + j + 8] ?? 0;
    const radius = fround(Math.sqrt(fround(-2 * log256(u1))));
    const [sin, cos] = sincos256(fround(TWO_PI_F32 * u2));
    data[offset + j] = fround(radius * cos) + 0;
    data[offset + j + 8] = fround(radius * sin) + 0;
  }
}

/** `normal_fill_16` (portable kernel): libm logf/cosf/sinf, theta = float(2 * pi_double * u2). */
function normalFill16Default(data: Float32Array, offset: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = fround(1 - (data[offset + j] ?? 0));
    const u2 = data[offset + j + 8] ?? 0;
    const radius = fround(Math.sqrt(fround(-2 * fround(Math.log(u1)))));
    const theta = fround(2 * Math.PI * u2);
    data[offset + j] = fround(radius * fround(Math.cos(theta))) + 0;
    data[offset + j + 8] = fround(radius * fround(Math.sin(theta))) + 0;
  }
}

/** One-shot convenience: `randn(shape, {seed})` = a fresh generator seeded with `seed`. */
export function randn(
  shape: Shape,
  options: TorchGeneratorOptions & { readonly seed: TorchSeed },
): HostTensor<"float32"> {
  return new TorchGenerator(options.seed, options).randn(shape);
}

/** One-shot convenience: `rand(shape, {seed})` = a fresh generator seeded with `seed`. */
export function rand(
  shape: Shape,
  options: TorchGeneratorOptions & { readonly seed: TorchSeed },
): HostTensor<"float32"> {
  return new TorchGenerator(options.seed, options).rand(shape);
}
