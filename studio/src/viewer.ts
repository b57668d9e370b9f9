/**
 * Side-by-side playback of runs with one clock: one play/pause button and one frame slider drive
 * every tile, so frame t of each strategy is on screen at the same moment (a run with in-between
 * frames shows the frame at the same time). With a comparison it also shows the study's metric plot
 * (plot.svg) and its table.
 */
import type { ApiComparison, ApiRun } from "../../src/studio/api.js";
import { fill, h } from "./dom.js";

const fmt = (x: number | null, digits = 4): string => (x === null ? "—" : x.toFixed(digits));

export class Viewer {
  readonly element = h(
    "div",
    { id: "viewer" },
    h("p", { class: "note" }, "Select runs in the history and compare them, or play one."),
  );
  private timer: number | undefined;
  private frame = 0;
  private length = 0;
  private tiles: { run: ApiRun; img: HTMLImageElement; cache: HTMLImageElement[] }[] = [];

  show(runs: readonly ApiRun[], comparison: ApiComparison | undefined): void {
    this.stop();
    this.length = Math.max(0, ...runs.map((r) => r.frames));
    this.frame = 0;
    const fps = Math.min(30, Math.max(1, runs[0]?.fps ?? 8));
    this.tiles = runs.map((run) => {
      // Preloaded so that the tiles change together.
      const cache = Array.from({ length: run.frames }, (_, i) => {
        const img = new Image();
        img.src = `/api/runs/${encodeURIComponent(run.id)}/frames/${i}`;
        return img;
      });
      return {
        run,
        img: h("img", { class: "tile", alt: run.strategy, width: run.width, height: run.height }),
        cache,
      };
    });
    const play = h("button", { id: "play", type: "button" }, "Play");
    const scrub = h("input", {
      id: "scrub",
      type: "range",
      min: "0",
      max: String(Math.max(0, this.length - 1)),
      value: "0",
    });
    const label = h("span", { id: "frame-label" });
    const draw = (): void => {
      for (const t of this.tiles) {
        const i = Math.min(
          t.run.frames - 1,
          Math.floor((this.frame * t.run.frames) / Math.max(1, this.length)),
        );
        const src = t.cache[i]?.src;
        if (src && t.img.src !== src) t.img.src = src;
      }
      scrub.value = String(this.frame);
      label.textContent = `frame ${this.frame + 1} / ${this.length}`;
    };
    play.addEventListener("click", () => {
      if (this.timer !== undefined) {
        this.stop();
        play.textContent = "Play";
        return;
      }
      play.textContent = "Pause";
      this.timer = window.setInterval(() => {
        this.frame = (this.frame + 1) % Math.max(1, this.length);
        draw();
      }, 1000 / fps);
    });
    scrub.addEventListener("input", () => {
      this.frame = Number(scrub.value);
      draw();
    });
    fill(
      this.element,
      h(
        "div",
        { class: "players" },
        this.tiles.map((t) =>
          h("figure", { class: "player", "data-run": t.run.id }, t.img, h("figcaption", {}, t.run.strategy)),
        ),
      ),
      h(
        "div",
        { class: "row transport" },
        play,
        scrub,
        label,
        h("small", {}, `${fps} fps, one clock for all tiles`),
      ),
      comparison ? this.report(comparison) : null,
    );
    draw();
  }

  private report(c: ApiComparison): HTMLElement {
    return h(
      "div",
      { class: "report", "data-comparison": c.id },
      h("h3", {}, "Metrics"),
      h(
        "table",
        { id: "metrics-table", class: "metrics" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["strategy", "warp error ↓", "flicker ↓", "edge F1 ↑", "depth r ↑", "s/frame"].map((t) =>
              h("th", {}, t),
            ),
          ),
        ),
        h(
          "tbody",
          {},
          h(
            "tr",
            { class: "input" },
            h("td", {}, "input clip"),
            h("td", {}, fmt(c.input.warpError)),
            h("td", {}, fmt(c.input.flickerIndex)),
            h("td", {}, "—"),
            h("td", {}, "—"),
            h("td", {}, "—"),
          ),
          c.entries.map((e) =>
            h(
              "tr",
              { "data-run": e.run },
              h("td", {}, e.name),
              h("td", {}, fmt(e.warpError)),
              h("td", {}, fmt(e.flickerIndex)),
              h("td", {}, fmt(e.edgeF1, 3)),
              h("td", {}, fmt(e.depthPearson, 3)),
              h("td", {}, e.secondsPerFrame.toFixed(2)),
            ),
          ),
        ),
      ),
      h("h3", {}, "Per-frame curves"),
      h("img", {
        id: "plot",
        class: "plot",
        src: `/api/compare/${encodeURIComponent(c.id)}/plot.svg`,
        alt: "per-frame flicker and warp error of each strategy",
      }),
    );
  }

  private stop(): void {
    if (this.timer !== undefined) window.clearInterval(this.timer);
    this.timer = undefined;
  }
}
