/**
 * Where the render farm's queue lives: a Redis server named by a `redis://HOST:PORT[/DB]` URL (or
 * `rediss://` for TLS; `redis://:PASSWORD@HOST:PORT` with a password), checked into BullMQ connection
 * options, and a reachability check so a wrong URL fails at once with its address instead of BullMQ
 * retrying the connection forever in the background.
 *
 * Every coordinator and worker of one farm uses the one BullMQ queue `steadyframe-render` on that
 * server (BullMQ keys `bull:steadyframe-render:*`).
 */
import { Redis } from "ioredis";
import { InvalidArgumentError } from "../errors.js";
import { FarmError } from "./farm-error.js";

/** The BullMQ queue of segment jobs. */
export const QUEUE_NAME = "steadyframe-render";

/** BullMQ connection options for `url` (a checked `redis://` URL). */
export interface FarmConnection {
  readonly url: string;
  /** BullMQ's blocking connections need ioredis to retry a command forever (not give up after 20). */
  readonly maxRetriesPerRequest: null;
}

/** Checks a `--redis` / `--queue` value: redis:// or rediss://, a host, a port in 1..65535, a db number. */
export function parseRedisUrl(flag: string, text: string): FarmConnection {
  const expected = "a Redis URL like redis://127.0.0.1:6379 (redis://HOST:PORT[/DB], rediss:// for TLS)";
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidArgumentError(flag, expected, text);
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:")
    throw new InvalidArgumentError(flag, expected, text, { hint: `the scheme is ${url.protocol}` });
  if (url.hostname === "") throw new InvalidArgumentError(flag, expected, text, { hint: "there is no host" });
  const port = url.port === "" ? 6379 : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new InvalidArgumentError(flag, expected, text, { hint: `port ${url.port} is out of range` });
  if (!/^\/?\d*$/.test(url.pathname))
    throw new InvalidArgumentError(flag, expected, text, { hint: "the path must be a database number" });
  return { url: url.href, maxRetriesPerRequest: null };
}

/** A URL for messages, without its password. */
export function describeRedis(connection: FarmConnection): string {
  const url = new URL(connection.url);
  if (url.password !== "") url.password = "***";
  return url.href.replace(/\/$/, "");
}

/** Connects once and sends PING; a FarmError naming the server when that fails within `timeoutMs`. */
export async function checkRedis(connection: FarmConnection, flag: string, timeoutMs = 5000): Promise<void> {
  const client = new Redis(connection.url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on("error", () => undefined); // reported by the rejected connect() below
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    throw new FarmError(
      `cannot reach the Redis server ${describeRedis(connection)} given by ${flag}: ${error instanceof Error ? error.message : String(error)}`,
      {
        hint: "start it (redis-server --port 6379) or fix the address; every worker and the coordinator must reach the same server",
        cause: error,
      },
    );
  } finally {
    client.disconnect();
  }
}
