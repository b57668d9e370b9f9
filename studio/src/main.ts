/**
 * Steadyframe Studio, the page: pick or upload a clip, pick a model, preview control maps, choose
 * strategies, render (frames arrive live over server-sent events), cancel, browse the history of runs
 * and compare them side by side with the study's metrics. Plain DOM (./dom.ts), no framework.
 */
import "./style.css";
import type {
  ApiClipInfo,
  ApiComparison,
  ApiError,
  ApiEvent,
  ApiJob,
  ApiRun,
  ApiState,
  ApiStrategy,
  PreviewResponse,
  RenderRequest,
} from "../../src/studio/api.js";
import { getJson, postJson, toApiError, upload } from "./client.js";
import { $, fill, field, h, numberInput, select } from "./dom.js";
import { Viewer } from "./viewer.js";

let state: ApiState | undefined;
let clip: ApiClipInfo | undefined;
const strategies: ApiStrategy[] = [];
const jobs = new Map<string, ApiJob>();
let runs: ApiRun[] = [];
const viewer = new Viewer();

// ---------------------------------------------------------------- errors and busy states

function showError(e: unknown): void {
  const error: ApiError = toApiError(e);
  const box = $("error");
  fill(
    box,
    h("strong", { class: "message" }, error.message),
    error.hint ? h("p", { class: "hint" }, error.hint) : null,
    h("button", { type: "button", class: "quiet", onclick: () => (box.hidden = true) }, "Dismiss"),
  );
  box.hidden = false;
}

/** Runs a long action with a busy indicator next to its button; errors are shown in words. */
async function busy(button: HTMLButtonElement, label: string, work: () => Promise<void>): Promise<void> {
  const before = button.textContent ?? "";
  const bar = h("progress", { class: "busy", "aria-label": label });
  button.disabled = true;
  button.textContent = label;
  button.after(bar);
  try {
    await work();
  } catch (e) {
    showError(e);
  } finally {
    bar.remove();
    button.disabled = false;
    button.textContent = before;
  }
}

const value = (id: string): string => $<HTMLInputElement>(id).value;
const num = (id: string): number => Number(value(id));

// ---------------------------------------------------------------- layout

function layout(): void {
  const app = $("app");
  fill(
    app,
    h(
      "header",
      {},
      h("h1", {}, "Steadyframe Studio"),
      h("span", { id: "status", class: "status" }, "connecting…"),
    ),
    h("div", { id: "error", class: "error", role: "alert", hidden: true }),
    h(
      "main",
      { class: "columns" },
      h(
        "section",
        { id: "setup" },
        h("h2", {}, "1 · Clip"),
        h(
          "div",
          { class: "row" },
          field("Open", select("clip-select", [])),
          field(
            "or upload",
            h("input", { id: "clip-upload", type: "file", accept: "video/*,.mp4,.webm,.mov,.mkv,.gif,.m4v" }),
          ),
        ),
        h("progress", { id: "upload-progress", max: "1", value: "0", hidden: true }),
        h(
          "p",
          { id: "clip-info", class: "note" },
          "No clip yet: upload one or put videos in the clips folder.",
        ),
        h("h2", {}, "2 · Model"),
        h(
          "div",
          { class: "row" },
          field("Model folder", select("model-select", [])),
          field("ControlNet", select("controlnet-select", [])),
          field("Control map", select("control-select", ["canny"])),
        ),
        h("h2", {}, "3 · Control maps"),
        h(
          "div",
          { class: "row" },
          field("Frame", numberInput("preview-frame", 0, 0, 100000)),
          field("Width", numberInput("width", 512, 8, 2048, 8)),
          field("Height", numberInput("height", 512, 8, 2048, 8)),
          field("Canny low", numberInput("canny-low", 100, 0, 1000)),
          field("Canny high", numberInput("canny-high", 200, 0, 1000)),
          field("Flow scale (px)", numberInput("flow-scale", 12.8, 0.1, 1000, 0.1)),
        ),
        h(
          "button",
          {
            id: "preview-button",
            type: "button",
            onclick: (e: Event) => void preview(e.currentTarget as HTMLButtonElement),
          },
          "Preview control maps",
        ),
        h("div", { id: "preview-maps", class: "maps" }),
      ),
      h(
        "section",
        { id: "render" },
        h("h2", {}, "4 · Render"),
        field(
          "Prompt",
          h("textarea", { id: "prompt", rows: 2, placeholder: "a red car on a mountain road" }),
        ),
        field("Negative prompt", h("input", { id: "negative", type: "text" })),
        h(
          "div",
          { class: "row" },
          field("Frames", numberInput("frames", 16, 1, 1000)),
          field("Steps", numberInput("steps", 20, 1, 200)),
          field("Seed", h("input", { id: "seed", type: "text", value: "42", inputmode: "numeric" })),
          field("Guidance", numberInput("guidance", 7.5, 0, 50, 0.5)),
        ),
        h("h3", {}, "Strategy"),
        h("div", { class: "row", id: "strategy-row" }),
        h("div", { class: "row", id: "knobs" }),
        h(
          "div",
          { class: "row" },
          h(
            "button",
            { id: "add-strategy", type: "button", class: "quiet", onclick: addStrategy },
            "Add to the list",
          ),
          h(
            "button",
            {
              id: "render-button",
              type: "button",
              onclick: (e: Event) => void render(e.currentTarget as HTMLButtonElement),
            },
            "Render",
          ),
        ),
        h("ul", { id: "strategy-list", class: "chips" }),
        h(
          "p",
          { class: "note" },
          "Render starts one run per listed strategy (or the one selected above), one after another.",
        ),
        h("h2", {}, "Live"),
        h("div", { id: "jobs" }, h("p", { class: "note" }, "Renders and comparisons appear here.")),
      ),
      h(
        "section",
        { id: "results" },
        h("h2", {}, "History"),
        h("div", { id: "history" }),
        h(
          "button",
          {
            id: "compare-button",
            type: "button",
            onclick: (e: Event) => void compare(e.currentTarget as HTMLButtonElement),
          },
          "Compare selected",
        ),
        h("h2", {}, "Compare"),
        viewer.element,
      ),
    ),
  );
  $("clip-select").addEventListener("change", () => void openClip(value("clip-select")));
  $<HTMLInputElement>("clip-upload").addEventListener("change", () => void uploadClip());
  // Flow colours saturate at 1/40 of the long side (as `steadyframe controls` draws them) until set by hand.
  const flowScale = $<HTMLInputElement>("flow-scale");
  flowScale.addEventListener("input", () => (flowScale.dataset["touched"] = "1"));
  for (const id of ["width", "height"])
    $(id).addEventListener("input", () => {
      if (!flowScale.dataset["touched"]) flowScale.value = String(Math.max(num("width"), num("height")) / 40);
    });
}

// ---------------------------------------------------------------- state: models, clips, choices

async function loadState(): Promise<void> {
  state = await getJson<ApiState>("/api/state");
  const s = state;
  $("status").textContent = `v${s.version} · ${s.models.length} model(s) · ${s.clips.length} clip(s)`;
  $("clip-select").replaceWith(
    select("clip-select", [{ value: "", label: "— choose —" }, ...s.clips], clip?.clip ?? ""),
  );
  $("clip-select").addEventListener("change", () => void openClip(value("clip-select")));
  $("model-select").replaceWith(
    select(
      "model-select",
      s.models.length > 0 ? s.models : [{ value: "", label: "(no model folder found)" }],
    ),
  );
  $("controlnet-select").replaceWith(
    select("controlnet-select", [{ value: "", label: "none" }, ...s.controlnets], s.controlnets[0] ?? ""),
  );
  $("control-select").replaceWith(select("control-select", s.depth ? ["canny", "depth"] : ["canny"]));
  if (!$("strategy-row").firstChild) {
    fill(
      $("strategy-row"),
      field("Controls from", select("controls-from", s.choices.controlsFrom, "source")),
      field("Noise", select("noise", s.choices.noise, "shared")),
      field("Attention", select("attention", s.choices.attention, "first")),
      field("Fusion", select("fusion", s.choices.fusion, "none")),
    );
    for (const id of ["controls-from", "noise", "attention", "fusion"])
      $(id).addEventListener("change", knobs);
    knobs();
  }
}

/** The knobs of the chosen options only. */
function knobs(): void {
  const c = value("controls-from");
  const shown = [
    c === "interpolated" && field("In-between frames", numberInput("interpolate", 1, 0, 8)),
    c === "interpolated" && field("Interpolation", select("interpolate-mode", ["blend", "flow"])),
    c === "content-flow" && field("Strength", numberInput("strength", 0.6, 0.01, 1, 0.05)),
    value("noise") === "mixed" && field("Noise ratio", numberInput("noise-ratio", 0.2, 0, 1, 0.05)),
    value("attention") === "keyframes" && field("Key frames", numberInput("keyframes", 4, 1, 64)),
    value("fusion") === "flow" && field("Fusion strength", numberInput("fusion-strength", 0.8, 0, 1, 0.05)),
    value("fusion") === "flow" && field("Fusion end", numberInput("fusion-end", 0.5, 0.01, 1, 0.05)),
  ];
  fill($("knobs"), shown);
}

function currentStrategy(): ApiStrategy {
  const opt = (id: string): number | undefined => (document.getElementById(id) ? num(id) : undefined);
  const s: Record<string, unknown> = {
    controlsFrom: value("controls-from"),
    noise: value("noise"),
    attention: value("attention"),
    fusion: value("fusion"),
    interpolate: opt("interpolate"),
    interpolateMode: document.getElementById("interpolate-mode") ? value("interpolate-mode") : undefined,
    strength: opt("strength"),
    noiseRatio: opt("noise-ratio"),
    keyframes: opt("keyframes"),
    fusionStrength: opt("fusion-strength"),
    fusionEnd: opt("fusion-end"),
  };
  for (const k of Object.keys(s)) if (s[k] === undefined) delete s[k];
  return s as unknown as ApiStrategy;
}

const strategyLabel = (s: ApiStrategy): string => `${s.controlsFrom}/${s.noise}/${s.attention}/${s.fusion}`;

function addStrategy(): void {
  const s = currentStrategy();
  if (!strategies.some((x) => JSON.stringify(x) === JSON.stringify(s))) strategies.push(s);
  drawStrategies();
}

function drawStrategies(): void {
  fill(
    $("strategy-list"),
    strategies.map((s, k) =>
      h(
        "li",
        { class: "chip" },
        strategyLabel(s),
        h(
          "button",
          {
            type: "button",
            class: "quiet",
            "aria-label": `remove ${strategyLabel(s)}`,
            onclick: () => (strategies.splice(k, 1), drawStrategies()),
          },
          "×",
        ),
      ),
    ),
  );
}

// ---------------------------------------------------------------- clips

function describeClip(c: ApiClipInfo): string {
  const mb = (c.bytes / 1024 / 1024).toFixed(2);
  return `${c.clip}: ${c.width}x${c.height}, ${c.fps.toFixed(2)} fps, ${c.frames ?? "?"} frames, ${c.codec}, ${mb} MB`;
}

function useClip(c: ApiClipInfo): void {
  clip = c;
  $("clip-info").textContent = describeClip(c);
  const short = Math.min(c.width, c.height);
  const r8 = (x: number): number => Math.max(8, Math.round((x * 512) / short / 8) * 8);
  $<HTMLInputElement>("width").value = String(r8(c.width));
  $<HTMLInputElement>("height").value = String(r8(c.height));
  $("height").dispatchEvent(new Event("input"));
  $<HTMLInputElement>("frames").value = String(Math.min(c.frames ?? 16, 16));
  $<HTMLInputElement>("preview-frame").max = String((c.frames ?? 1) - 1);
}

async function openClip(name: string): Promise<void> {
  if (!name) return;
  $("clip-info").textContent = `reading ${name}…`;
  try {
    useClip(await getJson<ApiClipInfo>(`/api/clips/info?clip=${encodeURIComponent(name)}`));
  } catch (e) {
    $("clip-info").textContent = "";
    showError(e);
  }
}

async function uploadClip(): Promise<void> {
  const input = $<HTMLInputElement>("clip-upload");
  const file = input.files?.[0];
  if (!file || !state) return;
  const bar = $<HTMLProgressElement>("upload-progress");
  if (file.size > state.limits.maxUploadBytes) {
    showError({
      code: "E_INVALID_ARGUMENT",
      message: `${file.name} has ${file.size} bytes; the studio accepts uploads of at most ${state.limits.maxUploadBytes} bytes`,
      hint: "cut the clip shorter, or start the studio with a larger --max-upload-mb",
    });
    return;
  }
  bar.hidden = false;
  bar.value = 0;
  $("clip-info").textContent = `uploading ${file.name}…`;
  try {
    const info = await upload<ApiClipInfo>("/api/clips", file, (f) => (bar.value = f));
    $("clip-info").textContent = `checking ${info.clip}…`;
    await loadState();
    $<HTMLSelectElement>("clip-select").value = info.clip;
    useClip(info);
  } catch (e) {
    $("clip-info").textContent = "";
    showError(e);
  } finally {
    bar.hidden = true;
    input.value = "";
  }
}

// ---------------------------------------------------------------- control-map previews

async function preview(button: HTMLButtonElement): Promise<void> {
  if (!clip) return showError({ code: "E_PAGE", message: "choose or upload a clip first", hint: null });
  const c = clip;
  await busy(button, "Computing control maps…", async () => {
    const r = await postJson<PreviewResponse>("/api/preview", {
      clip: c.clip,
      frame: num("preview-frame"),
      width: num("width"),
      height: num("height"),
      canny: { threshold1: num("canny-low"), threshold2: num("canny-high") },
      flowScale: num("flow-scale"),
    });
    fill(
      $("preview-maps"),
      r.maps.map((m) =>
        h(
          "figure",
          { class: "map", "data-map": m.name },
          h("img", { src: m.png, alt: m.label, width: r.width, height: r.height }),
          h("figcaption", {}, h("strong", {}, m.label), h("br"), m.params),
        ),
      ),
    );
  });
}

// ---------------------------------------------------------------- renders and the live view

async function render(button: HTMLButtonElement): Promise<void> {
  if (!clip) return showError({ code: "E_PAGE", message: "choose or upload a clip first", hint: null });
  const request: RenderRequest = {
    clip: clip.clip,
    model: value("model-select"),
    controlnet: value("controlnet-select") || null,
    control: value("control-select") === "depth" ? "depth" : "canny",
    canny: { threshold1: num("canny-low"), threshold2: num("canny-high") },
    prompt: $<HTMLTextAreaElement>("prompt").value,
    negativePrompt: value("negative"),
    width: num("width"),
    height: num("height"),
    frames: num("frames"),
    steps: num("steps"),
    seed: value("seed"),
    guidanceScale: num("guidance"),
    strategies: strategies.length > 0 ? [...strategies] : [currentStrategy()],
  };
  await busy(button, "Starting…", async () => {
    await postJson<{ jobs: string[] }>("/api/renders", request);
  });
}

function bar(label: string, done: number, total: number | null, cls: string): HTMLElement {
  return h(
    "div",
    { class: `meter ${cls}` },
    h("span", {}, `${label} ${done}${total === null ? "" : `/${total}`}`),
    total === null
      ? h("progress", {})
      : h("progress", { max: String(Math.max(1, total)), value: String(done) }),
  );
}

function drawJob(job: ApiJob): void {
  const container = $("jobs");
  container.querySelector("p.note")?.remove();
  let card = container.querySelector<HTMLElement>(`.job[data-id="${CSS.escape(job.id)}"]`);
  if (!card) {
    card = h(
      "article",
      { class: "job", "data-id": job.id },
      h("div", { class: "head" }),
      h("div", { class: "meters" }),
      h("div", { class: "strip" }),
      h("div", { class: "why" }),
    );
    container.prepend(card);
  }
  const going = job.state === "queued" || job.state === "running";
  fill(
    card.querySelector(".head")!,
    h("strong", {}, job.kind === "render" ? job.title : `compare: ${job.title}`),
    h("span", { class: `badge ${job.state}` }, job.state),
    going &&
      h("button", { type: "button", class: "cancel quiet", onclick: () => void cancel(job.id) }, "Cancel"),
  );
  const meters: HTMLElement[] = [];
  if (job.state === "running") {
    if (job.kind === "render" && job.frames.total !== null) {
      meters.push(bar("frame", job.frames.done, job.frames.total, "frames"));
      meters.push(bar("step", job.steps.done, job.steps.total, "steps"));
    } else meters.push(bar(job.task ?? "working", job.done, job.total, "task"));
  }
  fill(card.querySelector(".meters")!, meters);
  const strip = card.querySelector(".strip")!;
  for (const index of job.finished) addFrame(strip, job.id, index);
  fill(
    card.querySelector(".why")!,
    job.error
      ? [
          h("strong", {}, job.error.message),
          job.error.hint ? h("p", { class: "hint" }, job.error.hint) : null,
        ]
      : [],
  );
}

function addFrame(strip: Element, id: string, index: number): void {
  if (strip.querySelector(`img[data-index="${index}"]`)) return;
  strip.append(
    h("img", {
      src: `/api/runs/${encodeURIComponent(id)}/frames/${index}`,
      alt: `frame ${index}`,
      "data-index": String(index),
      title: `frame ${index}`,
    }),
  );
}

async function cancel(id: string): Promise<void> {
  try {
    await postJson(`/api/jobs/${encodeURIComponent(id)}/cancel`, {});
  } catch (e) {
    showError(e);
  }
}

function onEvent(event: ApiEvent): void {
  if (event.type === "jobs") {
    for (const job of event.jobs) {
      jobs.set(job.id, job);
      drawJob(job);
    }
  } else if (event.type === "job") {
    const before = jobs.get(event.job.id);
    jobs.set(event.job.id, event.job);
    drawJob(event.job);
    if (event.job.state === "done" && before?.state !== "done") {
      if (event.job.kind === "render") void loadRuns();
      else void showComparison(event.job.id);
    }
  } else {
    const card = document.querySelector(`.job[data-id="${CSS.escape(event.id)}"] .strip`);
    if (card) addFrame(card, event.id, event.index);
  }
}

function connect(): void {
  const source = new EventSource("/api/events");
  source.onmessage = (m: MessageEvent<string>) => onEvent(JSON.parse(m.data) as ApiEvent);
  source.onopen = () => $("status").classList.remove("offline");
  source.onerror = () => $("status").classList.add("offline");
}

// ---------------------------------------------------------------- history and comparisons

async function loadRuns(): Promise<void> {
  try {
    runs = (await getJson<{ runs: ApiRun[] }>("/api/runs")).runs;
  } catch (e) {
    showError(e);
    return;
  }
  const selected = new Set(
    [...document.querySelectorAll<HTMLInputElement>("input.run-check:checked")].map((c) => c.value),
  );
  const sec = (s: number | null): string => (s === null ? "?" : s.toFixed(2));
  fill(
    $("history"),
    runs.length === 0
      ? h("p", { class: "note" }, "No runs yet.")
      : h(
          "table",
          { class: "runs" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["", "strategy", "clip", "size", "frames", "s/frame", "time", ""].map((t) => h("th", {}, t)),
            ),
          ),
          h(
            "tbody",
            {},
            runs.map((r) =>
              h(
                "tr",
                { "data-run": r.id },
                h(
                  "td",
                  {},
                  h("input", {
                    type: "checkbox",
                    class: "run-check",
                    value: r.id,
                    checked: selected.has(r.id),
                    "aria-label": `select ${r.id}`,
                  }),
                ),
                h("td", { title: r.prompt }, r.strategy),
                h("td", {}, r.source ?? "—"),
                h("td", {}, `${r.width}x${r.height}`),
                h("td", {}, r.frames),
                h("td", {}, sec(r.secondsPerFrame)),
                h("td", { title: `${r.id}, ${r.created}` }, r.created.slice(11, 19)),
                h(
                  "td",
                  {},
                  h(
                    "button",
                    { type: "button", class: "quiet play-run", onclick: () => viewer.show([r], undefined) },
                    "Play",
                  ),
                ),
              ),
            ),
          ),
        ),
  );
}

async function compare(button: HTMLButtonElement): Promise<void> {
  const ids = [...document.querySelectorAll<HTMLInputElement>("input.run-check:checked")].map((c) => c.value);
  if (ids.length < 2)
    return showError({
      code: "E_PAGE",
      message: "select at least two runs of the same clip and size to compare",
      hint: "tick them in the history",
    });
  await busy(button, "Starting…", async () => {
    await postJson<{ id: string }>("/api/compare", { runs: ids });
  });
}

async function showComparison(id: string): Promise<void> {
  try {
    const c = await getJson<ApiComparison>(`/api/compare/${encodeURIComponent(id)}`);
    const chosen = c.runs
      .map((r) => runs.find((x) => x.id === r))
      .filter((r): r is ApiRun => r !== undefined);
    viewer.show(chosen, c);
  } catch (e) {
    showError(e);
  }
}

// ---------------------------------------------------------------- start

async function start(): Promise<void> {
  // The token came in the address; the server has set its cookie. Keep it out of the history.
  if (location.search.includes("token=")) history.replaceState(null, "", "/");
  layout();
  try {
    await loadState();
  } catch (e) {
    $("status").textContent = "not connected";
    showError(e);
    return;
  }
  connect();
  await loadRuns();
}

void start();
