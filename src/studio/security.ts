/**
 * Who may drive the studio. A local web server is reachable by every page the person's browser opens,
 * so each request is checked before it is routed:
 *
 * - Host must be the studio's own (`127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`, or the --host
 *   name): a DNS-rebinding page reaches the server under its own host name and is refused.
 * - Origin, when the browser sends one, must be the studio's own origin: another local page
 *   (`http://localhost:3000`, same-site for cookies) is refused, and so is a foreign
 *   `Sec-Fetch-Site` (cross-site, same-site).
 * - The API needs the session token: a random value printed in the URL the CLI shows, sent as the
 *   `X-Steadyframe-Token` header or as the HttpOnly, SameSite=Strict cookie the page receives when
 *   it is opened with `?token=`. Requests that change something (POST) carry the header, or the
 *   cookie together with the studio's own Origin.
 *
 * Responses say in words what was refused and how to get in (open the printed URL).
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

export const TOKEN_HEADER = "x-steadyframe-token";

export interface Refusal {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly hint: string;
}

export interface Gate {
  readonly token: string;
  /** The cookie's name (one per port: cookies do not tell ports apart). */
  readonly cookie: string;
  /** Host header values accepted. */
  readonly hosts: ReadonlySet<string>;
  /** Origins accepted. */
  readonly origins: ReadonlySet<string>;
}

/** A new random session token (32 bytes, URL-safe). */
export function newToken(): string {
  return randomBytes(32).toString("base64url");
}

/** The gate of a studio listening on `port`, reachable under `host` (and the loopback names). */
export function makeGate(token: string, host: string, port: number): Gate {
  const names = new Set(["127.0.0.1", "localhost", "[::1]"]);
  names.add(host.includes(":") && !host.startsWith("[") ? `[${host}]` : host);
  const hosts = new Set([...names].map((n) => `${n}:${port}`));
  return {
    token,
    cookie: `steadyframe_token_${port}`,
    hosts,
    origins: new Set([...hosts].map((h) => `http://${h}`)),
  };
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieValue(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

const OPEN_URL = "open the address that 'steadyframe studio' printed (it carries this session's token)";

/** Host and Origin checks, for every request (pages, files and API). */
export function checkSite(gate: Gate, req: IncomingMessage, isApi: boolean): Refusal | undefined {
  const host = req.headers.host ?? "";
  if (!gate.hosts.has(host.toLowerCase()))
    return {
      status: 403,
      code: "E_HOST",
      message: `refused: the request names host ${JSON.stringify(host)}, not this studio's (${[...gate.hosts].join(", ")})`,
      hint: OPEN_URL,
    };
  const origin = req.headers.origin;
  if (origin !== undefined && !gate.origins.has(origin.toLowerCase()))
    return {
      status: 403,
      code: "E_ORIGIN",
      message: `refused: a request from the web page ${JSON.stringify(origin)}, which is not the studio`,
      hint: "only the studio's own page may use it; " + OPEN_URL,
    };
  const site = req.headers["sec-fetch-site"];
  // A link from another page may open the studio's page (it still needs the token); nothing else.
  const opensPage =
    !isApi && req.headers["sec-fetch-mode"] === "navigate" && req.headers["sec-fetch-dest"] === "document";
  if ((site === "cross-site" || site === "same-site") && !opensPage)
    return {
      status: 403,
      code: "E_ORIGIN",
      message: `refused: a ${site} request (from another web page)`,
      hint: "only the studio's own page may use it; " + OPEN_URL,
    };
  return undefined;
}

/** The token of a request: the header's, else the cookie's. */
export function requestToken(
  gate: Gate,
  req: IncomingMessage,
): { value: string; from: "header" | "cookie" } | undefined {
  const header = req.headers[TOKEN_HEADER];
  if (typeof header === "string") return { value: header, from: "header" };
  const cookie = cookieValue(req, gate.cookie);
  return cookie === undefined ? undefined : { value: cookie, from: "cookie" };
}

/** Token check of an API request (after {@link checkSite}). */
export function checkToken(gate: Gate, req: IncomingMessage): Refusal | undefined {
  const given = requestToken(gate, req);
  if (given === undefined || !sameToken(given.value, gate.token))
    return {
      status: 401,
      code: "E_TOKEN",
      message:
        given === undefined ? "refused: this request carries no studio token" : "refused: wrong studio token",
      hint: OPEN_URL,
    };
  const changes = req.method !== "GET" && req.method !== "HEAD";
  if (changes && given.from === "cookie" && req.headers.origin === undefined)
    return {
      status: 403,
      code: "E_ORIGIN",
      message: "refused: a change requested without the studio's Origin or token header",
      hint: `send the token in the ${TOKEN_HEADER} header`,
    };
  return undefined;
}

/** True when `value` (a ?token= value) is this session's token. */
export function isToken(gate: Gate, value: string | null): boolean {
  return value !== null && sameToken(value, gate.token);
}

/** The Set-Cookie value that lets the page (and its EventSource and images) use the API. */
export function tokenCookie(gate: Gate): string {
  return `${gate.cookie}=${gate.token}; HttpOnly; SameSite=Strict; Path=/`;
}

/** True when the page request already carries a valid token cookie. */
export function hasTokenCookie(gate: Gate, req: IncomingMessage): boolean {
  const value = cookieValue(req, gate.cookie);
  return value !== undefined && sameToken(value, gate.token);
}
