/**
 * `--only device --device webgpu|cuda`: the full-size SD-1.5 components (random weights) on another
 * ONNX Runtime execution provider, each checked against the CPU provider on the same inputs and
 * timed on both:
 *
 * - text encoder (batch 2), UNet steps at each --size (CFG batch 2), VAE decode at 512²:
 *   max abs error, relative L2 error ‖device − cpu‖ / ‖cpu‖, seconds per call (device: warm-up +
 *   median of --runs; CPU: one warm call after a warm-up, since the CPU part is only the reference);
 * - the UNet with cross-frame attention (`first-and-previous`, 4 frames x CFG 2) against the same
 *   UNet without it on the device: the cost ratio issue 7 asks about, on this provider;
 * - a --steps (20) 512² text-to-image through `textToImage` with every component on the device;
 * - where the nodes ran: one profiled UNet run (ORT's profile names each node's provider), so the
 *   report lists the op types the device provider left to the CPU.
 *
 * The provider must work: no fallback to the CPU is allowed (the report would be meaningless).
 * Everything runs in this one process (no child processes), so the part can run from a bundle.
 */
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import ort from "onnxruntime-node";
import { CLIPTextModel } from "../src/models/clip/clip-text-model.js";
import { loadUNet2DConditionModel } from "../src/models/unet/runner.js";
import type { CrossFrameSetting } from "../src/models/unet/build.js";
import { AutoencoderKL } from "../src/models/vae/autoencoder-kl.js";
import { randomWeights } from "../src/nn/weight-store.js";
import { textToImage } from "../src/pipeline/text-to-image.js";
import { toOrtTensor } from "../src/runtime/ort-tensor.js";
import type { ExecutionProvider } from "../src/runtime/session.js";
import { fromConfig } from "../src/schedulers/registry.js";
import { type HostTensor, tensor } from "../src/tensor.js";
import { type Placement, summarisePlacement } from "./profile.js";
import { SD15_SCHEDULER, SD15_TEXT_ENCODER, SD15_VAE, tokenize } from "./sd15-components.js";
import { type StepTimes, log, round, timeSteps, timed } from "./stats.js";
import { CFG_BATCH, TEXT_LENGTH, sd15Config } from "./unet.js";

export interface DeviceBenchOptions {
  /** The provider checked against the CPU ("cpu" itself: a dry run of this part). */
  readonly device: ExecutionProvider;
  readonly imageSizes: readonly number[];
  readonly runs: number;
  readonly steps: number;
  readonly threads: number;
  /** Folder for the written models (the caller removes it). */
  readonly dir: string;
}

/** How far the device's output is from the CPU's on the same inputs. */
export interface Agreement {
  readonly maxAbsError: number;
  /** ‖device − cpu‖₂ / ‖cpu‖₂. */
  readonly relativeL2Error: number;
  /** Largest |cpu| value (the scale the max abs error is read against). */
  readonly cpuMaxAbs: number;
  readonly finite: boolean;
}

export interface ComponentReport {
  readonly component: string;
  readonly input: string;
  readonly agreement: Agreement;
  readonly device: StepTimes;
  readonly cpuSeconds: number;
  /** cpuSeconds / device median. */
  readonly speedup: number;
}

export function agreement(device: Float32Array, cpu: Float32Array): Agreement {
  if (device.length !== cpu.length)
    throw new Error(`output sizes differ: device ${device.length}, cpu ${cpu.length} elements`);
  let maxAbs = 0;
  let diff2 = 0;
  let ref2 = 0;
  let refMax = 0;
  let finite = true;
  for (let i = 0; i < cpu.length; i++) {
    const d = device[i] ?? Number.NaN;
    const c = cpu[i] ?? Number.NaN;
    if (!Number.isFinite(d) || !Number.isFinite(c)) {
      finite = false;
      continue;
    }
    const e = Math.abs(d - c);
    if (e > maxAbs) maxAbs = e;
    diff2 += e * e;
    ref2 += c * c;
    if (Math.abs(c) > refMax) refMax = Math.abs(c);
  }
  return {
    maxAbsError: round(maxAbs, 8),
    relativeL2Error: ref2 > 0 ? round(Math.sqrt(diff2 / ref2), 8) : Number.NaN,
    cpuMaxAbs: round(refMax, 6),
    finite,
  };
}

/** Deterministic values in [-scale, scale) (a fixed LCG: both providers get the same inputs). */
function randomData(n: number, seed: number, scale = 1): Float32Array {
  const data = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 2 ** 32) * 2 * scale - scale;
  }
  return data;
}

function floats(t: HostTensor): Float32Array {
  if (!(t.data instanceof Float32Array)) throw new Error(`expected a float32 output, got ${t.dtype}`);
  return t.data;
}

/** Runs `call` on both providers' models: device warm-up + runs, CPU warm-up + 1, and compares. */
async function compareCall(
  component: string,
  input: string,
  runs: number,
  device: () => Promise<HostTensor>,
  cpu: () => Promise<HostTensor>,
): Promise<ComponentReport> {
  let deviceOut: HostTensor | undefined;
  const deviceTimes = await timeSteps(`${component} ${input} (device)`, runs, async () => {
    deviceOut = await device();
  });
  let cpuOut: HostTensor | undefined;
  const cpuTimes = await timeSteps(`${component} ${input} (cpu)`, 1, async () => {
    cpuOut = await cpu();
  });
  if (deviceOut === undefined || cpuOut === undefined) throw new Error(`${component}: no output`);
  const a = agreement(floats(deviceOut), floats(cpuOut));
  log(`${component} ${input}: max abs error ${a.maxAbsError}, relative L2 ${a.relativeL2Error}`);
  return {
    component,
    input,
    agreement: a,
    device: deviceTimes,
    cpuSeconds: cpuTimes.medianSeconds,
    speedup: round(cpuTimes.medianSeconds / deviceTimes.medianSeconds, 2),
  };
}

/** One profiled run of the model at `modelPath` on the device: which provider ran each node. */
async function placement(
  modelPath: string,
  device: string,
  feeds: Record<string, HostTensor>,
  dir: string,
): Promise<Placement> {
  const profileDir = join(dir, "profile");
  await mkdir(profileDir, { recursive: true });
  const session = await ort.InferenceSession.create(modelPath, {
    executionProviders: [device],
    logSeverityLevel: 3,
    enableProfiling: true,
    profileFilePrefix: join(profileDir, "device"),
  });
  try {
    await session.run(Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, toOrtTensor(t)])));
    session.endProfiling();
  } finally {
    await session.release();
  }
  const files = (await readdir(profileDir)).filter((f) => f.endsWith(".json")).sort();
  const last = files[files.length - 1];
  if (last === undefined) throw new Error("ORT wrote no profile file");
  return summarisePlacement(join(profileDir, last), device);
}

export async function benchDevice(options: DeviceBenchOptions): Promise<Record<string, unknown>> {
  const { device, runs } = options;
  const cacheDir = join(options.dir, "models");
  const on = (p: ExecutionProvider) => ({
    executionProviders: [p] as const,
    intraOpNumThreads: options.threads,
    cacheDir,
  });
  const components: ComponentReport[] = [];
  const loads: Record<string, number> = {};
  const load = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const { seconds, result } = await timed(fn);
    loads[name] = round(seconds, 2);
    log(`${name}: loaded in ${seconds.toFixed(1)} s`);
    return result;
  };

  // Text encoder.
  const textSource = { config: SD15_TEXT_ENCODER, store: randomWeights({ seed: 1 }) };
  const ids = new BigInt64Array(CFG_BATCH * TEXT_LENGTH).fill(49407n);
  for (let b = 0; b < CFG_BATCH; b++) {
    ids[b * TEXT_LENGTH] = 49406n;
    for (let i = 1; i < 9; i++) ids[b * TEXT_LENGTH + i] = BigInt(1000 + 37 * i + b);
  }
  const idTensor = tensor("int64", [CFG_BATCH, TEXT_LENGTH], ids);
  {
    const dev = await load("text encoder (device)", () => CLIPTextModel.load(textSource, on(device)));
    const cpu = await load("text encoder (cpu)", () => CLIPTextModel.load(textSource, on("cpu")));
    components.push(
      await compareCall(
        "text encoder",
        `ids [${CFG_BATCH}, ${TEXT_LENGTH}]`,
        runs,
        async () => (await dev.encode(idTensor)).promptEmbeds,
        async () => (await cpu.encode(idTensor)).promptEmbeds,
      ),
    );
    await dev.release();
    await cpu.release();
  }

  // UNet steps.
  const config = sd15Config();
  const unetSource = { config, store: randomWeights({ seed: 0 }) };
  const context = tensor(
    "float32",
    [CFG_BATCH, TEXT_LENGTH, 768],
    randomData(CFG_BATCH * TEXT_LENGTH * 768, 7),
  );
  const unetDev = await load("unet (device)", () => loadUNet2DConditionModel(unetSource, on(device)));
  const unetCpu = await load("unet (cpu)", () => loadUNet2DConditionModel(unetSource, on("cpu")));
  let placementReport: Placement | { result: null; reason: string } = { result: null, reason: "not run" };
  for (const size of [...options.imageSizes].sort((a, b) => a - b)) {
    const latent = size / 8;
    const sample = tensor(
      "float32",
      [CFG_BATCH, 4, latent, latent],
      randomData(CFG_BATCH * 4 * latent * latent, 11 + size),
    );
    const inputs = { sample, timestep: 500, encoderHiddenStates: context };
    components.push(
      await compareCall(
        "unet",
        `${size}x${size}, batch ${CFG_BATCH}`,
        runs,
        () => unetDev.forward(inputs),
        () => unetCpu.forward(inputs),
      ),
    );
    if (size === Math.min(...options.imageSizes)) {
      try {
        placementReport = await placement(
          unetDev.modelPath,
          device,
          {
            sample,
            timestep: tensor("float32", [CFG_BATCH], new Float32Array(CFG_BATCH).fill(500)),
            encoder_hidden_states: context,
          },
          options.dir,
        );
        log(`unet placement: ${JSON.stringify(placementReport)}`);
      } catch (error) {
        placementReport = { result: null, reason: error instanceof Error ? error.message : String(error) };
      }
    }
  }
  await unetCpu.release();

  // Cross-frame attention (first + previous frame) against per-frame attention, on the device.
  const crossFrame = await crossFrameRatio(options, unetDev, on(device), context, load);

  // VAE decode at 512².
  {
    const vaeSource = { config: SD15_VAE, store: randomWeights({ seed: 2 }) };
    const dev = await load("vae (device)", () => AutoencoderKL.load(vaeSource, on(device)));
    const cpu = await load("vae (cpu)", () => AutoencoderKL.load(vaeSource, on("cpu")));
    const z = tensor("float32", [1, 4, 64, 64], randomData(4 * 64 * 64, 5));
    components.push(
      await compareCall(
        "vae decode",
        "512x512, batch 1",
        runs,
        () => dev.decode(z),
        () => cpu.decode(z),
      ),
    );
    await dev.release();
    await cpu.release();
  }

  const pipeline = await pipelineOnDevice(options, unetDev, on(device), load);
  await unetDev.release();
  return {
    device,
    note: "CPU reference: same process, same inputs; device times: warm-up + median of --runs",
    loadSeconds: loads,
    components,
    placement: placementReport,
    crossFrame,
    pipeline,
  };
}

type LoadOn = {
  readonly executionProviders: readonly [ExecutionProvider];
  readonly intraOpNumThreads: number;
  readonly cacheDir: string;
};
type Loader = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

async function crossFrameRatio(
  options: DeviceBenchOptions,
  perFrame: Awaited<ReturnType<typeof loadUNet2DConditionModel>>,
  loadOn: LoadOn,
  context: HostTensor,
  load: Loader,
): Promise<Record<string, unknown>> {
  const frames = 4;
  const size = Math.max(...options.imageSizes);
  const latent = size / 8;
  const batch = frames * CFG_BATCH;
  // Two videos (unconditional, conditional) of `frames` frames each, as the video engine lays out CFG.
  const setting: CrossFrameSetting = { batchSize: CFG_BATCH, mode: "first-and-previous" };
  const unet = await load("unet first+previous (device)", () =>
    loadUNet2DConditionModel(
      { config: sd15Config(), store: randomWeights({ seed: 0 }) },
      {
        ...loadOn,
        crossFrame: setting,
      },
    ),
  );
  const ctx = context.data instanceof Float32Array ? context.data : new Float32Array();
  const contextBatch = new Float32Array(batch * TEXT_LENGTH * 768);
  for (let b = 0; b < batch; b++)
    contextBatch.set(
      ctx.subarray(
        Math.floor(b / frames) * TEXT_LENGTH * 768,
        (Math.floor(b / frames) + 1) * TEXT_LENGTH * 768,
      ),
      b * TEXT_LENGTH * 768,
    );
  const inputs = {
    sample: tensor("float32", [batch, 4, latent, latent], randomData(batch * 4 * latent * latent, 23)),
    timestep: 500,
    encoderHiddenStates: tensor("float32", [batch, TEXT_LENGTH, 768], contextBatch),
  };
  const plain = await timeSteps(`unet per-frame ${size}, batch ${batch} (device)`, options.runs, () =>
    perFrame.forward(inputs),
  );
  const cross = await timeSteps(`unet first+previous ${size}, batch ${batch} (device)`, options.runs, () =>
    unet.forward(inputs),
  );
  await unet.release();
  return {
    imageSize: size,
    frames,
    batch,
    perFrame: plain,
    firstAndPrevious: cross,
    ratio: round(cross.medianSeconds / plain.medianSeconds, 3),
  };
}

async function pipelineOnDevice(
  options: DeviceBenchOptions,
  unet: Awaited<ReturnType<typeof loadUNet2DConditionModel>>,
  loadOn: LoadOn,
  load: Loader,
): Promise<Record<string, unknown>> {
  const textEncoder = await load("pipeline text encoder", () =>
    CLIPTextModel.load({ config: SD15_TEXT_ENCODER, store: randomWeights({ seed: 1 }) }, loadOn),
  );
  const vae = await load("pipeline vae", () =>
    AutoencoderKL.load({ config: SD15_VAE, store: randomWeights({ seed: 2 }) }, loadOn),
  );
  const stepSeconds: number[] = [];
  let last = performance.now();
  const { seconds } = await timed(() =>
    textToImage(
      {
        tokenizer: { tokenize },
        textEncoder: { encode: async (i, o) => (await textEncoder.encode(i, o ?? {})).promptEmbeds },
        unet: { forward: (inputs) => unet.forward(inputs) },
        vae: { scalingFactor: vae.scalingFactor, decode: (z) => vae.decode(z) },
        scheduler: fromConfig("DDIMScheduler", SD15_SCHEDULER),
        vaeScaleFactor: 8,
        latentChannels: 4,
      },
      {
        prompt: "a photograph of an astronaut riding a horse",
        width: 512,
        height: 512,
        numInferenceSteps: options.steps,
        guidanceScale: 7.5,
        seed: 0,
        onProgress: (e) => {
          if (e.status !== "progress") return;
          const now = performance.now();
          stepSeconds.push(round((now - last) / 1000));
          last = now;
        },
      },
    ),
  );
  await textEncoder.release();
  await vae.release();
  log(`pipeline: ${options.steps} steps at 512x512 in ${seconds.toFixed(2)} s (sessions open)`);
  return {
    imageSize: 512,
    steps: options.steps,
    scheduler: "DDIMScheduler",
    guidanceScale: 7.5,
    runSeconds: round(seconds),
    progressIntervals: stepSeconds,
  };
}
