/**
 * The studio server's small HTTP helpers (node:http, no framework): JSON replies, errors in words
 * (a typed error's message and hint, never a stack), bounded JSON bodies, and the web app's static
 * files with the headers that keep other pages out (CSP, no framing, no referrer, same-origin
 * resources only).
 */
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, normalize } from "node:path";
import { InvalidArgumentError, SteadyframeError } from "../errors.js";
import type { ApiError } from "./api.js";
import { isInside } from "./paths.js";
import type { Refusal } from "./security.js";

/** An error with the HTTP status it is answered with. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly error: SteadyframeError,
  ) {
    super(error.message, { cause: error });
  }
}

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy":
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "X-Frame-Options": "DENY",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cache-Control": "no-store",
};

export function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string | Buffer,
  headers: Readonly<Record<string, string>> = {},
): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    "Content-Type": type,
    "Content-Length": String(Buffer.byteLength(body)),
    ...headers,
  });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, "application/json; charset=utf-8", JSON.stringify(value));
}

/** The words of any error: typed errors as they are, anything else as "internal error: message". */
export function apiError(error: unknown): ApiError {
  const e = error instanceof HttpError ? error.error : error;
  if (e instanceof SteadyframeError) return { code: e.code, message: e.message, hint: e.hint ?? null };
  return {
    code: "E_INTERNAL",
    message: `internal error: ${e instanceof Error ? e.message : String(e)}`,
    hint: "this is a bug if the inputs were valid; the studio's terminal may say more",
  };
}

function statusOf(error: unknown): number {
  if (error instanceof HttpError) return error.status;
  if (!(error instanceof SteadyframeError)) return 500;
  switch (error.code) {
    case "E_INVALID_ARGUMENT":
    case "E_CONFIG":
    case "E_VIDEO":
    case "E_CORRUPT_FILE":
    case "E_UNSUPPORTED":
      return 400;
    case "E_FILE_NOT_FOUND":
      return 404;
    case "E_CANCELLED":
      return 409;
    default:
      return 500;
  }
}

export function sendError(res: ServerResponse, error: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, statusOf(error), { error: apiError(error) });
}

export function sendRefusal(res: ServerResponse, refusal: Refusal, asPage: boolean): void {
  const error: ApiError = { code: refusal.code, message: refusal.message, hint: refusal.hint };
  if (!asPage) {
    sendJson(res, refusal.status, { error });
    return;
  }
  const escape = (s: string): string =>
    s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] ?? c);
  send(
    res,
    refusal.status,
    "text/html; charset=utf-8",
    `<!doctype html><meta charset="utf-8"><title>Steadyframe Studio</title>` +
      `<h1>Steadyframe Studio</h1><p>${escape(refusal.message)}.</p><p>To use the studio, ${escape(refusal.hint)}.</p>`,
  );
}

/** Reads a JSON request body of at most `limit` bytes. */
export async function readJson(req: IncomingMessage, limit = 64 * 1024): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > limit)
      throw new HttpError(
        413,
        new InvalidArgumentError("request body", `at most ${limit} bytes of JSON`, `${size}+ bytes`),
      );
    chunks.push(b);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    throw new InvalidArgumentError(
      "request body",
      "JSON",
      Buffer.concat(chunks).toString("utf8").slice(0, 80),
    );
  }
}

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json; charset=utf-8",
};

export function contentType(path: string): string {
  return TYPES[extname(path).toLowerCase()] ?? "application/octet-stream";
}

/**
 * Serves `urlPath` from the web build folder `webRoot`; returns false when there is no such file.
 * Only plain names are looked up (no "..", no hidden files).
 */
export async function serveStatic(res: ServerResponse, webRoot: string, urlPath: string): Promise<boolean> {
  const rel = normalize(decodeURIComponent(urlPath)).replace(/^\/+/, "");
  if (rel.split("/").some((p) => p === ".." || p.startsWith("."))) return false;
  const file = join(webRoot, rel);
  if (!isInside(webRoot, file)) return false;
  const body = await readFile(file).catch(() => undefined);
  if (body === undefined) return false;
  const immutable = rel.startsWith("assets/") ? { "Cache-Control": "max-age=31536000, immutable" } : {};
  send(res, 200, contentType(file), body, immutable);
  return true;
}
