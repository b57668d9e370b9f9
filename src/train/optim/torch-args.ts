/**
 * Python-side settings of a reference run -> the optimisers and schedules of this folder, for code
 * that replays one (the optimizer conformance fixtures): torch 1.13's optimiser constructor keywords
 * (pytorch torch/optim/adam.py, adamw.py, sgd.py) and diffusers 0.26.3 `get_scheduler` calls
 * (src/diffusers/optimization.py). A keyword or value we do not implement is refused with an
 * UnsupportedError, never ignored; an absent or None keyword takes torch's / diffusers' default.
 */
import { InvalidArgumentError, UnsupportedError } from "../../errors.js";
import { Adam, AdamW } from "./adam.js";
import type { Optimizer } from "./optimizer.js";
import {
  GET_SCHEDULER_NAMES,
  type GetSchedulerName,
  type ScheduleOptions,
  learningRateSchedule,
} from "./schedules.js";
import { SGD } from "./sgd.js";

/** A Python literal: str, int / float, bool or None. */
export type PyValue = number | string | boolean | null;

/** torch 1.13 constructor keywords of each class (besides params). */
export const TORCH_OPTIMIZER_ARGS: Readonly<Record<string, readonly string[]>> = {
  Adam: [
    "lr",
    "betas",
    "eps",
    "weight_decay",
    "amsgrad",
    "maximize",
    "foreach",
    "capturable",
    "differentiable",
    "fused",
  ],
  AdamW: ["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "capturable"],
  SGD: ["lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize", "foreach", "differentiable"],
};

/**
 * Flags that choose another implementation path. `foreach` (the multi-tensor path) does the same
 * float32 operations per element and is accepted; these are refused when true: capturable and
 * fused need CUDA, differentiable keeps the step count as a float32 tensor (other rounding).
 */
const REFUSED_WHEN_TRUE = ["capturable", "differentiable", "fused"] as const;

/**
 * `torch.optim.<className>(params, **kwargs)` as one of our optimisers, and its lr. Defaults are
 * torch's: lr 1e-3 (Adam, AdamW; SGD's is required), betas (0.9, 0.999), eps 1e-8, weight_decay
 * 0.01 for AdamW and 0 otherwise, momentum / dampening 0, every flag False.
 */
export function torchOptimizer(
  className: unknown,
  kwargs: Readonly<Record<string, unknown>>,
): { optimizer: Optimizer; lr: number } {
  const known = typeof className === "string" ? TORCH_OPTIMIZER_ARGS[className] : undefined;
  if (!known)
    throw new UnsupportedError(`optimizer class ${JSON.stringify(className)}`, {
      hint: `supported: ${Object.keys(TORCH_OPTIMIZER_ARGS).join(", ")}`,
    });
  const cls = className as string;
  const unknown = Object.keys(kwargs).filter((k) => !known.includes(k));
  if (unknown.length > 0)
    throw new UnsupportedError(`${cls} arguments ${unknown.join(", ")}`, {
      hint: `torch 1.13 ${cls} takes ${known.join(", ")}`,
    });
  const number = (key: string): number | undefined => {
    const v = kwargs[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number") throw new InvalidArgumentError(`${cls} ${key}`, "a number", v);
    return v;
  };
  const flag = (key: string): boolean => {
    const v = kwargs[key];
    if (v === undefined || v === null) return false;
    if (typeof v !== "boolean") throw new InvalidArgumentError(`${cls} ${key}`, "true or false", v);
    return v;
  };
  for (const key of REFUSED_WHEN_TRUE) if (flag(key)) throw new UnsupportedError(`${cls}(${key}=True)`);
  flag("foreach");
  const weightDecay = number("weight_decay");
  const maximize = flag("maximize");
  if (cls === "SGD") {
    const lr = number("lr");
    if (lr === undefined) throw new InvalidArgumentError("SGD lr", "a number (torch requires it)", kwargs.lr);
    const momentum = number("momentum");
    const dampening = number("dampening");
    const optimizer = new SGD({
      lr,
      ...(momentum === undefined ? {} : { momentum }),
      ...(dampening === undefined ? {} : { dampening }),
      ...(weightDecay === undefined ? {} : { weightDecay }),
      nesterov: flag("nesterov"),
      maximize,
    });
    return { optimizer, lr };
  }
  const lr = number("lr") ?? 1e-3;
  const betas = kwargs.betas ?? [0.9, 0.999];
  const [beta1, beta2] = Array.isArray(betas) ? (betas as unknown[]) : [];
  if (!(Array.isArray(betas) && betas.length === 2 && typeof beta1 === "number" && typeof beta2 === "number"))
    throw new InvalidArgumentError(`${cls} betas`, "two numbers", betas);
  const eps = number("eps");
  const options = {
    lr,
    betas: [beta1, beta2] as const,
    ...(eps === undefined ? {} : { eps }),
    // absent: the class default (AdamW 0.01, Adam 0)
    ...(weightDecay === undefined ? {} : { weightDecay }),
    amsgrad: flag("amsgrad"),
    maximize,
  };
  return { optimizer: cls === "AdamW" ? new AdamW(options) : new Adam(options), lr };
}

/** A diffusers get_scheduler call: the schedule name and its keyword arguments. */
export interface GetSchedulerCall {
  readonly name: GetSchedulerName;
  readonly kwargs: Readonly<Record<string, PyValue>>;
}

/** get_scheduler's parameters after (name, optimizer), in order (diffusers 0.26.3). */
const GET_SCHEDULER_ARGS = [
  "step_rules",
  "num_warmup_steps",
  "num_training_steps",
  "num_cycles",
  "power",
  "last_epoch",
] as const;

/** A Python literal in a call: a quoted string, a number, None, True or False. */
function pyLiteral(text: string, call: string): PyValue {
  const t = text.trim();
  const quoted = /^(['"])(.*)\1$/s.exec(t);
  if (quoted) return quoted[2] ?? "";
  if (t === "None") return null;
  if (t === "True" || t === "False") return t === "True";
  if (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(t)) return Number(t);
  throw new UnsupportedError(`argument ${t} of lr scheduler call "${call}"`, {
    hint: "arguments must be literals (strings, numbers, None, True, False)",
  });
}

/**
 * The get_scheduler call in `text`, e.g. "diffusers.optimization.get_scheduler('cosine', optimizer,
 * num_warmup_steps=2, num_training_steps=5)", with keyword or positional arguments.
 */
export function parseGetSchedulerCall(text: string): GetSchedulerCall {
  const m = /get_scheduler\(((?:'[^']*'|"[^"]*"|[^()'"])*)\)/.exec(text);
  const args = [...(m?.[1] ?? "").matchAll(/(?:'[^']*'|"[^"]*"|[^,'"])+/g)].map((a) => a[0].trim());
  const kwargs: Record<string, PyValue> = {};
  let name: PyValue | undefined;
  args.forEach((arg, i) => {
    const kw = /^(\w+)\s*=(.*)$/s.exec(arg);
    if (kw) {
      if (kw[1] === "name") name = pyLiteral(kw[2] ?? "", text);
      else if (kw[1] !== "optimizer") kwargs[kw[1] ?? ""] = pyLiteral(kw[2] ?? "", text);
    } else if (i === 0) name = pyLiteral(arg, text);
    else if (i >= 2) kwargs[GET_SCHEDULER_ARGS[i - 2] ?? `argument ${i}`] = pyLiteral(arg, text);
  });
  if (!m || !GET_SCHEDULER_NAMES.includes(name as GetSchedulerName))
    throw new UnsupportedError(`lr scheduler call "${text}"`, {
      hint: `diffusers get_scheduler with one of ${GET_SCHEDULER_NAMES.join(", ")}`,
    });
  return { name: name as GetSchedulerName, kwargs };
}

/**
 * lr(step) of a get_scheduler call (LambdaLR: baseLr times the schedule's factor). Each schedule
 * reads the arguments get_scheduler passes it; lr_end (polynomial, its own function's keyword) is
 * read too. Any other keyword, or last_epoch other than -1, is refused.
 */
export function getSchedulerLr(call: GetSchedulerCall, baseLr: number): (step: number) => number {
  const k = call.kwargs;
  const known: readonly string[] = [...GET_SCHEDULER_ARGS, "lr_end"];
  const unknown = Object.keys(k).filter(
    (key) => !known.includes(key) || (key === "last_epoch" && k[key] !== -1 && k[key] !== null),
  );
  if (unknown.length > 0)
    throw new UnsupportedError(`get_scheduler('${call.name}') arguments ${unknown.join(", ")}`, {
      hint: `supported: ${known.join(", ")} (last_epoch -1 only)`,
    });
  const number = (key: string): number | undefined => {
    const v = k[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number") throw new InvalidArgumentError(`get_scheduler ${key}`, "a number", v);
    return v;
  };
  const option = <K extends keyof ScheduleOptions>(
    key: K,
    value: ScheduleOptions[K] | undefined,
  ): Partial<ScheduleOptions> => (value === undefined ? {} : { [key]: value });
  const options: ScheduleOptions = {
    ...option("numWarmupSteps", number("num_warmup_steps")),
    ...option("numTrainingSteps", number("num_training_steps")),
    ...option("numCycles", number("num_cycles")),
    ...option("power", number("power")),
    ...option("lrEnd", number("lr_end")),
    ...option("stepRules", typeof k.step_rules === "string" ? k.step_rules : undefined),
  };
  return learningRateSchedule(call.name, baseLr, options);
}
