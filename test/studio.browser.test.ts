/**
 * The studio's main flows in a real browser: Debian's Chromium (scripts/install.sh installs it),
 * driven headless by playwright-core (no browser download). `steadyframe studio` runs as a child
 * process on a free port with a models folder holding the tiny test model; the page opens the
 * printed address, uploads the bundled clip, previews its control maps, renders two strategies
 * (64x64, 3 frames, 2 steps) while frames arrive live, cancels a third, compares the two with the
 * study's plot and table, plays them in sync, and shows an error in words; last, `--host` with a
 * non-loopback name warns and the studio answers under that name. The screenshot of the
 * final page is docs/studio.png when STEADYFRAME_UPDATE_SCREENSHOT=1 (a temporary file otherwise).
 */
import { existsSync } from "node:fs";
import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { studioCommand } from "../src/cli/commands/studio.js";
import { captureIO } from "./helpers/cli-io.js";
import {
  CAR_CLIP,
  ROOT,
  buildStudioWeb,
  startStudioCli,
  studioFolders,
  type RunningStudio,
} from "./helpers/studio.js";

const CHROMIUM = "/usr/bin/chromium";

/** The fields of a page's <img> the checks read (this project's TypeScript has no DOM types). */
interface PageImage {
  readonly naturalWidth: number;
  readonly naturalHeight: number;
  readonly src: string;
}

let folders: Awaited<ReturnType<typeof studioFolders>>;
let studio: RunningStudio;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: run 'bash scripts/install.sh' (apt-get install -y chromium)`);
  buildStudioWeb();
  folders = await studioFolders();
  studio = await startStudioCli(["--port", "0", "--models", folders.models, "--outputs", folders.outputs]);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  page = await browser.newPage({ viewport: { width: 1440, height: 960 } });
  page.on("pageerror", (e) => pageErrors.push(e.message));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  const code = await studio?.stop();
  expect(code).toBe(0);
  if (folders) await rm(folders.dir, { recursive: true, force: true });
});

const badge = (k: number) => page.locator("#jobs .job").nth(k).locator(".badge");

describe("steadyframe studio in Chromium", () => {
  it("opens with the printed token and lists the model; without the token it explains how to get in", async () => {
    const refused = await page.goto(studio.origin + "/");
    expect(refused?.status()).toBe(401);
    expect(await page.textContent("body")).toContain("open the address that 'steadyframe studio' printed");

    await page.goto(studio.url);
    await expect.poll(() => page.textContent("#status")).toContain("1 model(s)");
    expect(page.url()).toBe(studio.origin + "/"); // the token left the address bar
    expect(await page.locator("#model-select option").allTextContents()).toEqual(["tiny-sd"]);
    expect(await page.locator("#controlnet-select").inputValue()).toBe("tiny-sd/controlnet");
  });

  it("uploads the clip (ffprobe-checked) and previews the control maps of a frame", async () => {
    await page.setInputFiles("#clip-upload", CAR_CLIP);
    await expect
      .poll(() => page.textContent("#clip-info"), { timeout: 30_000 })
      .toContain("car-turn-9f.mp4: 480x480");
    expect(await page.textContent("#clip-info")).toContain("9 frames");
    await page.fill("#width", "64");
    await page.fill("#height", "64");
    await page.fill("#preview-frame", "4");
    await page.fill("#canny-low", "50");
    await page.click("#preview-button");
    const maps = page.locator("#preview-maps figure");
    await expect.poll(() => maps.count(), { timeout: 30_000 }).toBe(4);
    expect(await maps.evaluateAll((els) => els.map((e) => e.getAttribute("data-map")))).toEqual([
      "source",
      "canny",
      "flow",
      "occlusion",
    ]);
    const canny = page.locator('figure[data-map="canny"]');
    expect(await canny.locator("figcaption").textContent()).toContain("thresholds 50, 200");
    expect(await page.locator('figure[data-map="flow"] figcaption').textContent()).toContain(
      "frame 3 → 4; hue = direction, brightness = magnitude (full at 1.6 px)",
    );
    const size = await canny.locator("img").evaluate((img) => {
      const i = img as unknown as PageImage;
      return [i.naturalWidth, i.naturalHeight];
    });
    expect(size).toEqual([64, 64]);
  });

  it("renders two strategies with the tiny model; frames and step progress arrive live", async () => {
    // Watch the page: each frame image that appears, and the job's badge at that moment.
    // (page code as text: this project's TypeScript has no DOM types)
    await page.evaluate(`{
      window.seen = [];
      new MutationObserver((records) => {
        for (const r of records)
          for (const n of r.addedNodes)
            if (n instanceof HTMLImageElement && n.closest(".strip"))
              window.seen.push({
                badge: n.closest(".job")?.querySelector(".badge")?.textContent ?? "",
                steps: document.querySelector(".meter.steps") !== null,
              });
      }).observe(document.getElementById("jobs"), { childList: true, subtree: true });
    }`);
    await page.fill("#prompt", "a red car on a mountain road");
    await page.fill("#frames", "3");
    await page.fill("#steps", "2");
    await page.selectOption("#noise", "shared");
    await page.selectOption("#attention", "first");
    await page.click("#add-strategy");
    await page.selectOption("#noise", "per-frame");
    await page.click("#add-strategy");
    expect(await page.locator("#strategy-list li").count()).toBe(2);
    await page.click("#render-button");
    await expect.poll(() => page.locator("#jobs .job").count()).toBe(2);
    for (const k of [0, 1])
      await expect.poll(() => badge(k).textContent(), { timeout: 100_000 }).toBe("done");
    const seen = (await page.evaluate("window.seen")) as { badge: string; steps: boolean }[];
    expect(seen.length).toBe(6);
    expect(seen.some((s) => s.badge === "running")).toBe(true); // live, not after the fact
    expect(seen.some((s) => s.steps)).toBe(true);
    await expect.poll(() => page.locator("#history tbody tr").count()).toBe(2);
  }, 120_000);

  it("cancels a render", async () => {
    await page.click('#strategy-list button[aria-label^="remove"]');
    await page.click('#strategy-list button[aria-label^="remove"]');
    await page.selectOption("#noise", "fixed");
    // long enough that the cancel always lands before the end (2 steps of the tiny model can finish
    // before the click on a fast machine)
    await page.fill("#steps", "200");
    await page.click("#render-button");
    await expect.poll(() => page.locator("#jobs .job").count()).toBe(3);
    await page.locator("#jobs .job").first().locator("button.cancel").click();
    await expect.poll(() => badge(0).textContent(), { timeout: 30_000 }).toBe("cancelled");
    expect(await page.locator("#history tbody tr").count()).toBe(2);
  }, 60_000);

  it("compares the two runs side by side, with the metric plot and table, in synchronised playback", async () => {
    await page.locator("#history input.run-check").nth(0).check();
    await page.locator("#history input.run-check").nth(1).check();
    await page.click("#compare-button");
    const rows = page.locator("#metrics-table tbody tr");
    await expect.poll(() => rows.count(), { timeout: 60_000 }).toBe(3);
    const names = await page.locator("#metrics-table tbody tr td:first-child").allTextContents();
    expect(names.sort()).toEqual(["input clip", "source/per-frame/first/none", "source/shared/first/none"]);
    const warp = await rows.nth(1).locator("td").nth(1).textContent();
    expect(Number(warp)).toBeGreaterThan(0);
    await expect
      .poll(() => page.locator("#plot").evaluate((img) => (img as unknown as PageImage).naturalWidth))
      .toBeGreaterThan(0);
    const tiles = page.locator("#viewer .player img");
    expect(await tiles.count()).toBe(2);
    const frameOf = () =>
      tiles.evaluateAll((imgs) => imgs.map((i) => (i as unknown as PageImage).src.split("/").pop()));
    expect(await frameOf()).toEqual(["0", "0"]);
    await page.click("#play");
    await expect.poll(frameOf).toEqual(["1", "1"]);
    await page.click("#play"); // pause
    await page.fill("#scrub", "2");
    await page.dispatchEvent("#scrub", "input");
    await expect.poll(frameOf).toEqual(["2", "2"]);
    expect(await page.textContent("#frame-label")).toBe("frame 3 / 3");

    // The README's picture: a palette PNG keeps it small.
    const shot =
      process.env["STEADYFRAME_UPDATE_SCREENSHOT"] === "1"
        ? join(ROOT, "docs/studio.png")
        : join(folders.dir, "studio.png");
    await sharp(await page.screenshot())
      .png({ palette: true, effort: 10 })
      .toFile(shot);
    expect((await stat(shot)).size).toBeGreaterThan(10_000);
  }, 90_000);

  it("shows errors in words (message and hint), never a stack trace", async () => {
    await page.fill("#prompt", "");
    await page.click("#render-button");
    const box = page.locator("#error");
    await expect.poll(() => box.isVisible()).toBe(true);
    const text = (await box.textContent()) ?? "";
    expect(text).toContain("prompt");
    expect(text).not.toMatch(/\bat .*\.(ts|js):\d+/);
    expect(pageErrors).toEqual([]);
  });

  it("warns when --host is not a loopback name, and then answers under that name only", async () => {
    const stop = new AbortController();
    const io = captureIO(stop.signal);
    const args = [
      "--host",
      "127.0.0.2",
      "--port",
      "0",
      "--models",
      folders.models,
      "--outputs",
      folders.outputs,
    ];
    const running = studioCommand.run(args, io);
    await expect.poll(io.out, { timeout: 30_000 }).toContain("?token=");
    expect(io.err()).toContain(
      "warning: --host 127.0.0.2: the studio will accept connections from other machines",
    );
    const url = new URL(/(http:\S+)/.exec(io.out())?.[1] ?? "");
    expect(url.hostname).toBe("127.0.0.2");
    const token = url.searchParams.get("token") ?? "";
    const state = await fetch(`${url.origin}/api/state`, { headers: { "X-Steadyframe-Token": token } });
    expect(state.status).toBe(200);
    stop.abort();
    expect(await running).toBe(0);
  });
});
