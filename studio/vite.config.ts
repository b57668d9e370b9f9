/**
 * Vite build of the studio's web app: studio/ (index.html, src/) -> dist/studio-web/, which
 * `steadyframe studio` serves (src/studio/server.ts). Relative paths are resolved from this file.
 */
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  root: here("."),
  base: "/",
  logLevel: "warn",
  build: {
    outDir: here("../dist/studio-web"),
    emptyOutDir: true,
    target: "es2022",
    // no inline scripts or styles: the server's Content-Security-Policy allows 'self' only
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
});
